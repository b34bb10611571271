// AdamW (Loshchilov & Hutter) as torch.optim.AdamW(fused=True) (amsgrad off): libtorch's fused kernel
// updates each parameter, its two moments and the decay in one pass (two calls: the decayed weights and
// the rest). The state is ours to save, load and (for pruning) mask. One step count for all parameters.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/safetensors.h"

namespace trainlarge {

struct AdamWOptions {
  double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;  // betas: [beta1, beta2] in TrainConfig
};

class AdamW {
 public:
  // params: (name, tensor) in a fixed order; weight decay applies where decays(tensor) is true.
  AdamW(NamedTensors params, AdamWOptions options);
  // grad_scale: every gradient is divided by it inside the kernel (gradient clipping and fp16 loss-scale
  // removal at no extra pass over the gradients); 1 for none.
  void step(double lr, double grad_scale = 1.0);
  void zero_grad();  // sets gradients to none, as torch's set_to_none=True
  int64_t steps() const { return steps_; }
  const NamedTensors& params() const { return params_; }

  NamedTensors state() const;  // "exp_avg/<name>", "exp_avg_sq/<name>"
  void load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t steps);

 private:
  NamedTensors params_;
  std::vector<bool> decay_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<torch::Tensor> step_counts_;  // the fused kernel's per-tensor step counts (float scalars)
  AdamWOptions options_;
  int64_t steps_ = 0;
};

}  // namespace trainlarge
