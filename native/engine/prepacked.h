// Float32 inference on CPU with the Linear weights laid out once for oneDNN (libtorch's
// mkldnn::_reorder_linear_weight and mkldnn::_linear_pointwise, the kernels torch.compile's freezing uses),
// instead of aten::linear's GEMM on the plain (out, in) weight at every call.
#pragma once

#include <torch/torch.h>

#include <unordered_map>

#include "models/linear_hook.h"

namespace trainlarge {

// The Transformer's Linear hook (models/linear_hook.h) for fp32 inference. Each layer's weight is reordered on
// its first use and again whenever the weight changed since (a new tensor, or an in-place write: training,
// loading, pruning); the bias is read live. Declines (aten::linear runs) where the kernels do not apply: a
// tensor off the CPU or not float32, autocast, autograd, or a libtorch without these operators; and for layers
// under 2^17 weights, where oneDNN's fixed cost per call outweighs its faster GEMM (prepacked.cc).
class PrepackedLinears : public LinearHook {
 public:
  torch::Tensor forward(const torch::nn::LinearImpl* layer, const torch::Tensor& x) const override;
  // GELU as the GEMM's post-op (oneDNN eltwise_gelu_erf): the activations are not written and read again.
  torch::Tensor forward_gelu(const torch::nn::LinearImpl* layer, const torch::Tensor& x) const override;

  // Whether this libtorch has the operators (and oneDNN), and TRAINLARGE_PREPACK is not 0.
  static bool available();

 private:
  struct Entry {
    torch::Tensor packed;
    const void* data = nullptr;
    uint32_t version = 0;
  };
  // aten::linear's result with `attr` ("none", "gelu") applied, or undefined where the kernels do not apply.
  torch::Tensor run(const torch::nn::LinearImpl* layer, const torch::Tensor& x, const char* attr) const;

  mutable std::unordered_map<const torch::nn::LinearImpl*, Entry> packed_;
};

}  // namespace trainlarge
