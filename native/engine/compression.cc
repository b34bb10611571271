#include "engine/compression.h"

#include <sstream>
#include <stdexcept>

#include "engine/int8.h"
#include "engine/model.h"

namespace trainlarge {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::map<std::string, torch::Tensor> params_by_name(const Model& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, p] : model.named_parameters()) out.emplace(name, p);
  return out;
}

std::vector<torch::Tensor> select(const std::map<std::string, torch::Tensor>& params, const std::vector<std::string>& targets) {
  std::vector<torch::Tensor> out;
  for (const auto& name : targets) {
    auto it = params.find(name);
    if (it == params.end()) throw std::invalid_argument("targets: the model has no weight '" + name + "'");
    out.push_back(it->second);
  }
  return out;
}

}  // namespace

std::vector<std::string> compressible(const Model& model, const Targets& targets) {
  // A translate model's decoder layers carry the same matrices under other names (models/seq2seq.h):
  // self_attn.{qkv,proj} and cross_attn.{q,kv,proj} are attention, ffn.{fc1,fc2} the feed-forward, and
  // decoder.tokens (tie 'decoder' and 'none') the decoder's embedding, which is also its output projection.
  // An untied output.weight (tie 'none') is a head, as the classifier's: it stays full precision.
  const bool attention = targets.attention, ffn = targets.ffn, embeddings = targets.embeddings;
  std::vector<std::string> out;
  for (const auto& [name, p] : model.named_parameters()) {
    const bool encoder_layer = name.rfind("layers.", 0) == 0, decoder_layer = name.rfind("decoder.layers.", 0) == 0;
    const bool attn = (encoder_layer && (ends_with(name, ".attn.qkv.weight") || ends_with(name, ".attn.proj.weight"))) ||
                      (decoder_layer && (ends_with(name, ".self_attn.qkv.weight") || ends_with(name, ".self_attn.proj.weight") ||
                                         ends_with(name, ".cross_attn.q.weight") || ends_with(name, ".cross_attn.kv.weight") ||
                                         ends_with(name, ".cross_attn.proj.weight")));
    const bool feed_forward =
        (encoder_layer || decoder_layer) && (ends_with(name, ".ffn.fc1.weight") || ends_with(name, ".ffn.fc2.weight"));
    const bool embedding = name == "tokens.weight" || name == "decoder.tokens.weight";
    if ((attention && attn) || (ffn && feed_forward) || (embeddings && embedding)) out.push_back(name);
  }
  return out;
}

void prune_weights(Model& model, double sparsity, PruneScope scope, const std::vector<std::string>& targets) {
  if (targets.empty())
    throw std::invalid_argument("prune: the model has no weight matrices to prune (select attention, ffn or embeddings)");
  torch::NoGradGuard no_grad;
  auto params = params_by_name(model);
  auto weights = select(params, targets);
  auto masks = magnitude_masks(weights, sparsity, scope);
  auto& c = model.compression;
  for (size_t i = 0; i < targets.size(); ++i) {
    auto mask = masks[i];
    auto old = c.masks.find(targets[i]);
    if (old != c.masks.end()) mask = mask.logical_and(old->second);  // pruned stays pruned
    weights[i].masked_fill_(mask.logical_not(), 0);                  // +0, not w * 0 (which keeps the sign: -0)
    auto latent = c.latent.find(targets[i]);
    if (latent != c.latent.end()) latent->second.masked_fill_(mask.logical_not(), 0);
    c.masks[targets[i]] = mask;
  }
}

void quantize(Model& model, const QuantizeOptions& options) {
  const auto targets = compressible(model, options.targets);
  if (targets.empty())
    throw std::invalid_argument("quantize: the model has no weight matrices to quantize (select attention, ffn or embeddings)");
  auto& c = model.compression;
  for (const auto& name : targets) {
    if (c.quant.count(name)) {
      throw std::invalid_argument("quantize: '" + name + "' is already quantized (" + std::to_string(c.quant.at(name).bits) +
                                  " bits); quantize the full-precision model instead");
    }
  }
  torch::NoGradGuard no_grad;
  auto params = params_by_name(model);
  auto weights = select(params, targets);
  for (size_t i = 0; i < targets.size(); ++i) {
    auto spec = calibrate(weights[i], options.bits, options.symmetric, options.granularity);
    c.latent[targets[i]] = weights[i].detach().clone();  // kept for quantization-aware fine-tuning
    weights[i].copy_(fake_quantize(weights[i], spec));
    c.quant[targets[i]] = spec;
  }
}

void apply_masks(Model& model) {
  if (model.compression.masks.empty()) return;
  torch::NoGradGuard no_grad;
  auto params = params_by_name(model);
  for (const auto& [name, mask] : model.compression.masks) params.at(name).masked_fill_(mask.logical_not(), 0);
}

void begin_update(Model& model) {
  auto& c = model.compression;
  if (c.quant.empty()) return;
  torch::NoGradGuard no_grad;
  auto params = params_by_name(model);
  for (const auto& [name, spec] : c.quant) {
    auto& p = params.at(name);
    auto it = c.latent.find(name);
    if (it == c.latent.end()) it = c.latent.emplace(name, p.detach().clone()).first;  // e.g. loaded from a packed file
    p.copy_(it->second);
  }
}

void end_update(Model& model) {
  auto& c = model.compression;
  apply_masks(model);
  if (c.quant.empty()) return;
  torch::NoGradGuard no_grad;
  auto params = params_by_name(model);
  for (auto& [name, spec] : c.quant) {
    auto& p = params.at(name);
    c.latent.at(name).copy_(p);
    spec = calibrate(p, spec.bits, spec.symmetric, spec.granularity);
    p.copy_(fake_quantize(p, spec));
  }
}

void prune_on_schedule(Model& model, int64_t step) {
  const auto& s = model.compression.schedule;
  if (!s || !s->due(step)) return;
  const auto schedule = *s;
  prune_weights(model, schedule.sparsity_at(step), schedule.scope, schedule.targets);
  // Pruned quantized weights: the kept ones stay on their grid, the pruned ones are exactly 0.
}

std::map<std::string, double> relative_errors(const Model& compressed, const Model& reference) {
  torch::NoGradGuard no_grad;
  auto ref = params_by_name(reference);
  std::map<std::string, double> out;
  for (const auto& [name, p] : compressed.named_parameters()) {
    if (p.dim() < 2) continue;
    auto r = ref.find(name);
    if (r == ref.end() || r->second.sizes() != p.sizes()) throw std::invalid_argument("reference: the models differ in '" + name + "'");
    const auto w = r->second.detach().to(torch::kCPU, torch::kDouble);
    const double denom = w.norm().item<double>();
    out[name] = denom > 0 ? (p.detach().to(torch::kCPU, torch::kDouble) - w).norm().item<double>() / denom : 0.0;
  }
  return out;
}

void prune(Model& model, const PruneOptions& o) {
  if (o.structure != PruneStructure::Unstructured)
    throw std::invalid_argument("prune: structured pruning makes a new, smaller model (prune_structured), not a pruned one in place");
  auto targets = compressible(model, o.targets);
  if (o.schedule == PruneSchedule::OneShot) {
    prune_weights(model, o.sparsity, o.scope, targets);
    return;
  }
  // The schedule's arithmetic divides by endStep - startStep and takes the step modulo every.
  if (o.end_step <= o.start_step || o.every <= 0) throw std::invalid_argument("gradual pruning: needs endStep > startStep and every > 0");
  if (targets.empty())
    throw std::invalid_argument("prune: the model has no weight matrices to prune (select attention, ffn or embeddings)");
  GradualPruning g;
  g.initial_sparsity = o.initial_sparsity;
  g.sparsity = o.sparsity;
  g.start_step = o.start_step;
  g.end_step = o.end_step;
  g.every = o.every;
  g.scope = o.scope;
  g.targets = std::move(targets);
  model.compression.schedule = std::move(g);
}

namespace {

std::string number_text(double x) {
  std::ostringstream o;
  o << x;
  return o.str();
}

// How many of a layer's n units survive `sparsity` (count_to_prune checks its range); at least one must.
int64_t units_kept(double sparsity, int64_t n, const char* units) {
  const int64_t kept = n - count_to_prune(sparsity, n);
  if (kept < 1) {
    throw std::invalid_argument("sparsity: " + number_text(sparsity) + " would remove all " + std::to_string(n) + " " + units +
                                " of every layer; it must leave at least one (at most " + number_text(double(n - 1) / double(n)) + ")");
  }
  return kept;
}

// The indices, ascending, of the `keep` largest importances (ties: the lower index).
torch::Tensor kept_units(const torch::Tensor& importance, int64_t keep) {
  const auto order = std::get<1>(torch::sort(importance, /*stable=*/true, /*dim=*/0, /*descending=*/true));
  return std::get<0>(torch::sort(order.narrow(0, 0, keep)));
}

// Sum of squares over all dimensions but `dim`, in double: the squared L2 norm of each unit's weights.
torch::Tensor square_norms(const torch::Tensor& w, int64_t dim) {
  std::vector<int64_t> others;
  for (int64_t d = 0; d < w.dim(); ++d)
    if (d != dim) others.push_back(d);
  return w.to(torch::kDouble).square().sum(others);
}

}  // namespace

std::shared_ptr<Model> prune_structured(const Model& model, const PruneOptions& o) {
  if (o.structure == PruneStructure::Unstructured) throw std::invalid_argument("prune_structured: structure is 'unstructured'; use prune");
  if (o.scope != PruneScope::Layer) {
    throw std::invalid_argument(
        "scope: structured pruning removes the same number of units from every layer (one config describes the model): "
        "only 'layer' applies, got 'global'");
  }
  if (o.schedule != PruneSchedule::OneShot)
    throw std::invalid_argument("schedule: structured pruning is one-shot ('oneshot'); 'gradual' applies to unstructured pruning");
  const auto& state = model.compression;
  if (!state.masks.empty() || !state.quant.empty() || state.schedule || model.int8) {
    throw std::invalid_argument(
        "prune: structured pruning needs an uncompressed model, and this one is already pruned, quantized or on int8 kernels; "
        "remove heads or feed-forward units first, then prune or quantize the smaller model");
  }
  const auto& c = model.config();
  const bool heads = o.structure == PruneStructure::Heads || o.structure == PruneStructure::HeadsFfn;
  const bool ffn = o.structure == PruneStructure::Ffn || o.structure == PruneStructure::HeadsFfn;
  const int64_t H = c.heads, hs = c.head_size(), D = c.d_model, F = c.ffn;
  ModelConfig smaller = c;
  if (heads) smaller.heads = units_kept(o.sparsity, H, "attention heads");
  if (ffn) smaller.ffn = units_kept(o.sparsity, F, "feed-forward units");
  const int64_t Hk = smaller.heads, Fk = smaller.ffn;
  smaller.head_dim = Hk * hs == D ? 0 : hs;  // the heads keep their width

  torch::NoGradGuard no_grad;
  auto w = params_by_name(model);
  // Self-attention (the encoder's, the decoder's causal one): qkv rows are (3, heads, head size), proj columns (heads, head size).
  const auto self_attention = [&](const std::string& at) {
    auto &qkv = w.at(at + "qkv.weight"), &qkv_bias = w.at(at + "qkv.bias"), &proj = w.at(at + "proj.weight");
    const auto q = qkv.detach().view({3, H, hs, D}), p = proj.detach().view({D, H, hs});
    const auto keep = kept_units((square_norms(q, 1) + square_norms(p, 1)).sqrt(), Hk);
    qkv = q.index_select(1, keep).reshape({3 * Hk * hs, D});
    qkv_bias = qkv_bias.detach().view({3, H, hs}).index_select(1, keep).reshape({3 * Hk * hs});
    proj = p.index_select(1, keep).reshape({D, Hk * hs});
  };
  // The decoder's cross-attention: q rows (heads, head size), kv rows (2, heads, head size), proj columns (heads, head size).
  const auto cross_attention = [&](const std::string& at) {
    auto &qw = w.at(at + "q.weight"), &qb = w.at(at + "q.bias"), &kvw = w.at(at + "kv.weight"), &kvb = w.at(at + "kv.bias");
    auto& proj = w.at(at + "proj.weight");
    const auto q = qw.detach().view({H, hs, D}), kv = kvw.detach().view({2, H, hs, D}), p = proj.detach().view({D, H, hs});
    const auto keep = kept_units((square_norms(q, 0) + square_norms(kv, 1) + square_norms(p, 1)).sqrt(), Hk);
    qw = q.index_select(0, keep).reshape({Hk * hs, D});
    qb = qb.detach().view({H, hs}).index_select(0, keep).reshape({Hk * hs});
    kvw = kv.index_select(1, keep).reshape({2 * Hk * hs, D});
    kvb = kvb.detach().view({2, H, hs}).index_select(1, keep).reshape({2 * Hk * hs});
    proj = p.index_select(1, keep).reshape({D, Hk * hs});
  };
  const auto feed_forward = [&](const std::string& at) {
    auto &fc1 = w.at(at + "fc1.weight"), &fc1_bias = w.at(at + "fc1.bias"), &fc2 = w.at(at + "fc2.weight");
    const auto keep = kept_units((square_norms(fc1, 0) + square_norms(fc2, 1)).sqrt(), Fk);
    fc1 = fc1.detach().index_select(0, keep);
    fc1_bias = fc1_bias.detach().index_select(0, keep);
    fc2 = fc2.detach().index_select(1, keep);
  };
  // Every attention module keeps its own most important heads, the same count in each (one config describes them all).
  for (int64_t l = 0; l < c.encoder_depth(); ++l) {
    const std::string at = "layers." + std::to_string(l) + ".";
    if (heads) self_attention(at + "attn.");
    if (ffn) feed_forward(at + "ffn.");
  }
  if (model.seq2seq()) {
    for (int64_t l = 0; l < c.decoder_layers; ++l) {
      const std::string at = "decoder.layers." + std::to_string(l) + ".";
      if (heads) {
        self_attention(at + "self_attn.");
        cross_attention(at + "cross_attn.");
      }
      if (ffn) feed_forward(at + "ffn.");
    }
  }
  auto out = std::make_shared<Model>(smaller, /*seed=*/0, model.device);
  out->load_weights(w, /*strict=*/true);
  out->module->train(model.module->is_training());
  return out;
}

CompressionSummary summarize(const Model& model) {
  CompressionSummary out;
  const auto& c = model.compression;
  for (const auto& [name, m] : c.masks) {
    const int64_t kept = m.sum().item<int64_t>();
    out.pruned[name] = {m.numel(), kept, 1.0 - static_cast<double>(kept) / static_cast<double>(m.numel())};
  }
  for (const auto& [name, q] : c.quant) out.quantized[name] = {q.bits, q.symmetric, q.granularity};
  if (model.int8) {
    const auto& i = *model.int8;
    out.int8 = CompressionSummary::Int8{i.engine, static_cast<int64_t>(i.packed.size()), i.exact, i.weight_bytes};
  }
  out.schedule = c.schedule;
  return out;
}

}  // namespace trainlarge
