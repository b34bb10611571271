#include "models/model.h"

#include <ATen/CPUGeneratorImpl.h>
#if TRAINLARGE_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include <set>
#include <sstream>
#include <stdexcept>

namespace trainlarge {

Model::Model(const ModelConfig& config, uint64_t seed, c10::Device device_)
    : module(config, seed), device(device_) {
  if (device.is_cuda()) {
#if TRAINLARGE_CUDA
    module->to(device);
    module->dropout_gen = at::cuda::detail::createCUDAGenerator(device.index());
    module->reseed_dropout(seed);
#else
    throw std::invalid_argument("device: this build has no CUDA");
#endif
  }
}

NamedTensors Model::named_parameters() const {
  NamedTensors out;
  for (const auto& item : module->named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

int64_t Model::parameter_bytes() const {
  int64_t n = 0;
  for (const auto& p : module->parameters()) n += p.numel() * p.element_size();
  return n;
}

std::vector<std::string> Model::load_weights(const std::map<std::string, torch::Tensor>& tensors, bool strict) {
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing;
  size_t used = 0;
  const auto params = named_parameters();
  for (const auto& [name, p] : params) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
      continue;
    }
    if (it->second.sizes() != p.sizes()) {
      std::ostringstream why;
      why << "weights: '" << name << "' has shape " << it->second.sizes() << " in the file but " << p.sizes() << " in the model";
      throw std::invalid_argument(why.str());
    }
    p.copy_(it->second);
    ++used;
  }
  if (strict && (!missing.empty() || used != tensors.size())) {
    std::ostringstream why;
    why << "weights: the file does not match the model config";
    if (!missing.empty()) why << "; missing " << missing.size() << " (first: '" << missing.front() << "')";
    std::set<std::string> known;
    for (const auto& [n, p] : params) known.insert(n);
    for (const auto& [name, t] : tensors) {
      if (!known.count(name)) {
        why << "; unexpected '" << name << "'";
        break;
      }
    }
    throw std::invalid_argument(why.str());
  }
  return missing;
}

void Model::load_file(const SafetensorsFile& file, bool strict) {
  if (!is_packed(file.metadata)) {
    load_weights(file.tensors, strict);
    return;
  }
  Compression state;
  load_weights(unpack(file, &state), strict);
  compression = std::move(state);
  if (device.type() != torch::kCPU) {
    for (auto& [name, m] : compression.masks) m = m.to(device);
  }
}

void Model::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  if (!compression.masks.empty() || !compression.quant.empty()) {
    const auto packed = pack(*this, metadata);
    save_safetensors(path, packed.tensors, packed.metadata);
    return;
  }
  auto meta = metadata;
  meta["format"] = "pt";  // what HuggingFace's loaders expect
  save_safetensors(path, named_parameters(), meta);
}

std::shared_ptr<Model> Model::clone() const {
  auto copy = std::make_shared<Model>(config(), /*seed=*/0, device);
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> weights;
  for (const auto& [name, p] : named_parameters()) weights.emplace(name, p);
  copy->load_weights(weights, /*strict=*/true);
  const auto& c = compression;
  for (const auto& [name, m] : c.masks) copy->compression.masks[name] = m.clone();
  for (const auto& [name, t] : c.latent) copy->compression.latent[name] = t.clone();
  for (const auto& [name, q] : c.quant) {
    QuantSpec d = q;
    d.scale = q.scale.clone();
    d.zero_point = q.zero_point.clone();
    copy->compression.quant[name] = d;
  }
  copy->compression.schedule = c.schedule;
  if (int8) copy->int8 = pack_int8(*copy, int8->engine);
  copy->module->train(module->is_training());
  return copy;
}

torch::Tensor Model::predict(const torch::Tensor& ids, const torch::Tensor& attention_mask, Precision precision) {
  module->check_input(ids, attention_mask);
  torch::NoGradGuard no_grad;
  const bool was_training = module->is_training();
  module->eval();
  torch::Tensor out;
  {
    AutocastScope autocast(precision, device.type());
    Int8Scope int8_scope(int8.get());
    out = module->logits(ids.to(device), attention_mask.defined() ? attention_mask.to(device) : attention_mask);
  }
  if (was_training) module->train();
  return out.to(torch::kCPU, torch::kFloat).contiguous();
}

BusyGuard::BusyGuard(Model& model, const char* job) : model_(model) {
  bool expected = false;
  if (!model_.busy.compare_exchange_strong(expected, true)) {
    throw std::runtime_error(std::string("model is busy with another job; ") + job +
                             " must wait for it (await the previous call)");
  }
}

}  // namespace trainlarge
