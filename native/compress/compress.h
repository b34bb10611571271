// Compression of a trained Transformer, as the paper does it: magnitude pruning of the weight matrices
// (per layer or global, one-shot or gradual) and uniform k-bit weight quantization (post-training or
// quantization-aware), plus the packed file that makes the savings real on disk.
#pragma once

#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace trainlarge {

class Model;

enum class PruneScope { Layer, Global };
PruneScope parse_scope(const std::string& s);

// Keep-masks (bool, true = kept) dropping round(sparsity * n) smallest-|w| entries: per tensor (Layer),
// as torch.nn.utils.prune.l1_unstructured, or over all tensors at once (Global), as global_unstructured.
// The same torch::topk call on the same values picks the same entries (tested against PyTorch).
std::vector<torch::Tensor> magnitude_masks(const std::vector<torch::Tensor>& weights, double sparsity, PruneScope scope);

// Uniform k-bit quantization, range from min/max as PyTorch's MinMaxObserver / PerChannelMinMaxObserver
// (0 always representable). Symmetric: signed codes [-2^(k-1), 2^(k-1)-1], zero point 0. Asymmetric:
// [0, 2^k-1] with an integer zero point. Per channel = per output row (dim 0) of a weight matrix.
struct QuantSpec {
  int bits = 8;
  bool symmetric = true;
  bool per_channel = true;
  int64_t qmin = 0, qmax = 0;
  torch::Tensor scale;       // float32 (C) or (1)
  torch::Tensor zero_point;  // int32 (C) or (1)
};
QuantSpec calibrate(const torch::Tensor& w, int bits, bool symmetric, bool per_channel);
// PyTorch's own fake-quant op (at::fake_quantize_per_channel_affine / _per_tensor_affine).
torch::Tensor fake_quantize(const torch::Tensor& w, const QuantSpec& q);
// Codes shifted to [0, 2^bits - 1] (int64), i.e. q - qmin.
torch::Tensor quant_codes(const torch::Tensor& w, const QuantSpec& q);
// Values of codes (int64 in [0, 2^bits-1]) for rows `rows` (int64 row index per code): (c + qmin - zp) * scale.
torch::Tensor dequantize_codes(const torch::Tensor& codes, const torch::Tensor& rows, const QuantSpec& q);

// LSB-first bit packing of non-negative integers below 2^bits (bits 1..8).
torch::Tensor pack_bits(const torch::Tensor& values, int bits);  // -> uint8 (ceil(n * bits / 8))
torch::Tensor unpack_bits(const torch::Tensor& packed, int64_t count, int bits);  // -> int64 (count)

// Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^3, applied every `every` steps.
struct GradualPruning {
  double initial = 0, final = 0;
  int64_t start = 0, end = 0, every = 1;
  PruneScope scope = PruneScope::Layer;
  std::vector<std::string> targets;
  double sparsity_at(int64_t step) const;
  bool due(int64_t step) const;
};

// The compression state of a model. Weights hold the compressed values (pruned entries 0, quantized
// entries on their grid) whenever no optimizer update is in progress.
struct Compression {
  std::map<std::string, torch::Tensor> masks;  // bool keep-masks of pruned weights
  std::map<std::string, QuantSpec> quant;
  std::map<std::string, torch::Tensor> latent;  // full-precision weights the optimizer updates (QAT)
  std::optional<GradualPruning> schedule;
  bool empty() const { return masks.empty() && quant.empty() && !schedule; }
};

// Names of the weight matrices compression applies to: attention (qkv, proj) and feed-forward (fc1,
// fc2) of every layer, and the token embedding when `embeddings`. Heads and LayerNorms stay full precision.
std::vector<std::string> compressible(const Model& model, bool attention, bool ffn, bool embeddings);

void prune_model(Model& model, double sparsity, PruneScope scope, const std::vector<std::string>& targets);
void quantize_model(Model& model, int bits, bool symmetric, bool per_channel, const std::vector<std::string>& targets);
void apply_masks(Model& model);

// Around an optimizer update of a compressed model: swap the full-precision latent weights in (the
// gradients were taken at the quantized weights: the straight-through estimator), then after the update
// re-apply masks, re-calibrate and re-quantize.
void begin_update(Model& model);
void end_update(Model& model);
// Gradual pruning: prunes to the schedule's sparsity when `step` is one of its pruning steps.
void prune_on_schedule(Model& model, int64_t step);

// The packed file: a safetensors file whose compressed tensors are stored as parts,
//   NAME#codes (uint8, bit-packed k-bit codes of the kept entries), NAME#mask (uint8, 1 bit per entry,
//   pruned tensors only), NAME#values (float32 kept values of pruned, unquantized tensors),
//   NAME#scale (float32), NAME#zero_point (uint8, asymmetric only)
// and described in the metadata key "trainlarge.compression". Everything else is float32 as usual.
struct Packed {
  NamedTensors tensors;
  std::map<std::string, std::string> metadata;
  std::map<std::string, int64_t> bytes_per_tensor;  // data bytes of each model tensor (all its parts)
  int64_t header_bytes = 0;                         // 8-byte length + JSON header
  int64_t file_bytes = 0;                           // == the saved file's size
};
Packed pack(const Model& model, const std::map<std::string, std::string>& metadata);
bool is_packed(const std::map<std::string, std::string>& metadata);
// Dense weights and the compression state from a packed file's tensors.
std::map<std::string, torch::Tensor> unpack(const SafetensorsFile& file, Compression* state);

// ||W - W_ref|| / ||W_ref|| for each of the model's compressed (or all matrix) weights.
std::map<std::string, double> relative_errors(const Model& compressed, const Model& reference);

}  // namespace trainlarge
