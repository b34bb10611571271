// Compression as tensor operations, the paper's two methods: magnitude masks (per layer or global, and the
// gradual schedule's sparsity), uniform k-bit quantization (calibration, fake quantization, codes) and bit
// packing. Nothing here knows a model: engine/compression.h applies these to a trained Model.
#pragma once

#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace trainlarge {

enum class PruneScope { Layer, Global };
// How many of n entries (or units) a sparsity removes: round(sparsity * n), half to even, as
// torch.nn.utils.prune._compute_nparams_toprune.
int64_t count_to_prune(double sparsity, int64_t n);
// Keep-masks (bool, true = kept) dropping round(sparsity * n) smallest-|w| entries: per tensor (Layer),
// as torch.nn.utils.prune.l1_unstructured, or over all tensors at once (Global), as global_unstructured.
// The same torch::topk call on the same values picks the same entries (tested against PyTorch).
std::vector<torch::Tensor> magnitude_masks(const std::vector<torch::Tensor>& weights, double sparsity, PruneScope scope);

// Uniform k-bit quantization, range from min/max as PyTorch's MinMaxObserver / PerChannelMinMaxObserver
// (0 always representable). Symmetric: signed codes [-2^(k-1), 2^(k-1)-1], zero point 0. Asymmetric:
// [0, 2^k-1] with an integer zero point. Per channel = per output row (dim 0) of a weight matrix.
enum class Granularity { Channel, Tensor };
struct QuantSpec {
  int bits = 0;
  bool symmetric = true;
  Granularity granularity = Granularity::Channel;
  int64_t qmin = 0, qmax = 0;
  torch::Tensor scale;       // float32 (C) or (1)
  torch::Tensor zero_point;  // int32 (C) or (1)
};
QuantSpec calibrate(const torch::Tensor& w, int bits, bool symmetric, Granularity granularity);
// PyTorch's own fake-quant op (at::fake_quantize_per_channel_affine / _per_tensor_affine).
torch::Tensor fake_quantize(const torch::Tensor& w, const QuantSpec& q);
// Codes shifted to [0, 2^bits - 1] (int64), i.e. q - qmin.
torch::Tensor quant_codes(const torch::Tensor& w, const QuantSpec& q);
// Values of codes (int64 in [0, 2^bits-1]) for rows `rows` (int64 row index per code): (c + qmin - zp) * scale.
torch::Tensor dequantize_codes(const torch::Tensor& codes, const torch::Tensor& rows, const QuantSpec& q);

// LSB-first bit packing of non-negative integers below 2^bits (bits 1..8).
torch::Tensor pack_bits(const torch::Tensor& values, int bits);                   // -> uint8 (ceil(n * bits / 8))
torch::Tensor unpack_bits(const torch::Tensor& packed, int64_t count, int bits);  // -> int64 (count)

// Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^3, applied every `every` steps.
// Named as lib/compress's options: initialSparsity, sparsity, startStep, endStep, every.
struct GradualPruning {
  double initial_sparsity = 0, sparsity = 0;
  int64_t start_step = 0, end_step = 0, every = 1;
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

}  // namespace trainlarge
