// AdamW (Loshchilov & Hutter), the same arithmetic as torch.optim.AdamW (amsgrad off), written out so
// its state is ours to save, load and (for pruning) mask. One step count for all parameters.
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
  void step(double lr);
  void zero_grad();  // sets gradients to none, as torch's set_to_none=True
  int64_t steps() const { return steps_; }
  const NamedTensors& params() const { return params_; }

  NamedTensors state() const;  // "exp_avg/<name>", "exp_avg_sq/<name>"
  void load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t steps);

 private:
  NamedTensors params_;
  std::vector<bool> decay_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  AdamWOptions options_;
  int64_t steps_ = 0;
};

}  // namespace trainlarge
