#include "models/transformer.h"

#include "models/dropout.h"
#include "models/linear_hook.h"

#include <ATen/CPUGeneratorImpl.h>
#if TRAINLARGE_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include <cmath>
#include <stdexcept>

namespace trainlarge {

namespace nn = torch::nn;

// Through the Linear hook (models/linear_hook.h): aten::linear unless an int8 scope takes the layer.
static torch::Tensor linear(const nn::Linear& l, const torch::Tensor& x) { return hooked_linear(l.get(), x); }

SelfAttentionImpl::SelfAttentionImpl(const ModelConfig& c)
    : heads(c.heads), head_dim(c.head_size()), attention_dropout(c.attention_dropout), dropout_p(c.dropout) {
  // heads x head_dim is d_model unless heads were pruned away (prune structure 'heads').
  qkv = register_module("qkv", nn::Linear(c.d_model, 3 * c.attention_dim()));
  proj = register_module("proj", nn::Linear(c.attention_dim(), c.d_model));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& bias, at::Generator& gen) {
  const auto B = x.size(0), T = x.size(1);
  auto qkv_ = linear(qkv, x).view({B, T, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});  // (3, B, nh, T, hs), a view
  torch::Tensor y;
  const double p = is_training() ? attention_dropout : 0.0;
  if (p == 0.0) {
    // No dropout on the probabilities: libtorch's fused attention (flash on CPU, forward and backward) reads
    // the strided q, k, v as they are and never materialises the (T x T) scores.
    auto u = qkv_.unbind(0);
    y = at::scaled_dot_product_attention(u[0], u[1], u[2],
                                         bias.defined() ? c10::optional<at::Tensor>(bias.to(u[0].scalar_type())) : c10::nullopt);
  } else {
    // Explicit attention (the probabilities' dropout draws from our generator): one copy lays q, k, v out
    // per head (its backward is one copy too, where three selects cost three zero-filled gradients).
    auto u = qkv_.contiguous().unbind(0);
    // Scale q before the product: (T x hs) multiplies instead of (T x T).
    auto scores = torch::matmul(u[0] * (1.0 / std::sqrt(static_cast<double>(head_dim))), u[1].transpose(-2, -1));  // (B, nh, T, T)
    if (bias.defined()) scores.add_(bias);
    auto probs = dropout(torch::softmax(scores, -1), p, true, gen);
    y = torch::matmul(probs.to(u[2].scalar_type()), u[2]);  // (B, nh, T, hs)
  }
  y = y.transpose(1, 2).reshape({B, T, heads * head_dim});
  return dropout(linear(proj, y), dropout_p, is_training(), gen);
}

FeedForwardImpl::FeedForwardImpl(const ModelConfig& c) : dropout_p(c.dropout), activation(c.activation) {
  fc1 = register_module("fc1", nn::Linear(c.d_model, c.ffn));
  fc2 = register_module("fc2", nn::Linear(c.ffn, c.d_model));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x, at::Generator& gen) {
  torch::Tensor h;
  switch (activation) {
    case Activation::Gelu: h = hooked_linear_gelu(fc1.get(), x); break;  // one kernel where the hook fuses it
    case Activation::Relu: h = torch::relu(linear(fc1, x)); break;
    case Activation::Swish: h = torch::silu(linear(fc1, x)); break;
  }
  return dropout(linear(fc2, h), dropout_p, is_training(), gen);
}

torch::Tensor sinusoidal_positions(int64_t rows, int64_t d_model) {
  // In double, then float, as transformers builds its table (numpy float64 -> float32).
  const int64_t n_sin = (d_model + 1) / 2, n_cos = d_model / 2;
  auto pos = torch::arange(rows, torch::kDouble).unsqueeze(1);                                         // (rows, 1)
  auto i = torch::arange(n_sin, torch::kDouble);                                                       // (n_sin)
  auto angle = pos / torch::pow(10000.0, 2.0 * i / static_cast<double>(d_model)).unsqueeze(0);         // (rows, n_sin)
  return torch::cat({torch::sin(angle), torch::cos(angle.narrow(1, 0, n_cos))}, 1).to(torch::kFloat);  // (rows, D)
}

nn::LayerNorm layer_norm(const ModelConfig& c) { return nn::LayerNorm(nn::LayerNormOptions({c.d_model}).eps(c.layer_norm_eps)); }

// LayerNorm in the weights' precision: under bf16 autocast a GEMM output arrives in bf16, and
// libtorch 1.13's CPU layer_norm refuses mixed dtypes (autocast does not cast it). A no-op in fp32.
torch::Tensor norm_fp32(nn::LayerNorm& norm, const torch::Tensor& x) { return norm(x.to(norm->weight.scalar_type())); }

BlockImpl::BlockImpl(const ModelConfig& c) : pre_norm(c.norm == NormPlacement::Pre) {
  attn = register_module("attn", SelfAttention(c));
  norm1 = register_module("norm1", layer_norm(c));
  ffn = register_module("ffn", FeedForward(c));
  norm2 = register_module("norm2", layer_norm(c));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& bias, at::Generator& gen) {
  if (pre_norm) {
    auto h = x + attn->forward(norm_fp32(norm1, x), bias, gen);
    return h + ffn->forward(norm_fp32(norm2, h), gen);
  }
  auto h = norm_fp32(norm1, x + attn->forward(x, bias, gen));
  return norm_fp32(norm2, h + ffn->forward(h, gen));
}

MlmHeadImpl::MlmHeadImpl(const ModelConfig& c) {
  dense = register_module("dense", nn::Linear(c.d_model, c.d_model));
  norm = register_module("norm", layer_norm(c));
  bias = register_parameter("bias", torch::zeros({c.vocab_size}));
}

torch::Tensor MlmHeadImpl::forward(const torch::Tensor& h, const torch::Tensor& token_embedding) {
  return torch::linear(norm_fp32(norm, hooked_linear_gelu(dense.get(), h)), token_embedding, bias);
}

ClassifierHeadImpl::ClassifierHeadImpl(const ModelConfig& c) : dropout_p(c.dropout) {
  dense = register_module("dense", nn::Linear(c.d_model, c.d_model));
  out = register_module("out", nn::Linear(c.d_model, c.num_labels));
}

torch::Tensor ClassifierHeadImpl::forward(const torch::Tensor& first_token, at::Generator& gen) {
  auto h = torch::tanh(linear(dense, dropout(first_token, dropout_p, is_training(), gen)));
  return linear(out, dropout(h, dropout_p, is_training(), gen));
}

TransformerImpl::TransformerImpl(const ModelConfig& c, uint64_t seed)
    : config(c), dropout_gen(at::make_generator<at::CPUGeneratorImpl>(seed)) {
  c.validate();
  tokens = register_module("tokens", nn::Embedding(c.vocab_size, c.d_model));
  if (c.positions == Positions::Learned) {
    positions = register_module("positions", nn::Embedding(c.max_len, c.d_model));
  } else {
    // A buffer: it moves with the module (to CUDA) but is no parameter: not trained, not saved.
    sinusoid = register_buffer("sinusoid", sinusoidal_positions(c.max_len, c.d_model));
  }
  if (c.norm == NormPlacement::Post && c.embedding_norm) embed_norm = register_module("embed_norm", layer_norm(c));
  layers = register_module("layers", nn::ModuleList());
  for (int64_t i = 0; i < c.encoder_depth(); ++i) layers->push_back(Block(c));
  if (c.norm == NormPlacement::Pre) final_norm = register_module("final_norm", layer_norm(c));
  if (c.task == Task::MLM)
    mlm_head = register_module("mlm_head", MlmHead(c));
  else if (c.task == Task::Classify)
    cls_head = register_module("cls_head", ClassifierHead(c));
  // Translate: no head here; models/seq2seq.h adds the decoder and the output projection.

  // BERT/RoBERTa initialisation: N(0, 0.02) weights, zero biases, LayerNorm (1, 0); from a seeded
  // generator so the same seed gives the same model on any thread.
  torch::NoGradGuard no_grad;
  auto init_gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x9e3779b97f4a7c15ULL);
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* lin = m->as<nn::Linear>()) {
      lin->weight.normal_(0.0, 0.02, init_gen);
      lin->bias.zero_();
    } else if (auto* emb = m->as<nn::Embedding>()) {
      emb->weight.normal_(0.0, 0.02, init_gen);
    }
  }
}

void TransformerImpl::reseed_dropout(uint64_t seed) {
  std::lock_guard<std::mutex> lock(dropout_gen.mutex());
  dropout_gen.set_current_seed(seed);
}

void TransformerImpl::check_input(const torch::Tensor& ids, const torch::Tensor& attention_mask) const {
  if (ids.dim() != 2)
    throw std::invalid_argument("tokens: expected shape [batch, length], got " + std::to_string(ids.dim()) + " dimensions");
  if (ids.size(1) > config.max_len || ids.size(1) < 1) {
    throw std::invalid_argument("tokens: length " + std::to_string(ids.size(1)) + " is outside 1..maxLen (" +
                                std::to_string(config.max_len) + ")");
  }
  if (ids.numel() > 0) {
    const auto lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= config.vocab_size) {
      throw std::invalid_argument("tokens: ids must be in [0, vocabSize=" + std::to_string(config.vocab_size) + "), got values in [" +
                                  std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
  }
  if (attention_mask.defined() && attention_mask.sizes() != ids.sizes()) {
    throw std::invalid_argument("attentionMask: must have the same shape as tokens");
  }
}

torch::Tensor TransformerImpl::embed(const torch::Tensor& table, const nn::Embedding& learned, const nn::LayerNorm& norm,
                                     const torch::Tensor& ids, int64_t start) {
  const auto T = ids.size(1);
  auto x = torch::embedding(table, ids);  // (B, T, D)
  if (config.scale_embeddings) x = x * std::sqrt(static_cast<double>(config.d_model));
  x = x + (learned ? learned->weight.narrow(0, start, T) : sinusoid.narrow(0, start, T).to(x.scalar_type()));
  if (norm) x = norm_fp32(const_cast<nn::LayerNorm&>(norm), x);
  return x;
}

torch::Tensor TransformerImpl::encode(const torch::Tensor& ids, const torch::Tensor& attention_mask) {
  const auto T = ids.size(1);
  auto x = embed(tokens->weight, positions, embed_norm, ids, 0);  // (B, T, D)
  x = dropout(x, config.dropout, is_training(), dropout_gen);
  torch::Tensor bias;  // (B, 1, 1, T): 0 for real keys, a large negative for padding
  if (attention_mask.defined()) {
    bias = torch::zeros({ids.size(0), 1, 1, T}, x.options().dtype(torch::kFloat))
               .masked_fill_(attention_mask.logical_not().view({ids.size(0), 1, 1, T}), -1e9);
  }
  for (const auto& layer : *layers) x = layer->as<BlockImpl>()->forward(x, bias, dropout_gen);
  if (final_norm) x = norm_fp32(final_norm, x);
  return x;
}

static void require_encoder_task(const ModelConfig& c, const char* what) {
  if (c.task == Task::Translate) {
    throw std::invalid_argument(std::string(what) + ": a 'translate' model has no encoder-only head (use its Seq2Seq methods)");
  }
}

torch::Tensor TransformerImpl::logits(const torch::Tensor& ids, const torch::Tensor& attention_mask) {
  require_encoder_task(config, "logits");
  auto h = encode(ids, attention_mask);
  if (mlm_head) return mlm_head->forward(h, tokens->weight);
  return cls_head->forward(h.select(1, 0), dropout_gen);
}

LossResult TransformerImpl::loss(const Batch& b, bool count_correct, bool per_target) {
  require_encoder_task(config, "loss");
  auto h = encode(b.ids, b.attention_mask);
  torch::Tensor logits;
  if (mlm_head) {
    if (!b.positions.defined()) throw std::invalid_argument("batch: an MLM batch needs masked positions");
    auto picked = h.reshape({-1, h.size(-1)}).index_select(0, b.positions);  // (N, D)
    logits = mlm_head->forward(picked, tokens->weight);                      // (N, V)
  } else {
    logits = cls_head->forward(h.select(1, 0), dropout_gen);  // (B, C)
  }
  LossResult r;
  if (per_target) {
    auto each = torch::nn::functional::cross_entropy(logits.to(torch::kFloat), b.targets,
                                                     torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    r.loss = each.mean();
    r.per_target = each.detach();
  } else {
    r.loss = torch::cross_entropy_loss(logits.to(torch::kFloat), b.targets);
  }
  r.count = b.targets.numel();
  if (count_correct) r.correct = logits.argmax(-1).eq(b.targets).sum().item<int64_t>();
  return r;
}

int64_t TransformerImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace trainlarge
