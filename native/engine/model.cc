#include "engine/model.h"

#include <ATen/CPUGeneratorImpl.h>
#if TRAINLARGE_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include <set>
#include <sstream>
#include <stdexcept>

#include "engine/int8.h"
#include "engine/packed.h"
#include "engine/prepacked.h"

namespace trainlarge {

// A translate model is a Seq2Seq, held as the Transformer it extends (its encoder's names and modules).
static Transformer make_module(const ModelConfig& c, uint64_t seed) {
  if (c.task == Task::Translate) return Transformer(std::static_pointer_cast<TransformerImpl>(Seq2Seq(c, seed).ptr()));
  return Transformer(c, seed);
}

Model::Model(const ModelConfig& config, uint64_t seed, c10::Device device_) : module(make_module(config, seed)), device(device_) {
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
  save_safetensors(path, named_parameters(), plain_metadata(metadata));
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

// The Linear hook inference runs under: the int8 kernels when set, else for fp32 on CPU the weights
// prepacked for oneDNN (engine/prepacked.h; at 16 rows the large model's four Linear layers took 1.43 ms on
// aten::linear against 0.96 ms prepacked, 1 thread on an AMD EPYC), else none (aten::linear).
static const LinearHook* inference_linears(Model& m, Precision precision) {
  if (m.int8) return m.int8.get();
  if (precision != Precision::FP32 || !m.device.is_cpu() || !PrepackedLinears::available()) return nullptr;
  if (!m.prepacked) m.prepacked = std::make_shared<PrepackedLinears>();
  return m.prepacked.get();
}

// Runs fn(ids, attention_mask) in inference mode, with both moved to the model's device: dropout off, no
// gradients, the requested autocast, int8 Linears if set (else prepacked fp32 ones on CPU).
template <typename Fn>
static auto in_inference(Model& m, const torch::Tensor& ids, const torch::Tensor& attention_mask, Precision precision, Fn&& fn) {
  m.module->check_input(ids, attention_mask);
  // Inference mode, not only no-grad: no version counters nor autograd metadata on any tensor made here
  // (every result leaves as a copy in JS memory).
  c10::InferenceMode inference;
  const bool was_training = m.module->is_training();
  m.module->eval();
  struct Restore {
    Model& m;
    bool training;
    ~Restore() {
      if (training) m.module->train();
    }
  } restore{m, was_training};
  AutocastScope autocast(precision, m.device.type());
  LinearHookScope linears(inference_linears(m, precision));
  return fn(ids.to(m.device), attention_mask.defined() ? attention_mask.to(m.device) : attention_mask);
}

torch::Tensor Model::predict(const torch::Tensor& ids, const torch::Tensor& attention_mask, Precision precision) {
  auto out = in_inference(*this, ids, attention_mask, precision,
                          [&](const torch::Tensor& x, const torch::Tensor& m) { return module->logits(x, m); });
  return out.to(torch::kCPU, torch::kFloat).contiguous();
}

torch::Tensor Model::predict_translation(const torch::Tensor& src, const torch::Tensor& src_mask, const torch::Tensor& targets,
                                         Precision precision) {
  const auto s2s = seq2seq();
  if (!s2s) throw std::invalid_argument("predict: targets need a 'translate' model");
  if (targets.dim() != 2 || targets.size(0) != src.size(0))
    throw std::invalid_argument("targets: expected shape [batch, length] with the sources' batch");
  if (targets.numel() > 0 && (targets.min().item<int64_t>() < 0 || targets.max().item<int64_t>() >= config().vocab_size))
    throw std::invalid_argument("targets: ids must be in [0, vocabSize=" + std::to_string(config().vocab_size) + ")");
  auto out = in_inference(*this, src, src_mask, precision, [&](const torch::Tensor& x, const torch::Tensor& m) {
    return s2s->translation_logits(x, m, targets.to(device));
  });
  return out.to(torch::kCPU, torch::kFloat).contiguous();
}

std::vector<std::vector<Hypothesis>> Model::translate(const torch::Tensor& src, const torch::Tensor& src_mask,
                                                      const GenerateOptions& options, Precision precision) {
  const auto s2s = seq2seq();
  if (!s2s)
    throw std::invalid_argument("translate: needs a 'translate' model, this one is '" +
                                std::string(config().task == Task::MLM ? "mlm" : "classify") + "'");
  return in_inference(*this, src, src_mask, precision, [&](const torch::Tensor& x, const torch::Tensor& m) {
    return options.beam == 1 ? greedy_search(*s2s, x, m, options) : beam_search(*s2s, x, m, options);
  });
}

Model::TopK Model::predict_top_k(const torch::Tensor& ids, const torch::Tensor& attention_mask, const torch::Tensor& positions, int64_t k,
                                 Precision precision) {
  if (!module->mlm_head) throw std::invalid_argument("fillMask: a 'classify' model has no masked-LM head");
  const auto V = config().vocab_size;
  if (k < 1 || k > V) throw std::invalid_argument("topK: must be 1.." + std::to_string(V) + ", got " + std::to_string(k));
  if (positions.dim() != 1) throw std::invalid_argument("positions: expected a flat list of b * T + t");
  if (positions.numel() > 0) {
    const auto lo = positions.min().item<int64_t>(), hi = positions.max().item<int64_t>();
    if (lo < 0 || hi >= ids.numel()) {
      throw std::invalid_argument("positions: must be in [0, " + std::to_string(ids.numel()) + "), got " +
                                  std::to_string(lo < 0 ? lo : hi));
    }
  }
  auto [probs, top] = in_inference(*this, ids, attention_mask, precision, [&](const torch::Tensor& x, const torch::Tensor& m) {
    auto h = module->encode(x, m);
    auto picked = h.reshape({-1, h.size(-1)}).index_select(0, positions.to(device, torch::kLong));
    auto logits = module->mlm_head->forward(picked, module->tokens->weight).to(torch::kFloat);
    return torch::softmax(logits, -1).topk(k, -1);
  });
  return {probs.to(torch::kCPU).contiguous(), top.to(torch::kCPU, torch::kInt).contiguous()};
}

torch::Tensor Model::parameter(const std::string& name) const {
  for (const auto& [n, p] : named_parameters()) {
    if (n == name) return p.detach().to(torch::kCPU, torch::kFloat).contiguous();
  }
  throw std::invalid_argument("name: the model has no parameter '" + name + "'");
}

BusyGuard::BusyGuard(Model& model, const char* job) : model_(model) {
  bool expected = false;
  if (!model_.busy.compare_exchange_strong(expected, true)) {
    throw std::runtime_error(std::string("model is busy with another job; ") + job + " must wait for it (await the previous call)");
  }
}

}  // namespace trainlarge
