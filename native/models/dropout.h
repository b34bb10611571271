// Dropout drawing from the model's own generator, so a step's randomness depends only on the seed and
// the step (reproducible resume, and independent of other models in the process).
#pragma once

#include <torch/torch.h>

namespace trainlarge {

// On CPU one fused pass: each element's keep/drop comes from a counter-based hash (splitmix64) of a key
// drawn once from `gen` and the element's index, so the mask does not depend on the thread count, and
// the output and a 1-byte mask are written together (ATen's CPU dropout is bernoulli_ into a float
// tensor, a division and a multiplication: three passes; its bernoulli_ alone took 8% of a medium
// training step on an AMD EPYC). Backward is one pass too. On CUDA: ATen's fused dropout kernel with `gen`
// (at::_fused_dropout; the scale in float32 whatever the dtype). Elsewhere: dropout_unfused.
torch::Tensor dropout(const torch::Tensor& x, double p, bool training, at::Generator& gen);

// x * bernoulli(1 - p) * (1 / (1 - p)) with `gen`, in plain ATen ops: for bf16 and fp16 tensors the product is
// formed in float32 and rounded once, as ATen's fused kernels do. For devices without a fused path; public for
// the engine's test, which checks the rounding on the CPU.
torch::Tensor dropout_unfused(const torch::Tensor& x, double p, at::Generator& gen);

}  // namespace trainlarge
