#include "engine/compression.h"

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
  const bool attention = targets.attention, ffn = targets.ffn, embeddings = targets.embeddings;
  std::vector<std::string> out;
  for (const auto& [name, p] : model.named_parameters()) {
    const bool in_layer = name.rfind("layers.", 0) == 0;
    if ((attention && in_layer && (ends_with(name, ".attn.qkv.weight") || ends_with(name, ".attn.proj.weight"))) ||
        (ffn && in_layer && (ends_with(name, ".ffn.fc1.weight") || ends_with(name, ".ffn.fc2.weight"))) ||
        (embeddings && name == "tokens.weight")) {
      out.push_back(name);
    }
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
