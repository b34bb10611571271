// Real int8 inference: the encoder's Linear layers run on libtorch's quantized kernels (dynamic
// quantization: int8 weights prepacked once, activations quantized per call), through the engine the
// build has (onednn or qnnpack here; fbgemm in PyTorch's own wheels).
#pragma once

#include <ATen/native/quantized/PackedParams.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <unordered_map>

namespace trainlarge {

class Model;

struct Int8Linears {
  std::string engine;
  std::unordered_map<const torch::nn::LinearImpl*, c10::intrusive_ptr<LinearPackedParamsBase>> packed;
  int64_t weight_bytes = 0;  // int8 weights + scales, as packed
  int64_t exact = 0;         // layers whose int8 weights equal the model's quantized weights exactly
};

// Packs the encoder's Linear weights as int8 (per output channel, symmetric). A model quantized
// symmetrically (any k <= 8) keeps its grid exactly; otherwise weights are quantized to 8 bits here.
// engine: "onednn", "qnnpack" or "auto" (onednn when the build has it).
std::shared_ptr<Int8Linears> pack_int8(Model& model, const std::string& engine);

// While alive, Linear layers packed in `linears` run int8 on this thread.
class Int8Scope {
 public:
  explicit Int8Scope(const Int8Linears* linears);
  ~Int8Scope();
  Int8Scope(const Int8Scope&) = delete;
  Int8Scope& operator=(const Int8Scope&) = delete;

 private:
  const Int8Linears* previous_;
};

// y = x W^T + b on the int8 kernel when `layer` is packed and a scope is active; undefined otherwise.
torch::Tensor int8_linear(const torch::nn::LinearImpl* layer, const torch::Tensor& x);

}  // namespace trainlarge
