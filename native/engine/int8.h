// Real int8 inference: the Transformer's Linear layers (a translate model's decoder's too) run on
// libtorch's quantized kernels (dynamic quantization: int8 weights prepacked once, activations quantized
// per call), through one of the quantized engines the libtorch has (pip's 2.x: x86, fbgemm, onednn,
// qnnpack; Debian's 1.13: onednn, qnnpack).
#pragma once

#include <ATen/native/quantized/PackedParams.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <unordered_map>

#include "models/linear_hook.h"

namespace trainlarge {

class Model;

// The int8 kernels as the Transformer's Linear hook (models/linear_hook.h): a model holding one runs its
// packed layers on them whenever a LinearHookScope installs it (Model::predict, evaluate).
struct Int8Linears : LinearHook {
  torch::Tensor forward(const torch::nn::LinearImpl* layer, const torch::Tensor& x) const override;
  // The int8 layer, then GELU in place on its fresh output: one (rows x out) buffer less per call, which at
  // 32 x 128 tokens is a 32 MiB allocation (mmap'ed and faulted in anew by glibc each time).
  torch::Tensor forward_gelu(const torch::nn::LinearImpl* layer, const torch::Tensor& x) const override;

  using Packs = std::unordered_map<const torch::nn::LinearImpl*, c10::intrusive_ptr<LinearPackedParamsBase>>;

  std::string engine;  // "onednn", ...; "fbgemm+onednn" where 'auto' packed both (small_rows)
  Packs packed;
  // 'auto' on a CPU with AVX-512 VNNI: the same layers packed for fbgemm too, which runs calls of at most
  // small_rows rows (batch x tokens) faster than oneDNN does; oneDNN runs larger ones (int8.cc).
  Packs small;
  int64_t small_rows = 0;
  int64_t weight_bytes = 0;   // int8 weights + scales, as packed (both packs where there are two)
  int64_t exact = 0;          // layers whose int8 weights equal the model's quantized weights exactly
  bool reduce_range = false;  // 7-bit activations: fbgemm on a CPU without VNNI (int8.cc)
};

// Packs the attention and feed-forward Linear weights (compressible's) as int8 (per output channel, symmetric). A model quantized
// symmetrically (any k <= 8) keeps its grid exactly; otherwise weights are quantized to 8 bits here.
// engine: "x86", "onednn", "fbgemm", "qnnpack" (lower-case QEngine names) or "auto" (int8.cc's kAutoOrder).
std::shared_ptr<Int8Linears> pack_int8(Model& model, const std::string& engine);

}  // namespace trainlarge
