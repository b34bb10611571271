#include "models/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

namespace trainlarge {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr int64_t kGrain = 1 << 15;

// v when keep, else +0.0 (a NaN or an infinity included, as a select would), without a branch: at p = 0.1 a
// branch on the random keep bit was mispredicted often enough to cost more than the rest of the loop.
inline float keep_or_zero(float v, bool keep) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits &= 0u - static_cast<uint32_t>(keep);
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// out = keep ? x * scale : 0 and mask = keep, for element i keeping iff its 32-bit uniform >= threshold.
// One hash gives two elements' uniforms (its high and low halves). The loops work on local __restrict copies
// of their pointers: a store through the uint8_t mask may alias anything, so through the lambda's captured
// references every pointer and constant was loaded again after each mask byte (perf: 2-3x the loop's time).
template <typename T>
void forward_kernel(const T* x, T* out, uint8_t* mask, int64_t n, uint64_t key, uint32_t threshold, float scale) {
  at::parallel_for(0, (n + 1) / 2, kGrain, [=](int64_t begin, int64_t end) {
    const T* __restrict xs = x;
    T* __restrict o = out;
    uint8_t* __restrict m = mask;
    const auto keep_one = [&](int64_t i, uint32_t u) {
      const bool k = u >= threshold;
      m[i] = k;
      o[i] = static_cast<T>(keep_or_zero(static_cast<float>(xs[i]) * scale, k));
    };
    const int64_t pairs = std::min(end, n / 2);  // pairs whose both elements exist
    for (int64_t j = begin; j < pairs; ++j) {
      const uint64_t h = splitmix64(key + static_cast<uint64_t>(j) * 0x9e3779b97f4a7c15ULL);
      keep_one(2 * j, static_cast<uint32_t>(h));
      keep_one(2 * j + 1, static_cast<uint32_t>(h >> 32));
    }
    if (pairs < end) keep_one(2 * pairs, static_cast<uint32_t>(splitmix64(key + static_cast<uint64_t>(pairs) * 0x9e3779b97f4a7c15ULL)));
  });
}

template <typename T>
void backward_kernel(const T* g, const uint8_t* mask, T* out, int64_t n, float scale) {
  at::parallel_for(0, n, kGrain, [=](int64_t begin, int64_t end) {
    const T* __restrict gs = g;
    const uint8_t* __restrict m = mask;
    T* __restrict o = out;
    for (int64_t i = begin; i < end; ++i) o[i] = static_cast<T>(keep_or_zero(static_cast<float>(gs[i]) * scale, m[i] != 0));
  });
}

struct FusedDropout : torch::autograd::Function<FusedDropout> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input, double p, int64_t key) {
    auto x = input.contiguous();
    auto out = at::empty_like(x, at::MemoryFormat::Contiguous);
    auto mask = at::empty(x.sizes(), x.options().dtype(at::kByte));
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    // P(uniform32 < threshold) = p, up to 2^-32.
    const auto threshold = static_cast<uint32_t>(std::min(std::ldexp(p, 32), 4294967295.0));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "trainlarge_dropout", [&] {
      forward_kernel<scalar_t>(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), mask.data_ptr<uint8_t>(), x.numel(),
                               static_cast<uint64_t>(key), threshold, scale);
    });
    ctx->save_for_backward({mask});
    ctx->saved_data["scale"] = static_cast<double>(scale);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto mask = ctx->get_saved_variables()[0];
    const auto scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    auto g = grads[0].contiguous();
    auto out = at::empty_like(g, at::MemoryFormat::Contiguous);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, g.scalar_type(), "trainlarge_dropout_backward", [&] {
      backward_kernel<scalar_t>(g.data_ptr<scalar_t>(), mask.data_ptr<uint8_t>(), out.data_ptr<scalar_t>(), g.numel(), scale);
    });
    return {out, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor dropout(const torch::Tensor& x, double p, bool training, at::Generator& gen) {
  if (!training || p == 0.0) return x;
  if (p >= 1.0) return x * 0;
  if (x.device().is_cpu() && gen.device().is_cpu() && x.numel() > 0) {
    uint64_t key;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      key = gen.get<at::CPUGeneratorImpl>()->random64();
    }
    return FusedDropout::apply(x, p, static_cast<int64_t>(key));
  }
  // CUDA: ATen's own fused dropout kernel (the one torch.nn.functional.dropout runs), with our generator. It
  // takes the keep probability, writes a 1-byte mask and scales in float32 (its accscalar_t) for every dtype;
  // its backward is _masked_scale, float32 too.
  if (x.is_cuda()) return std::get<0>(at::_fused_dropout(x, 1.0 - p, gen));
  return dropout_unfused(x, p, gen);
}

torch::Tensor dropout_unfused(const torch::Tensor& x, double p, at::Generator& gen) {
  // x * bernoulli(1 - p) is exact in any dtype (the mask is 0 or 1). The scale is applied in float32 for bf16
  // and fp16 (their opmath type), rounding once, as ATen's fused kernels do: dividing the mask by (1 - p) in
  // x's dtype rounded the scale to bf16 first (1 / 0.9 -> 1.109375, kept activations up to 0.2% small), and so
  // does ATen's in-place mul_ by a Scalar on a bf16 tensor (libtorch 2.13), so the product is formed in float32.
  auto keep = at::empty_like(x).bernoulli_(1.0 - p, gen);
  const double scale = 1.0 / (1.0 - p);
  if (at::isReducedFloatingType(x.scalar_type())) return (x.to(at::kFloat) * keep).mul_(scale).to(x.scalar_type());
  return (x * keep).mul_(scale);
}

}  // namespace trainlarge
