// A RoBERTa-style Transformer encoder, written as small modules in the order of the math
// (nanoGPT's shape): embeddings, attention, feed-forward, block, encoder, heads.
// Parameter names are the safetensors keys (see docs in README "Checkpoints").
#pragma once

#include <torch/torch.h>

#include "data/batch.h"
#include "models/config.h"

namespace trainlarge {

// A LayerNorm over d_model with the config's eps.
torch::nn::LayerNorm layer_norm(const ModelConfig& c);
// LayerNorm in the weights' precision (under bf16 autocast a GEMM output arrives in bf16).
torch::Tensor norm_fp32(torch::nn::LayerNorm& norm, const torch::Tensor& x);

struct SelfAttentionImpl : torch::nn::Module {
  SelfAttentionImpl(const ModelConfig& c);
  // x: (B, T, D); bias: (B, 1, 1, T) additive key mask or undefined
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias, at::Generator& gen);

  int64_t heads, head_dim;
  double attention_dropout, dropout_p;
  torch::nn::Linear qkv{nullptr}, proj{nullptr};  // fused q, k, v: one GEMM instead of three
};
TORCH_MODULE(SelfAttention);

struct FeedForwardImpl : torch::nn::Module {
  FeedForwardImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x, at::Generator& gen);

  double dropout_p;
  Activation activation;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(FeedForward);

// Marian's sinusoidal positions (transformers' MarianSinusoidalPositionalEmbedding): row p, column i <
// ceil(D/2) is sin(p / 10000^(2i/D)), column ceil(D/2) + i is cos(p / 10000^(2i/D)); (rows, D) float.
torch::Tensor sinusoidal_positions(int64_t rows, int64_t d_model);

struct BlockImpl : torch::nn::Module {
  BlockImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias, at::Generator& gen);

  bool pre_norm;
  SelfAttention attn{nullptr};
  torch::nn::LayerNorm norm1{nullptr};
  FeedForward ffn{nullptr};
  torch::nn::LayerNorm norm2{nullptr};
};
TORCH_MODULE(Block);

// RoBERTa's LM head: dense -> GELU -> LayerNorm -> decoder tied to the token embedding, + bias.
struct MlmHeadImpl : torch::nn::Module {
  MlmHeadImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& token_embedding);

  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::Tensor bias;
};
TORCH_MODULE(MlmHead);

// RoBERTa's classification head on the first token: dropout -> dense -> tanh -> dropout -> out.
struct ClassifierHeadImpl : torch::nn::Module {
  ClassifierHeadImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& first_token, at::Generator& gen);

  double dropout_p;
  torch::nn::Linear dense{nullptr}, out{nullptr};
};
TORCH_MODULE(ClassifierHead);

struct LossResult {
  torch::Tensor loss;        // mean over the counted items, differentiable
  int64_t count = 0;         // masked tokens (MLM) or examples (classify)
  int64_t correct = 0;       // argmax == target, computed only when asked
  torch::Tensor per_target;  // (count) float, each item's loss, detached; only when asked
};

struct TransformerImpl : torch::nn::Module {
  TransformerImpl(const ModelConfig& c, uint64_t seed);

  // ids: (B, T) int64; attention_mask: (B, T) bool or undefined. Returns hidden states (B, T, D).
  torch::Tensor encode(const torch::Tensor& ids, const torch::Tensor& attention_mask);
  // The task head on all positions: MLM (B, T, V), classify (B, C).
  torch::Tensor logits(const torch::Tensor& ids, const torch::Tensor& attention_mask);
  // The training objective. MLM runs its head only on the masked positions (as fairseq does).
  LossResult loss(const Batch& batch, bool count_correct = false, bool per_target = false);

  void reseed_dropout(uint64_t seed);
  void check_input(const torch::Tensor& ids, const torch::Tensor& attention_mask) const;
  int64_t parameter_count() const;

  // The embeddings of tokens `ids` (B, T) at positions start .. start + T - 1: token rows (x sqrt(d_model)
  // when scale_embeddings) + position rows (learned `positions`, or the fixed `sinusoid`), then embed_norm.
  // `table`: the token matrix; `learned`: the position rows to use when they are learned.
  torch::Tensor embed(const torch::Tensor& table, const torch::nn::Embedding& learned, const torch::nn::LayerNorm& norm,
                      const torch::Tensor& ids, int64_t start);

  ModelConfig config;
  torch::nn::Embedding tokens{nullptr}, positions{nullptr};  // positions: learned only
  torch::Tensor sinusoid;                                    // (max_len, D) buffer, sinusoidal positions only
  torch::nn::LayerNorm embed_norm{nullptr};                  // post-LN with embedding_norm only (RoBERTa's embedding LayerNorm)
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};  // pre-LN only
  MlmHead mlm_head{nullptr};
  ClassifierHead cls_head{nullptr};
  at::Generator dropout_gen;
};
TORCH_MODULE(Transformer);

// AdamW's parameter groups: weight decay on matrices (linear and embedding weights), none on biases
// and LayerNorm parameters, as RoBERTa and nanoGPT do.
inline bool decays(const torch::Tensor& p) { return p.dim() >= 2; }

}  // namespace trainlarge
