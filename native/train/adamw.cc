#include "train/adamw.h"

#include <ATen/ops/_fused_adamw.h>

#include <cmath>
#include <stdexcept>

#include "models/transformer.h"

namespace trainlarge {

AdamW::AdamW(NamedTensors params, AdamWOptions options) : params_(std::move(params)), options_(options) {
  for (const auto& [name, p] : params_) {
    decay_.push_back(decays(p));
    exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    step_counts_.push_back(torch::zeros({}, p.options().dtype(torch::kFloat)));
  }
}

void AdamW::step(double lr, double grad_scale) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const auto& o = options_;
  std::vector<torch::Tensor> p[2], g[2], m[2], v[2], t[2];  // [0]: no decay, [1]: decay
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& param = params_[i].second;
    auto grad = param.grad();
    if (!grad.defined()) continue;
    if (!grad.is_contiguous()) grad = param.mutable_grad() = grad.contiguous();
    const int k = decay_[i] && o.weight_decay != 0.0 ? 1 : 0;
    step_counts_[i].fill_(static_cast<double>(steps_));
    p[k].push_back(param);
    g[k].push_back(grad);
    m[k].push_back(exp_avg_[i]);
    v[k].push_back(exp_avg_sq_[i]);
    t[k].push_back(step_counts_[i]);
  }
  c10::optional<at::Tensor> scale;
  if (grad_scale != 1.0)
    scale = torch::full({}, grad_scale, torch::TensorOptions().dtype(torch::kFloat).device(params_[0].second.device()));
  for (int k = 0; k < 2; ++k) {
    if (p[k].empty()) continue;
    at::_fused_adamw_(p[k], g[k], m[k], v[k], /*max_exp_avg_sqs=*/{}, t[k], lr, o.beta1, o.beta2, k == 1 ? o.weight_decay : 0.0, o.eps,
                      /*amsgrad=*/false, /*maximize=*/false, scale);
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_) p.mutable_grad() = torch::Tensor();
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) out.emplace_back("exp_avg/" + params_[i].first, exp_avg_[i]);
  for (size_t i = 0; i < params_.size(); ++i) out.emplace_back("exp_avg_sq/" + params_[i].first, exp_avg_sq_[i]);
  return out;
}

void AdamW::load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t steps) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [prefix, dst] : {std::pair{"exp_avg/", &exp_avg_[i]}, std::pair{"exp_avg_sq/", &exp_avg_sq_[i]}}) {
      const auto key = prefix + params_[i].first;
      auto it = tensors.find(key);
      if (it == tensors.end()) throw std::runtime_error("optimizer state: missing '" + key + "'");
      if (it->second.sizes() != dst->sizes()) throw std::runtime_error("optimizer state: '" + key + "' has another shape than the model");
      dst->copy_(it->second);
    }
  }
  steps_ = steps;
}

}  // namespace trainlarge
