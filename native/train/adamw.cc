#include "train/adamw.h"

#include <cmath>
#include <stdexcept>

#include "models/transformer.h"

namespace trainlarge {

AdamW::AdamW(NamedTensors params, AdamWOptions options) : params_(std::move(params)), options_(options) {
  for (const auto& [name, p] : params_) {
    decay_.push_back(decays(p));
    exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const auto& o = options_;
  const double bias_correction1 = 1.0 - std::pow(o.beta1, static_cast<double>(steps_));
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(o.beta2, static_cast<double>(steps_)));
  const double step_size = lr / bias_correction1;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].second;
    const auto& g = p.grad();
    if (!g.defined()) continue;
    if (decay_[i] && o.weight_decay != 0.0) p.mul_(1.0 - lr * o.weight_decay);
    exp_avg_[i].mul_(o.beta1).add_(g, 1.0 - o.beta1);
    exp_avg_sq_[i].mul_(o.beta2).addcmul_(g, g, 1.0 - o.beta2);
    auto denom = (exp_avg_sq_[i].sqrt() / bias_correction2_sqrt).add_(o.eps);
    p.addcdiv_(exp_avg_[i], denom, -step_size);
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
