// An encoder-decoder Transformer for translation (Vaswani et al. 2017; fairseq's transformer), built on
// the encoder of models/transformer.h: the encoder IS that Transformer (same modules, same safetensors
// names), and the decoder adds, per layer, causal self-attention, cross-attention over the encoder's
// output and the same feed-forward, post- or pre-LN as the config says. One vocabulary for source and
// target; ModelConfig::tie says which of its three matrices are one.
//
// Safetensors names (the encoder's are those of an MLM/classify model, so a pretrained encoder loads by name):
//   tokens.weight, positions.weight, embed_norm.* (post-LN), layers.N.{attn,norm1,ffn,norm2}.*, final_norm.* (pre-LN)
//   decoder.tokens.weight                       tie 'decoder' and 'none' (tie 'all' uses tokens.weight)
//   decoder.positions.weight                    learned, positions 0.. from BOS on (as the encoder's); sinusoidal:
//                                               none (the encoder's fixed `sinusoid` buffer, not saved)
//   decoder.embed_norm.{weight,bias}            post-LN with embedding_norm only
//   decoder.layers.N.self_attn.{qkv,proj}.*     causal self-attention, q, k, v fused as in the encoder
//   decoder.layers.N.norm1.*
//   decoder.layers.N.cross_attn.q.*             queries from the decoder             (heads x head size, d_model)
//   decoder.layers.N.cross_attn.kv.*            keys and values from the encoder, fused (2 x heads x head size, d_model)
//   decoder.layers.N.cross_attn.proj.*
//   decoder.layers.N.norm2.*
//   decoder.layers.N.ffn.{fc1,fc2}.*
//   decoder.layers.N.norm3.*
//   decoder.final_norm.*                        pre-LN only
//   output.weight                               tie 'none' only (no bias, as fairseq's output projection)
//   output_bias                                 final_logits_bias only: (V) added to the logits (Marian's)
// post-LN layer: h = norm1(x + self(x)); h = norm2(h + cross(h, enc)); out = norm3(h + ffn(h))
// pre-LN layer:  h = x + self(norm1(x)); h = h + cross(norm2(h), enc); out = h + ffn(norm3(h)); then final_norm
#pragma once

#include <torch/torch.h>

#include <vector>

#include "data/batch.h"
#include "models/config.h"
#include "models/transformer.h"

namespace trainlarge {

// Attention of the decoder's queries over the encoder's output (keys and values computed once per source).
struct CrossAttentionImpl : torch::nn::Module {
  CrossAttentionImpl(const ModelConfig& c);
  // memory (B, S, D) -> keys and values, each (B, nh, S, hs)
  std::pair<torch::Tensor, torch::Tensor> keys_values(const torch::Tensor& memory);
  // x: (B, T, D); k, v: (B, nh, S, hs); bias: (B, 1, 1, S) additive key mask or undefined
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& bias,
                        at::Generator& gen);

  int64_t heads, head_dim;
  double attention_dropout, dropout_p;
  torch::nn::Linear q{nullptr}, kv{nullptr}, proj{nullptr};
};
TORCH_MODULE(CrossAttention);

// What incremental decoding keeps per decoder layer.
struct LayerCache {
  torch::Tensor k, v;              // self-attention: (N, nh, t, hs), one step appended per token
  torch::Tensor cross_k, cross_v;  // cross-attention: (N, nh, S, hs), computed once per source
};

// The decoder's state between steps, for N rows (sentences, or sentences x beams).
struct DecoderState {
  std::vector<LayerCache> layers;
  torch::Tensor memory_bias;  // (N, 1, 1, S) additive source padding mask, or undefined
  int64_t step = 0;           // tokens fed so far: the position of the next one

  // Keeps rows `index` (N') of every cached tensor, in that order: beam reordering, finished sentences leaving.
  void select(const torch::Tensor& index);
};

struct DecoderBlockImpl : torch::nn::Module {
  DecoderBlockImpl(const ModelConfig& c);
  // Teacher forcing: x (B, T, D); causal (1, 1, T, T) additive; memory_bias (B, 1, 1, S) or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& memory, const torch::Tensor& causal, const torch::Tensor& memory_bias,
                        at::Generator& gen);
  // One step: x (N, 1, D); appends this step's keys and values to `cache`.
  torch::Tensor step(const torch::Tensor& x, LayerCache& cache, const torch::Tensor& memory_bias, at::Generator& gen);

  bool pre_norm;
  SelfAttention self_attn{nullptr};
  torch::nn::LayerNorm norm1{nullptr};
  CrossAttention cross_attn{nullptr};
  torch::nn::LayerNorm norm2{nullptr};
  FeedForward ffn{nullptr};
  torch::nn::LayerNorm norm3{nullptr};

 private:
  torch::Tensor cross(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& memory_bias,
                      at::Generator& gen);
};
TORCH_MODULE(DecoderBlock);

struct DecoderImpl : torch::nn::Module {
  DecoderImpl(const ModelConfig& c);

  torch::nn::Embedding tokens{nullptr};  // undefined under tie 'all' (the encoder's is used)
  torch::nn::Embedding positions{nullptr};
  torch::nn::LayerNorm embed_norm{nullptr};  // post-LN only
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};  // pre-LN only
};
TORCH_MODULE(Decoder);

struct Seq2SeqImpl : TransformerImpl {
  Seq2SeqImpl(const ModelConfig& c, uint64_t seed);

  // The decoder's input for targets (B, T) = [y1 .. yn EOS PAD ..]: [BOS y1 .. yn (EOS PAD ..)], one shifted right.
  torch::Tensor shift_right(const torch::Tensor& targets) const;
  // src (B, S) and its mask (B, S) bool (true = real; undefined: src != pad_id) -> encoder output (B, S, D).
  torch::Tensor encode_source(const torch::Tensor& src, const torch::Tensor& src_mask);
  // Teacher forcing: decoder hidden states (B, T, D) for decoder inputs prev (B, T), all positions at once.
  torch::Tensor decode(const torch::Tensor& prev, const torch::Tensor& memory, const torch::Tensor& src_mask);
  // Hidden states (..., D) -> vocabulary logits (..., V) through the (tied or own) output projection.
  torch::Tensor project(const torch::Tensor& h);
  // Teacher-forced logits (B, T, V) for targets as in shift_right (the decoder reads them shifted).
  torch::Tensor translation_logits(const torch::Tensor& src, const torch::Tensor& src_mask, const torch::Tensor& targets);
  // Label-smoothed cross-entropy (fairseq's label_smoothed_cross_entropy with eps / V spread over the
  // vocabulary: (1 - eps) nll + eps / V * sum_v -log p_v), mean over the non-pad target tokens.
  // Batch: ids = source (B, S), attention_mask = its mask or undefined, targets = (B, T) ending in EOS, then pad.
  // The output projection runs on the non-pad rows only. count = non-pad target tokens.
  LossResult translation_loss(const Batch& batch, double label_smoothing, bool count_correct = false);

  // Incremental decoding: the cross-attention keys and values of every layer for memory (N, S, D).
  DecoderState start(const torch::Tensor& memory, const torch::Tensor& src_mask);
  // Feeds one token per row (N) at position state.step; returns that step's logits (N, V).
  torch::Tensor step(const torch::Tensor& tokens, DecoderState& state);

  torch::Tensor decoder_embedding() const;  // (V, D): decoder.tokens, or the encoder's under tie 'all'
  torch::Tensor source_mask(const torch::Tensor& src, const torch::Tensor& src_mask) const;

  Decoder decoder{nullptr};
  torch::nn::Linear output{nullptr};  // tie 'none' only
  torch::Tensor output_bias;          // (V), final_logits_bias only
};
TORCH_MODULE(Seq2Seq);

struct GenerateOptions {
  int64_t beam = 1;
  int64_t nbest = 1;            // hypotheses returned per sentence (<= beam)
  double length_penalty = 1.0;  // fairseq's lenpen: score = sum log p / len^alpha, len counting EOS
  // Generated tokens (EOS not counted) at most floor(a * source length + b), source length counting its
  // non-pad tokens, and at most max_len - 1 (the decoder's positions); then EOS is forced (as fairseq).
  double max_len_a = 0;
  double max_len_b = 200;
};

struct Hypothesis {
  std::vector<int64_t> tokens;  // generated ids, without BOS and without the final EOS
  double score = 0;             // sum of the tokens' log-probabilities (EOS included) / len^length_penalty
};

// Batched over sentences, in InferenceMode; the caller puts the model in eval mode. src (B, S), src_mask
// as for encode_source. Returns per sentence its hypotheses, best first. Finished sentences leave the batch.
std::vector<std::vector<Hypothesis>> greedy_search(Seq2SeqImpl& model, const torch::Tensor& src, const torch::Tensor& src_mask,
                                                   const GenerateOptions& options);
// fairseq's beam search: 2 x beam candidates a step; an EOS among the best `beam` candidates finishes a
// hypothesis; a sentence is done with `beam` finished hypotheses; decoding stops when every sentence is.
std::vector<std::vector<Hypothesis>> beam_search(Seq2SeqImpl& model, const torch::Tensor& src, const torch::Tensor& src_mask,
                                                 const GenerateOptions& options);

}  // namespace trainlarge
