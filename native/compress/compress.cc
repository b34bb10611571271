#include "compress/compress.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace trainlarge {

// ---------------------------------------------------------------------------------------------------
// Magnitude pruning

// torch.nn.utils.prune._compute_nparams_toprune: Python's round(), i.e. half to even. The engine's one check of
// sparsity's range (lib/config/compress.ts states the rule): outside [0, 1) the count would be negative or reach
// past the n entries, and a NaN's cast to an integer is undefined.
int64_t count_to_prune(double sparsity, int64_t n) {
  if (!(sparsity >= 0 && sparsity < 1)) throw std::invalid_argument("sparsity: must be in [0, 1), got " + std::to_string(sparsity));
  return static_cast<int64_t>(std::nearbyint(sparsity * static_cast<double>(n)));
}

namespace {

torch::Tensor keep_mask(const torch::Tensor& scores, int64_t k) {
  auto mask = torch::ones({scores.numel()}, scores.options().dtype(torch::kBool));
  if (k > 0) mask.index_fill_(0, std::get<1>(torch::topk(scores, k, /*dim=*/-1, /*largest=*/false)), false);
  return mask;
}

}  // namespace

std::vector<torch::Tensor> magnitude_masks(const std::vector<torch::Tensor>& weights, double sparsity, PruneScope scope) {
  if (weights.empty()) throw std::invalid_argument("prune: no weight matrices to prune");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> masks;
  if (scope == PruneScope::Layer) {
    for (const auto& w : weights)
      masks.push_back(keep_mask(w.detach().abs().reshape(-1), count_to_prune(sparsity, w.numel())).view(w.sizes()));
    return masks;
  }
  std::vector<torch::Tensor> flat;
  int64_t total = 0;
  for (const auto& w : weights) {
    flat.push_back(w.detach().abs().reshape(-1));
    total += w.numel();
  }
  auto all = keep_mask(torch::cat(flat), count_to_prune(sparsity, total));
  int64_t at = 0;
  for (const auto& w : weights) {
    masks.push_back(all.narrow(0, at, w.numel()).view(w.sizes()).clone());
    at += w.numel();
  }
  return masks;
}

// ---------------------------------------------------------------------------------------------------
// Quantization

QuantSpec calibrate(const torch::Tensor& w_in, int bits, bool symmetric, Granularity granularity) {
  if (bits < 2 || bits > 8) throw std::invalid_argument("bits: must be an integer in 2..8, got " + std::to_string(bits));
  torch::NoGradGuard no_grad;
  const auto w = w_in.detach().to(torch::kFloat);
  QuantSpec q;
  q.bits = bits;
  q.symmetric = symmetric;
  q.granularity = granularity == Granularity::Channel && w.dim() >= 2 ? Granularity::Channel : Granularity::Tensor;
  q.qmin = symmetric ? -(int64_t{1} << (bits - 1)) : 0;
  q.qmax = symmetric ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
  const auto rows = q.granularity == Granularity::Channel ? w.reshape({w.size(0), -1}) : w.reshape({1, -1});
  // PyTorch's _ObserverBase._calculate_qparams, in float32 as there.
  const auto min_neg = std::get<0>(rows.min(1)).clamp_max(0);
  auto max_pos = std::get<0>(rows.max(1)).clamp_min(0);
  const auto eps = torch::tensor(std::numeric_limits<float>::epsilon());
  if (symmetric) {
    max_pos = torch::max(-min_neg, max_pos);
    q.scale = torch::max(max_pos / (static_cast<float>(q.qmax - q.qmin) / 2), eps);
    q.zero_point = torch::zeros_like(q.scale, torch::kInt);
  } else {
    q.scale = torch::max((max_pos - min_neg) / static_cast<float>(q.qmax - q.qmin), eps);
    q.zero_point = (q.qmin - torch::round(min_neg / q.scale).to(torch::kInt)).clamp(q.qmin, q.qmax).to(torch::kInt);
  }
  q.scale = q.scale.contiguous();
  q.zero_point = q.zero_point.contiguous();
  return q;
}

torch::Tensor fake_quantize(const torch::Tensor& w, const QuantSpec& q) {
  if (q.granularity == Granularity::Channel)
    return at::fake_quantize_per_channel_affine(w, q.scale.to(w.device()), q.zero_point.to(w.device()), 0, q.qmin, q.qmax);
  return at::fake_quantize_per_tensor_affine(w, q.scale.item<double>(), q.zero_point.item<int64_t>(), q.qmin, q.qmax);
}

namespace {

// Broadcast shape of a per-channel parameter against w: (C, 1, 1...).
torch::Tensor per_row(const torch::Tensor& p, const torch::Tensor& w) {
  std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
  if (!shape.empty()) shape[0] = p.numel();
  return p.view(shape);
}

}  // namespace

torch::Tensor quant_codes(const torch::Tensor& w_in, const QuantSpec& q) {
  torch::NoGradGuard no_grad;
  const auto w = w_in.detach().to(torch::kCPU, torch::kFloat);
  auto scale = q.scale.to(torch::kCPU), zp = q.zero_point.to(torch::kCPU, torch::kLong);
  if (q.granularity == Granularity::Channel) {
    scale = per_row(scale, w);
    zp = per_row(zp, w);
  }
  // As PyTorch's fake-quant kernel: zero_point + nearbyint(x * (1 / scale)), clamped.
  const auto inv = 1.0f / scale;
  const auto qv = (torch::round(w * inv).to(torch::kLong) + zp).clamp(q.qmin, q.qmax);
  return qv - q.qmin;
}

torch::Tensor dequantize_codes(const torch::Tensor& codes, const torch::Tensor& rows, const QuantSpec& q) {
  auto scale = q.scale.to(torch::kCPU).index_select(0, rows);
  auto zp = q.zero_point.to(torch::kCPU, torch::kLong).index_select(0, rows);
  return (codes + q.qmin - zp).to(torch::kFloat) * scale;
}

torch::Tensor pack_bits(const torch::Tensor& values, int bits) {
  if (bits < 1 || bits > 8) throw std::invalid_argument("pack_bits: bits must be in 1..8");
  auto v = values.to(torch::kCPU, torch::kLong).contiguous().view(-1);
  const int64_t n = v.numel();
  auto out = torch::zeros({(n * bits + 7) / 8}, torch::kByte);
  const int64_t* src = v.data_ptr<int64_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  const int64_t limit = int64_t{1} << bits;
  int64_t pos = 0;
  for (int64_t i = 0; i < n; ++i, pos += bits) {
    const int64_t x = src[i];
    if (x < 0 || x >= limit)
      throw std::invalid_argument("pack_bits: value " + std::to_string(x) + " does not fit in " + std::to_string(bits) + " bits");
    // At most 8 bits: the value spans at most two bytes.
    const uint32_t shifted = static_cast<uint32_t>(x) << (pos & 7);
    dst[pos >> 3] |= static_cast<uint8_t>(shifted & 0xff);
    if ((pos & 7) + bits > 8) dst[(pos >> 3) + 1] |= static_cast<uint8_t>(shifted >> 8);
  }
  return out;
}

torch::Tensor unpack_bits(const torch::Tensor& packed, int64_t count, int bits) {
  if (bits < 1 || bits > 8) throw std::invalid_argument("unpack_bits: bits must be in 1..8");
  if (count < 0 || count > (std::numeric_limits<int64_t>::max() - 7) / bits)
    throw std::runtime_error("packed data: bad value count " + std::to_string(count));
  auto p = packed.to(torch::kCPU, torch::kByte).contiguous().view(-1);
  if (p.numel() != (count * bits + 7) / 8)
    throw std::runtime_error("packed data: " + std::to_string(p.numel()) + " bytes cannot hold " + std::to_string(count) + " values of " +
                             std::to_string(bits) + " bits");
  auto out = torch::empty({count}, torch::kLong);
  const uint8_t* src = p.data_ptr<uint8_t>();
  int64_t* dst = out.data_ptr<int64_t>();
  const uint32_t mask = (1u << bits) - 1;
  int64_t pos = 0;
  for (int64_t i = 0; i < count; ++i, pos += bits) {
    uint32_t word = src[pos >> 3];
    if ((pos & 7) + bits > 8) word |= static_cast<uint32_t>(src[(pos >> 3) + 1]) << 8;
    dst[i] = (word >> (pos & 7)) & mask;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Gradual pruning

double GradualPruning::sparsity_at(int64_t step) const {
  if (step <= start_step) return initial_sparsity;
  if (step >= end_step) return sparsity;
  const double progress = static_cast<double>(step - start_step) / static_cast<double>(end_step - start_step);
  return sparsity + (initial_sparsity - sparsity) * std::pow(1.0 - progress, 3);
}

bool GradualPruning::due(int64_t step) const {
  if (step < start_step || step > end_step) return false;
  return step == end_step || (step - start_step) % every == 0;
}

}  // namespace trainlarge
