#include "models/linear_hook.h"

namespace trainlarge {

namespace {
thread_local const LinearHook* tls_linear_hook = nullptr;
}  // namespace

LinearHookScope::LinearHookScope(const LinearHook* hook) : previous_(tls_linear_hook) { tls_linear_hook = hook; }
LinearHookScope::~LinearHookScope() { tls_linear_hook = previous_; }

torch::Tensor hooked_linear(const torch::nn::LinearImpl* layer, const torch::Tensor& x) {
  if (tls_linear_hook != nullptr) {
    if (auto y = tls_linear_hook->forward(layer, x); y.defined()) return y;
  }
  // aten::linear as PyTorch calls it: the bias is fused into the GEMM (addmm) for 2-D and contiguous 3-D
  // inputs. The C++ frontend's nn::Linear::forward does matmul then `+= bias` (an extra pass, and under
  // bf16 autocast an fp32 bias added unrounded, unlike PyTorch).
  return torch::linear(x, layer->weight, layer->bias);
}

torch::Tensor hooked_linear_gelu(const torch::nn::LinearImpl* layer, const torch::Tensor& x) {
  if (tls_linear_hook != nullptr) {
    if (auto y = tls_linear_hook->forward_gelu(layer, x); y.defined()) return y;
  }
  return torch::gelu(hooked_linear(layer, x));
}

}  // namespace trainlarge
