// The one way another kernel enters the Transformer's Linear layers: while a LinearHookScope is alive on
// a thread, every encoder and decoder Linear asks its hook first (engine/int8.h installs libtorch's int8 kernels
// here). models/ knows nothing of what the hook does.
#pragma once

#include <torch/torch.h>

namespace trainlarge {

class LinearHook {
 public:
  virtual ~LinearHook() = default;
  // y = x W^T + b computed another way, or an undefined tensor to use the plain float kernel.
  virtual torch::Tensor forward(const torch::nn::LinearImpl* layer, const torch::Tensor& x) const = 0;
  // gelu(x W^T + b) (exact, erf) in one kernel, or an undefined tensor: then gelu runs on forward()'s result.
  virtual torch::Tensor forward_gelu(const torch::nn::LinearImpl* /*layer*/, const torch::Tensor& /*x*/) const { return {}; }
};

// Installs `hook` (nullptr: none) for the calling thread for the scope's lifetime.
class LinearHookScope {
 public:
  explicit LinearHookScope(const LinearHook* hook);
  ~LinearHookScope();
  LinearHookScope(const LinearHookScope&) = delete;
  LinearHookScope& operator=(const LinearHookScope&) = delete;

 private:
  const LinearHook* previous_;
};

// aten::linear, or the active hook's result when it takes this layer.
torch::Tensor hooked_linear(const torch::nn::LinearImpl* layer, const torch::Tensor& x);
// gelu(hooked_linear(layer, x)), fused where the active hook can.
torch::Tensor hooked_linear_gelu(const torch::nn::LinearImpl* layer, const torch::Tensor& x);

}  // namespace trainlarge
