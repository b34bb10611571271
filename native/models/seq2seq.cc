#include "models/seq2seq.h"

#include "models/dropout.h"
#include "models/linear_hook.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace trainlarge {

namespace nn = torch::nn;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Through the Linear hook (models/linear_hook.h), as the encoder's layers.
torch::Tensor hooked(const nn::Linear& l, const torch::Tensor& x) { return hooked_linear(l.get(), x); }

// softmax(q k^T / sqrt(hs) + bias) v for q (B, nh, Tq, hs), k, v (B, nh, Tk, hs): libtorch's fused kernel
// without dropout on the probabilities, else the explicit product (dropout from the model's generator),
// as SelfAttentionImpl does.
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& bias, double p,
                     at::Generator& gen) {
  if (p == 0.0) {
    return at::scaled_dot_product_attention(q, k, v, bias.defined() ? c10::optional<at::Tensor>(bias.to(q.scalar_type())) : c10::nullopt);
  }
  auto scores = torch::matmul(q * (1.0 / std::sqrt(static_cast<double>(q.size(-1)))), k.transpose(-2, -1));  // (B, nh, Tq, Tk)
  if (bias.defined()) scores = scores + bias;
  auto probs = dropout(torch::softmax(scores, -1), p, true, gen);
  return torch::matmul(probs.to(v.scalar_type()), v);
}

// (B, S) bool, true = real -> (B, 1, 1, S) additive: 0 for real keys, a large negative for padding.
torch::Tensor key_padding_bias(const torch::Tensor& mask) {
  const auto B = mask.size(0), S = mask.size(1);
  return torch::zeros({B, 1, 1, S}, mask.options().dtype(torch::kFloat)).masked_fill_(mask.logical_not().view({B, 1, 1, S}), -1e9);
}

void init_normal(nn::Module& root, at::Generator& gen) {
  for (auto& m : root.modules(/*include_self=*/true)) {
    if (auto* lin = m->as<nn::Linear>()) {
      lin->weight.normal_(0.0, 0.02, gen);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* emb = m->as<nn::Embedding>()) {
      emb->weight.normal_(0.0, 0.02, gen);
    }
  }
}

}  // namespace

CrossAttentionImpl::CrossAttentionImpl(const ModelConfig& c)
    : heads(c.heads), head_dim(c.head_size()), attention_dropout(c.attention_dropout), dropout_p(c.dropout) {
  q = register_module("q", nn::Linear(c.d_model, c.attention_dim()));
  kv = register_module("kv", nn::Linear(c.d_model, 2 * c.attention_dim()));  // fused k, v: one GEMM over the source
  proj = register_module("proj", nn::Linear(c.attention_dim(), c.d_model));
}

std::pair<torch::Tensor, torch::Tensor> CrossAttentionImpl::keys_values(const torch::Tensor& memory) {
  const auto B = memory.size(0), S = memory.size(1);
  auto u = hooked(kv, memory).view({B, S, 2, heads, head_dim}).permute({2, 0, 3, 1, 4}).unbind(0);  // 2 x (B, nh, S, hs)
  return {u[0], u[1]};
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& bias,
                                          at::Generator& gen) {
  const auto B = x.size(0), T = x.size(1);
  auto q_ = hooked(q, x).view({B, T, heads, head_dim}).transpose(1, 2);  // (B, nh, T, hs)
  auto y = attend(q_, k, v, bias, is_training() ? attention_dropout : 0.0, gen);
  y = y.transpose(1, 2).reshape({B, T, heads * head_dim});
  return dropout(hooked(proj, y), dropout_p, is_training(), gen);
}

void DecoderState::select(const torch::Tensor& index) {
  for (auto& l : layers) {
    if (l.k.defined()) {  // undefined before the first step
      l.k = l.k.index_select(0, index);
      l.v = l.v.index_select(0, index);
    }
    l.cross_k = l.cross_k.index_select(0, index);
    l.cross_v = l.cross_v.index_select(0, index);
  }
  if (memory_bias.defined()) memory_bias = memory_bias.index_select(0, index);
}

DecoderBlockImpl::DecoderBlockImpl(const ModelConfig& c) : pre_norm(c.norm == NormPlacement::Pre) {
  self_attn = register_module("self_attn", SelfAttention(c));
  norm1 = register_module("norm1", layer_norm(c));
  cross_attn = register_module("cross_attn", CrossAttention(c));
  norm2 = register_module("norm2", layer_norm(c));
  ffn = register_module("ffn", FeedForward(c));
  norm3 = register_module("norm3", layer_norm(c));
}

torch::Tensor DecoderBlockImpl::cross(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& memory_bias, at::Generator& gen) {
  return cross_attn->forward(x, k, v, memory_bias, gen);
}

torch::Tensor DecoderBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& memory, const torch::Tensor& causal,
                                        const torch::Tensor& memory_bias, at::Generator& gen) {
  auto [k, v] = cross_attn->keys_values(memory);
  if (pre_norm) {
    auto h = x + self_attn->forward(norm_fp32(norm1, x), causal, gen);
    h = h + cross(norm_fp32(norm2, h), k, v, memory_bias, gen);
    return h + ffn->forward(norm_fp32(norm3, h), gen);
  }
  auto h = norm_fp32(norm1, x + self_attn->forward(x, causal, gen));
  h = norm_fp32(norm2, h + cross(h, k, v, memory_bias, gen));
  return norm_fp32(norm3, h + ffn->forward(h, gen));
}

torch::Tensor DecoderBlockImpl::step(const torch::Tensor& x, LayerCache& cache, const torch::Tensor& memory_bias, at::Generator& gen) {
  // Self-attention of the new position over every position so far: no mask needed (nothing lies ahead).
  auto self_step = [&](const torch::Tensor& in) {
    auto& a = *self_attn;
    const auto N = in.size(0);
    auto u = hooked(a.qkv, in).view({N, 1, 3, a.heads, a.head_dim}).permute({2, 0, 3, 1, 4}).unbind(0);  // 3 x (N, nh, 1, hs)
    cache.k = cache.k.defined() ? torch::cat({cache.k, u[1]}, 2) : u[1].contiguous();                    // (N, nh, t + 1, hs)
    cache.v = cache.v.defined() ? torch::cat({cache.v, u[2]}, 2) : u[2].contiguous();
    auto y = attend(u[0], cache.k, cache.v, {}, a.is_training() ? a.attention_dropout : 0.0, gen);
    y = y.transpose(1, 2).reshape({N, 1, a.heads * a.head_dim});
    return dropout(hooked(a.proj, y), a.dropout_p, a.is_training(), gen);
  };
  if (pre_norm) {
    auto h = x + self_step(norm_fp32(norm1, x));
    h = h + cross(norm_fp32(norm2, h), cache.cross_k, cache.cross_v, memory_bias, gen);
    return h + ffn->forward(norm_fp32(norm3, h), gen);
  }
  auto h = norm_fp32(norm1, x + self_step(x));
  h = norm_fp32(norm2, h + cross(h, cache.cross_k, cache.cross_v, memory_bias, gen));
  return norm_fp32(norm3, h + ffn->forward(h, gen));
}

DecoderImpl::DecoderImpl(const ModelConfig& c) {
  if (c.tie != Tie::All) tokens = register_module("tokens", nn::Embedding(c.vocab_size, c.d_model));
  if (c.positions == Positions::Learned) positions = register_module("positions", nn::Embedding(c.max_len, c.d_model));
  if (c.norm == NormPlacement::Post && c.embedding_norm) embed_norm = register_module("embed_norm", layer_norm(c));
  layers = register_module("layers", nn::ModuleList());
  for (int64_t i = 0; i < c.decoder_layers; ++i) layers->push_back(DecoderBlock(c));
  if (c.norm == NormPlacement::Pre) final_norm = register_module("final_norm", layer_norm(c));
}

Seq2SeqImpl::Seq2SeqImpl(const ModelConfig& c, uint64_t seed) : TransformerImpl(c, seed) {
  if (c.task != Task::Translate) throw std::invalid_argument("model config: a Seq2Seq model needs task 'translate'");
  decoder = register_module("decoder", Decoder(c));
  if (c.tie == Tie::None) output = register_module("output", nn::Linear(nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
  // Zeros at the start, trained with the rest (Marian trains it; transformers keeps its copy as a fixed buffer).
  if (c.final_logits_bias) output_bias = register_parameter("output_bias", torch::zeros({c.vocab_size}));
  // The encoder was initialised by TransformerImpl; the decoder and the output projection the same way
  // (N(0, 0.02), zero biases) from a generator of their own.
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x5851f42d4c957f2dULL);
  init_normal(*decoder, gen);
  if (output) init_normal(*output, gen);
}

torch::Tensor Seq2SeqImpl::decoder_embedding() const { return decoder->tokens ? decoder->tokens->weight : tokens->weight; }

torch::Tensor Seq2SeqImpl::source_mask(const torch::Tensor& src, const torch::Tensor& src_mask) const {
  return src_mask.defined() ? src_mask.to(torch::kBool) : src.ne(config.pad_id);
}

torch::Tensor Seq2SeqImpl::shift_right(const torch::Tensor& targets) const {
  const auto T = targets.size(1);
  auto prev = torch::empty_like(targets);
  prev.select(1, 0).fill_(config.bos_id);
  if (T > 1) prev.narrow(1, 1, T - 1).copy_(targets.narrow(1, 0, T - 1));
  return prev;
}

torch::Tensor Seq2SeqImpl::encode_source(const torch::Tensor& src, const torch::Tensor& src_mask) {
  return encode(src, source_mask(src, src_mask));
}

torch::Tensor Seq2SeqImpl::decode(const torch::Tensor& prev, const torch::Tensor& memory, const torch::Tensor& src_mask) {
  const auto T = prev.size(1);
  if (T > config.max_len) {
    throw std::invalid_argument("targets: length " + std::to_string(T) + " is over maxLen (" + std::to_string(config.max_len) + ")");
  }
  auto x = embed(decoder_embedding(), decoder->positions, decoder->embed_norm, prev, 0);  // (B, T, D)
  x = dropout(x, config.dropout, is_training(), dropout_gen);
  // (1, 1, T, T): position t sees positions <= t. Padding at the end of a target needs no key mask: no
  // real position lies after it.
  auto causal = torch::full({T, T}, -1e9, x.options().dtype(torch::kFloat)).triu_(1).view({1, 1, T, T});
  torch::Tensor memory_bias;
  if (src_mask.defined()) memory_bias = key_padding_bias(src_mask);
  for (const auto& layer : *decoder->layers) x = layer->as<DecoderBlockImpl>()->forward(x, memory, causal, memory_bias, dropout_gen);
  if (decoder->final_norm) x = norm_fp32(decoder->final_norm, x);
  return x;
}

torch::Tensor Seq2SeqImpl::project(const torch::Tensor& h) {
  auto logits = output ? hooked(output, h) : torch::linear(h, decoder_embedding());
  return output_bias.defined() ? logits + output_bias : logits;
}

torch::Tensor Seq2SeqImpl::translation_logits(const torch::Tensor& src, const torch::Tensor& src_mask, const torch::Tensor& targets) {
  const auto mask = source_mask(src, src_mask);
  return project(decode(shift_right(targets), encode(src, mask), mask));
}

LossResult Seq2SeqImpl::translation_loss(const Batch& b, double label_smoothing, bool count_correct) {
  if (!b.targets.defined() || b.targets.dim() != 2 || b.targets.size(0) != b.ids.size(0)) {
    throw std::invalid_argument("batch: a translate batch needs targets of shape [batch, length]");
  }
  const auto mask = source_mask(b.ids, b.attention_mask);
  auto h = decode(shift_right(b.targets), encode(b.ids, mask), mask);  // (B, T, D)
  // Only the non-pad target positions go through the vocabulary projection (as MLM's masked positions).
  auto rows = b.targets.reshape(-1).ne(config.pad_id).nonzero().squeeze(1);
  if (rows.numel() == 0) throw std::invalid_argument("batch: every target token is padding");
  auto targets = b.targets.reshape(-1).index_select(0, rows);                                                          // (N)
  auto lprobs = torch::log_softmax(project(h.reshape({-1, h.size(-1)}).index_select(0, rows)).to(torch::kFloat), -1);  // (N, V)
  auto nll = -lprobs.gather(1, targets.unsqueeze(1)).squeeze(1);
  LossResult r;
  if (label_smoothing == 0.0) {
    r.loss = nll.mean();
  } else {
    const auto V = static_cast<double>(lprobs.size(1));
    r.loss = ((1.0 - label_smoothing) * nll - (label_smoothing / V) * lprobs.sum(-1)).mean();
  }
  r.count = rows.numel();
  if (count_correct) r.correct = lprobs.argmax(-1).eq(targets).sum().item<int64_t>();
  return r;
}

DecoderState Seq2SeqImpl::start(const torch::Tensor& memory, const torch::Tensor& src_mask) {
  DecoderState s;
  if (src_mask.defined()) s.memory_bias = key_padding_bias(src_mask);
  for (const auto& layer : *decoder->layers) {
    auto [k, v] = layer->as<DecoderBlockImpl>()->cross_attn->keys_values(memory);
    LayerCache cache;
    cache.cross_k = k;
    cache.cross_v = v;
    s.layers.push_back(std::move(cache));
  }
  return s;
}

torch::Tensor Seq2SeqImpl::step(const torch::Tensor& tokens_, DecoderState& state) {
  if (state.step >= config.max_len) {
    throw std::invalid_argument("decode: position " + std::to_string(state.step) + " is past maxLen (" + std::to_string(config.max_len) +
                                ")");
  }
  const auto N = tokens_.size(0);
  auto x = embed(decoder_embedding(), decoder->positions, decoder->embed_norm, tokens_.view({N, 1}), state.step);  // (N, 1, D)
  x = dropout(x, config.dropout, is_training(), dropout_gen);
  for (size_t i = 0; i < decoder->layers->size(); ++i) {
    x = decoder->layers->ptr<DecoderBlockImpl>(i)->step(x, state.layers[i], state.memory_bias, dropout_gen);
  }
  if (decoder->final_norm) x = norm_fp32(decoder->final_norm, x);
  ++state.step;
  return project(x.squeeze(1));  // (N, V)
}

// ---------------------------------------------------------------------------------------------------------
// Search

namespace {

struct Prepared {
  torch::Tensor memory, mask;  // (B, S, D), (B, S) bool
  std::vector<int64_t> limit;  // per sentence: generated tokens (EOS not counted) at most this many
};

Prepared prepare(Seq2SeqImpl& model, const torch::Tensor& src, const torch::Tensor& src_mask, const GenerateOptions& o) {
  model.check_input(src, src_mask);
  if (o.max_len_a < 0 || o.max_len_b < 0) throw std::invalid_argument("maxLenA, maxLenB: must be >= 0");
  Prepared p;
  p.mask = model.source_mask(src, src_mask);
  p.memory = model.encode(src, p.mask);
  const auto lengths = p.mask.sum(1).to(torch::kCPU, torch::kLong);
  const auto cap = model.config.max_len - 1;  // positions 0 .. max_len - 1: BOS and the generated tokens but the EOS
  for (int64_t i = 0; i < lengths.size(0); ++i) {
    const auto n = static_cast<int64_t>(std::floor(o.max_len_a * static_cast<double>(lengths[i].item<int64_t>()) + o.max_len_b));
    p.limit.push_back(std::max<int64_t>(0, std::min(n, cap)));
  }
  return p;
}

// Log-probabilities (N, V) float with pad (and BOS when it is not EOS) excluded, and only EOS left on the
// rows in `force_eos` (their length limit is reached; EOS keeps its own log-probability, as fairseq).
torch::Tensor next_log_probs(const torch::Tensor& logits, const ModelConfig& c, const std::vector<int64_t>& force_eos) {
  auto lp = torch::log_softmax(logits.to(torch::kFloat), -1).to(torch::kCPU);
  lp.select(1, c.pad_id).fill_(kNegInf);
  if (c.bos_id != c.eos_id) lp.select(1, c.bos_id).fill_(kNegInf);
  for (const auto r : force_eos) {
    const auto eos = lp[r][c.eos_id].item<float>();
    lp[r].fill_(kNegInf);
    lp[r][c.eos_id] = eos;
  }
  return lp;
}

double normalized(float score, int64_t length, double alpha) {
  return static_cast<double>(score) / std::pow(static_cast<double>(length), alpha);
}

torch::Tensor index_tensor(const std::vector<int64_t>& v, const c10::Device& device) { return torch::tensor(v, torch::kLong).to(device); }

}  // namespace

std::vector<std::vector<Hypothesis>> greedy_search(Seq2SeqImpl& model, const torch::Tensor& src, const torch::Tensor& src_mask,
                                                   const GenerateOptions& o) {
  c10::InferenceMode inference;
  const auto& c = model.config;
  const auto device = src.device();
  auto p = prepare(model, src, src_mask, o);
  const auto B = src.size(0);
  auto state = model.start(p.memory, p.mask);
  std::vector<int64_t> sentence(B);  // row -> sentence
  for (int64_t i = 0; i < B; ++i) sentence[i] = i;
  std::vector<std::vector<int64_t>> tokens(B);
  std::vector<float> score(B, 0.0f);
  std::vector<std::vector<Hypothesis>> out(B);
  auto input = torch::full({B}, c.bos_id, torch::TensorOptions().dtype(torch::kLong).device(device));
  for (int64_t t = 0; !sentence.empty(); ++t) {
    const auto n = static_cast<int64_t>(sentence.size());
    std::vector<int64_t> force;
    for (int64_t r = 0; r < n; ++r) {
      if (t >= p.limit[sentence[r]]) force.push_back(r);
    }
    auto lp = next_log_probs(model.step(input, state), c, force);
    auto [best, arg] = lp.max(-1);
    const auto* bv = best.data_ptr<float>();
    const auto* bi = arg.data_ptr<int64_t>();
    std::vector<int64_t> keep, next;
    for (int64_t r = 0; r < n; ++r) {
      const float s = score[r] + bv[r];  // float, as beam search's candidate scores
      if (bi[r] == c.eos_id) {
        out[sentence[r]].push_back({tokens[r], normalized(s, t + 1, o.length_penalty)});
        continue;
      }
      tokens[r].push_back(bi[r]);
      score[r] = s;
      keep.push_back(r);
      next.push_back(bi[r]);
    }
    if (keep.empty()) break;
    if (static_cast<int64_t>(keep.size()) < n) {
      std::vector<int64_t> s2;
      std::vector<std::vector<int64_t>> t2;
      std::vector<float> sc2;
      for (const auto r : keep) {
        s2.push_back(sentence[r]);
        t2.push_back(std::move(tokens[r]));
        sc2.push_back(score[r]);
      }
      sentence = std::move(s2);
      tokens = std::move(t2);
      score = std::move(sc2);
      state.select(index_tensor(keep, device));
    }
    input = index_tensor(next, device);
  }
  return out;
}

std::vector<std::vector<Hypothesis>> beam_search(Seq2SeqImpl& model, const torch::Tensor& src, const torch::Tensor& src_mask,
                                                 const GenerateOptions& o) {
  const int64_t K = o.beam;
  if (K < 1) throw std::invalid_argument("beam: must be >= 1, got " + std::to_string(K));
  if (o.nbest < 1 || o.nbest > K) throw std::invalid_argument("nbest: must be in 1..beam (" + std::to_string(K) + ")");
  c10::InferenceMode inference;
  const auto& c = model.config;
  const auto V = c.vocab_size;
  const auto device = src.device();
  auto p = prepare(model, src, src_mask, o);
  const auto B = src.size(0);
  auto state = model.start(p.memory, p.mask);
  state.select(torch::arange(B, torch::TensorOptions().dtype(torch::kLong).device(device)).repeat_interleave(K));  // (B K) rows
  std::vector<int64_t> sentence(B);  // active sentence j -> its index in the batch; its rows are j K .. j K + K - 1
  for (int64_t i = 0; i < B; ++i) sentence[i] = i;
  std::vector<std::vector<int64_t>> tokens(B * K);
  // Cumulative log-probabilities; beams 1.. start at -inf so the first step expands beam 0 only.
  auto scores = torch::full({B, K}, kNegInf);
  scores.select(1, 0).fill_(0);
  scores = scores.reshape({B * K});
  auto input = torch::full({B * K}, c.bos_id, torch::TensorOptions().dtype(torch::kLong).device(device));
  std::vector<std::vector<Hypothesis>> done(B);
  for (int64_t t = 0; !sentence.empty(); ++t) {
    const auto n = static_cast<int64_t>(sentence.size());
    std::vector<int64_t> force;
    for (int64_t j = 0; j < n; ++j) {
      if (t >= p.limit[sentence[j]]) {
        for (int64_t k = 0; k < K; ++k) force.push_back(j * K + k);
      }
    }
    auto lp = next_log_probs(model.step(input, state), c, force);  // (n K, V)
    auto cand = (scores.unsqueeze(1) + lp).view({n, K * V});
    // 2 K candidates: at most K of them end in EOS (one per beam), so K others remain to continue.
    auto [top, arg] = cand.topk(std::min(2 * K, K * V), 1);
    const auto C = top.size(1);
    const auto* tv = top.data_ptr<float>();
    const auto* ti = arg.data_ptr<int64_t>();
    std::vector<int64_t> rows, next, active;
    std::vector<float> next_scores;
    for (int64_t j = 0; j < n; ++j) {
      auto& finished = done[sentence[j]];
      std::vector<std::pair<int64_t, int64_t>> picked;  // (candidate rank, row)
      for (int64_t r = 0; r < C; ++r) {
        const float s = tv[j * C + r];
        if (s == kNegInf) break;  // sorted: nothing finite follows
        const auto row = j * K + ti[j * C + r] / V, tok = ti[j * C + r] % V;
        if (tok == c.eos_id) {
          // An EOS among the best K candidates ends a hypothesis (fairseq); lower ones are dropped.
          if (r < K && static_cast<int64_t>(finished.size()) < K) finished.push_back({tokens[row], normalized(s, t + 1, o.length_penalty)});
          continue;
        }
        if (static_cast<int64_t>(picked.size()) < K) picked.emplace_back(r, row);
      }
      if (static_cast<int64_t>(finished.size()) >= K || picked.empty() || t >= p.limit[sentence[j]]) continue;
      active.push_back(sentence[j]);
      for (int64_t k = 0; k < K; ++k) {
        // Fewer than K finite candidates (a tiny vocabulary at the first step): repeat the last at -inf.
        const bool real = k < static_cast<int64_t>(picked.size());
        const auto [r, row] = real ? picked[k] : picked.back();
        rows.push_back(row);
        next.push_back(ti[j * C + r] % V);
        next_scores.push_back(real ? tv[j * C + r] : kNegInf);
      }
    }
    if (active.empty()) break;
    std::vector<std::vector<int64_t>> t2;
    t2.reserve(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      t2.push_back(tokens[rows[i]]);
      t2.back().push_back(next[i]);
    }
    tokens = std::move(t2);
    sentence = std::move(active);
    scores = torch::tensor(next_scores, torch::kFloat);
    state.select(index_tensor(rows, device));
    input = index_tensor(next, device);
  }
  for (auto& hyps : done) {
    std::stable_sort(hyps.begin(), hyps.end(), [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
    if (static_cast<int64_t>(hyps.size()) > o.nbest) hyps.resize(o.nbest);
  }
  return done;
}

}  // namespace trainlarge
