// Compression of a whole trained Model, as the paper does it: which weight matrices are compressed,
// one-shot or gradual magnitude pruning, k-bit quantization (post-training or quantization-aware), the
// update protocol the trainer follows for a compressed model, and what a model carries. The tensor
// operations themselves are in compress/.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compress/compress.h"

namespace trainlarge {

class Model;

// Which weight matrices: attention (qkv, proj) and feed-forward (fc1, fc2) of every layer, and the token
// embedding. Heads and LayerNorms stay full precision. A translate model's decoder layers count too:
// attention is self_attn.{qkv,proj} and cross_attn.{q,kv,proj}, embeddings include decoder.tokens.
struct Targets {
  bool attention = false, ffn = false, embeddings = false;
};
std::vector<std::string> compressible(const Model& model, const Targets& targets);

enum class PruneSchedule { OneShot, Gradual };
// What pruning removes: single weights (masks; the matrices keep their shapes), or whole units, which makes
// the matrices smaller: attention heads (their rows of qkv, their columns of proj), feed-forward hidden
// units (a row of fc1, a column of fc2), or both.
enum class PruneStructure { Unstructured, Heads, Ffn, HeadsFfn };
struct PruneOptions {
  PruneStructure structure = PruneStructure::Unstructured;
  double sparsity = 0;  // structured: the fraction of heads / units removed from every layer
  PruneScope scope = PruneScope::Layer;
  PruneSchedule schedule = PruneSchedule::OneShot;
  double initial_sparsity = 0;  // gradual only, as the three below
  int64_t start_step = 0, end_step = 0, every = 1;
  Targets targets;
};
// One-shot: prunes now. Gradual: attaches the schedule; the trainer prunes on it (prune_on_schedule).
// Unstructured only: structured pruning makes a new model (prune_structured).
void prune(Model& model, const PruneOptions& options);

// Structured pruning, one-shot: a new, smaller model without the round(sparsity x heads) least important
// heads and/or round(sparsity x ffn) least important feed-forward units of every layer (the same count in
// each, so one config describes it); a translator's decoder layers too, in their self-attention, their
// cross-attention (each module picks its own heads) and their FFN. A unit's importance is the L2 norm of its
// weights: a head's q, k, v rows and proj columns; a feed-forward unit's fc1 row and fc2 column. The new model computes exactly what
// the original computes with those units' weights set to zero. Needs an uncompressed model (no masks,
// quantization, schedule or int8): prune structurally first, then prune or quantize the smaller model.
std::shared_ptr<Model> prune_structured(const Model& model, const PruneOptions& options);

struct QuantizeOptions {
  int bits = 0;
  bool symmetric = true;
  Granularity granularity = Granularity::Channel;
  Targets targets;
};
// Rounds the selected weights to their k-bit grid and keeps the full-precision copies for QAT.
void quantize(Model& model, const QuantizeOptions& options);

// Prunes `targets` to `sparsity` now (pruned entries stay pruned).
void prune_weights(Model& model, double sparsity, PruneScope scope, const std::vector<std::string>& targets);
void apply_masks(Model& model);

// Around an optimizer update of a compressed model: swap the full-precision latent weights in (the
// gradients were taken at the quantized weights: the straight-through estimator), then after the update
// re-apply masks, re-calibrate and re-quantize.
void begin_update(Model& model);
void end_update(Model& model);
// Gradual pruning: prunes to the schedule's sparsity when `step` is one of its pruning steps.
void prune_on_schedule(Model& model, int64_t step);

// ||W - W_ref|| / ||W_ref|| for each of the model's matrix weights.
std::map<std::string, double> relative_errors(const Model& compressed, const Model& reference);

// What a model carries: per weight its pruning and quantization, the int8 packing, a pending schedule.
struct CompressionSummary {
  struct Pruned {
    int64_t numel = 0, kept = 0;
    double sparsity = 0;
  };
  struct Quantized {
    int bits = 0;
    bool symmetric = true;
    Granularity granularity = Granularity::Channel;
  };
  struct Int8 {
    std::string engine;
    int64_t layers = 0, exact_layers = 0, weight_bytes = 0;
  };
  std::map<std::string, Pruned> pruned;
  std::map<std::string, Quantized> quantized;
  std::optional<Int8> int8;
  std::optional<GradualPruning> schedule;
};
CompressionSummary summarize(const Model& model);

}  // namespace trainlarge
