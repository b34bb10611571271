#include "engine/roberta.h"

#include <sstream>
#include <stdexcept>

#include "engine/model.h"

namespace trainlarge {

namespace {

std::string roberta_layer(int64_t i) { return "roberta.encoder.layer." + std::to_string(i) + "."; }

// Our name -> the HF tensors it is made of (qkv: three, concatenated along the output rows).
std::vector<std::pair<std::string, std::vector<std::string>>> name_map(const ModelConfig& c) {
  std::vector<std::pair<std::string, std::vector<std::string>>> m = {
      {"tokens.weight", {"roberta.embeddings.word_embeddings.weight"}},
      {"embed_norm.weight", {"roberta.embeddings.LayerNorm.weight"}},
      {"embed_norm.bias", {"roberta.embeddings.LayerNorm.bias"}},
  };
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string ours = "layers." + std::to_string(i) + ".", hf = roberta_layer(i);
    for (const char* p : {"weight", "bias"}) {
      const std::string s = p;
      m.push_back(
          {ours + "attn.qkv." + s, {hf + "attention.self.query." + s, hf + "attention.self.key." + s, hf + "attention.self.value." + s}});
      m.push_back({ours + "attn.proj." + s, {hf + "attention.output.dense." + s}});
      m.push_back({ours + "norm1." + s, {hf + "attention.output.LayerNorm." + s}});
      m.push_back({ours + "ffn.fc1." + s, {hf + "intermediate.dense." + s}});
      m.push_back({ours + "ffn.fc2." + s, {hf + "output.dense." + s}});
      m.push_back({ours + "norm2." + s, {hf + "output.LayerNorm." + s}});
    }
  }
  if (c.task == Task::MLM) {
    for (const char* p : {"weight", "bias"}) {
      const std::string s = p;
      m.push_back({"mlm_head.dense." + s, {"lm_head.dense." + s}});
      m.push_back({"mlm_head.norm." + s, {"lm_head.layer_norm." + s}});
    }
    m.push_back({"mlm_head.bias", {"lm_head.bias"}});
  } else {
    for (const char* p : {"weight", "bias"}) {
      const std::string s = p;
      m.push_back({"cls_head.dense." + s, {"classifier.dense." + s}});
      m.push_back({"cls_head.out." + s, {"classifier.out_proj." + s}});
    }
  }
  return m;
}

// What transformers' RobertaConfig can describe: post-LN blocks whose heads span hidden_size.
void require_roberta_shape(const ModelConfig& c) {
  if (c.task == Task::Translate) throw std::invalid_argument("format 'hf': a 'translate' model has no RoBERTa equivalent");
  if (c.norm != NormPlacement::Post) {
    throw std::invalid_argument(
        "format 'hf': a pre-LN model (norm: 'pre') has no RoBERTa equivalent in transformers (RoBERTa is post-LN); "
        "export a post-LN model, or keep trainlarge's own format");
  }
  if (c.attention_dim() != c.d_model) {
    throw std::invalid_argument("format 'hf': a model with pruned attention heads (" + std::to_string(c.heads) + " heads x headDim " +
                                std::to_string(c.head_size()) + " = " + std::to_string(c.attention_dim()) + ", not dModel " +
                                std::to_string(c.d_model) +
                                ") has no RoBERTa config in transformers 5 (no head_dim, no pruned_heads); keep trainlarge's own "
                                "format, or prune feed-forward units only (structure 'ffn'), which exports");
  }
}

std::string shape_text(torch::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

}  // namespace

NamedTensors to_roberta(const Model& model, int64_t padding_idx) {
  const auto& c = model.config();
  require_roberta_shape(c);
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> ours;
  for (const auto& [name, p] : model.named_parameters()) ours.emplace(name, p.detach().to(torch::kCPU, torch::kFloat).contiguous());
  NamedTensors out;
  for (const auto& [name, parts] : name_map(c)) {
    const auto& t = ours.at(name);
    if (parts.size() == 1) {
      out.emplace_back(parts[0], t);
      continue;
    }
    const auto chunks = t.chunk(3, 0);
    for (size_t k = 0; k < 3; ++k) out.emplace_back(parts[k], chunks[k].contiguous());
  }
  const auto& pos = ours.at("positions.weight");
  auto hf_pos = torch::zeros({c.max_len + padding_idx + 1, c.d_model});
  hf_pos.narrow(0, padding_idx + 1, c.max_len).copy_(pos);
  out.emplace_back("roberta.embeddings.position_embeddings.weight", hf_pos);
  out.emplace_back("roberta.embeddings.token_type_embeddings.weight", torch::zeros({1, c.d_model}));
  return out;
}

std::vector<std::string> load_roberta(Model& model, const std::map<std::string, torch::Tensor>& file_tensors, int64_t padding_idx,
                                      bool strict) {
  const auto& c = model.config();
  require_roberta_shape(c);
  // Checkpoints saved from RobertaModel have no "roberta." prefix.
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, t] : file_tensors) {
    const bool bare = name.rfind("embeddings.", 0) == 0 || name.rfind("encoder.", 0) == 0 || name.rfind("pooler.", 0) == 0;
    tensors.emplace(bare ? "roberta." + name : name, t);
  }
  // head: a head tensor of another shape (another number of labels) is a new head when not strict.
  auto get = [&](const std::string& hf, std::vector<int64_t> shape, bool head = false) -> torch::Tensor {
    auto it = tensors.find(hf);
    if (it == tensors.end()) return {};
    if (it->second.sizes() != torch::IntArrayRef(shape)) {
      if (head && !strict) return {};
      throw std::invalid_argument("weights: '" + hf + "' has shape " + shape_text(it->second.sizes()) +
                                  " in the file but the config needs " + shape_text(shape));
    }
    return it->second.to(torch::kFloat);
  };
  std::map<std::string, torch::Tensor> ours;
  std::vector<std::string> missing;
  const auto params = model.named_parameters();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, p] : params) shapes[name] = p.sizes().vec();
  for (const auto& [name, parts] : name_map(c)) {
    auto shape = shapes.at(name);
    std::vector<torch::Tensor> found;
    if (parts.size() == 3) shape[0] /= 3;
    const bool head = name.rfind("mlm_head.", 0) == 0 || name.rfind("cls_head.", 0) == 0;
    for (const auto& part : parts) {
      auto t = get(part, shape, head);
      if (!t.defined()) {
        if (strict || !head) throw std::invalid_argument("weights: the checkpoint lacks '" + part + "'");
        break;
      }
      found.push_back(t);
    }
    if (found.size() != parts.size()) {
      missing.push_back(name);
      continue;
    }
    ours[name] = parts.size() == 1 ? found[0] : torch::cat(found, 0);
  }
  // Positions: rows padding_idx + 1 .. + maxLen, plus token type 0 (RoBERTa adds it to every token).
  const int64_t rows = c.max_len + padding_idx + 1;
  auto pos = get("roberta.embeddings.position_embeddings.weight", {rows, c.d_model});
  if (!pos.defined()) throw std::invalid_argument("weights: the checkpoint lacks 'roberta.embeddings.position_embeddings.weight'");
  auto type_it = tensors.find("roberta.embeddings.token_type_embeddings.weight");
  if (type_it == tensors.end())
    throw std::invalid_argument("weights: the checkpoint lacks 'roberta.embeddings.token_type_embeddings.weight'");
  const auto& types = type_it->second;
  if (types.dim() != 2 || types.size(1) != c.d_model || types.size(0) < 1) {
    throw std::invalid_argument("weights: 'roberta.embeddings.token_type_embeddings.weight' has shape " + shape_text(types.sizes()) +
                                " in the file but the config needs [N, " + std::to_string(c.d_model) + "]");
  }
  ours["positions.weight"] = pos.narrow(0, padding_idx + 1, c.max_len) + types[0].to(torch::kFloat);
  // The decoder is tied to the token embedding here; a checkpoint with an untied one cannot be loaded.
  if (c.task == Task::MLM) {
    auto dec = tensors.find("lm_head.decoder.weight");
    if (dec != tensors.end() && !torch::equal(dec->second.to(torch::kFloat), ours.at("tokens.weight"))) {
      throw std::invalid_argument(
          "weights: 'lm_head.decoder.weight' differs from the word embeddings; trainlarge ties them (RoBERTa does)");
    }
  }
  model.load_weights(ours, /*strict=*/false);
  return missing;
}

}  // namespace trainlarge
