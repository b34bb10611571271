#include "models/config.h"

#include "common/json_field.h"

#include <stdexcept>

namespace trainlarge {

namespace {

template <typename T>
T field(const nlohmann::json& j, const char* name) {
  return json_field<T>(j, "model config", name);
}

void positive(int64_t v, const char* name) {
  if (v <= 0) throw std::invalid_argument(std::string("model config: ") + name + " must be > 0, got " + std::to_string(v));
}

void probability(double v, const char* name) {
  if (!(v >= 0.0 && v < 1.0)) throw std::invalid_argument(std::string("model config: ") + name + " must be in [0, 1)");
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  ModelConfig c;
  const auto task = field<std::string>(j, "task");
  if (task == "mlm") c.task = Task::MLM;
  else if (task == "classify") c.task = Task::Classify;
  else throw std::invalid_argument("model config: task must be 'mlm' or 'classify', got '" + task + "'");
  c.vocab_size = field<int64_t>(j, "vocabSize");
  c.max_len = field<int64_t>(j, "maxLen");
  c.d_model = field<int64_t>(j, "dModel");
  c.layers = field<int64_t>(j, "layers");
  c.heads = field<int64_t>(j, "heads");
  c.ffn = field<int64_t>(j, "ffn");
  c.dropout = field<double>(j, "dropout");
  c.attention_dropout = field<double>(j, "attentionDropout");
  const auto norm = field<std::string>(j, "norm");
  if (norm == "post") c.norm = NormPlacement::Post;
  else if (norm == "pre") c.norm = NormPlacement::Pre;
  else throw std::invalid_argument("model config: norm must be 'post' or 'pre', got '" + norm + "'");
  c.layer_norm_eps = field<double>(j, "layerNormEps");
  c.pad_id = field<int64_t>(j, "padId");
  if (c.task == Task::Classify) c.num_labels = field<int64_t>(j, "numLabels");

  positive(c.vocab_size, "vocabSize");
  positive(c.max_len, "maxLen");
  positive(c.d_model, "dModel");
  positive(c.layers, "layers");
  positive(c.heads, "heads");
  positive(c.ffn, "ffn");
  if (c.d_model % c.heads != 0) {
    throw std::invalid_argument("model config: heads (" + std::to_string(c.heads) + ") must divide dModel (" +
                                std::to_string(c.d_model) + ")");
  }
  probability(c.dropout, "dropout");
  probability(c.attention_dropout, "attentionDropout");
  if (!(c.layer_norm_eps > 0)) throw std::invalid_argument("model config: layerNormEps must be > 0");
  if (c.pad_id < 0 || c.pad_id >= c.vocab_size) throw std::invalid_argument("model config: padId must be in [0, vocabSize)");
  if (c.task == Task::Classify && c.num_labels < 2) throw std::invalid_argument("model config: numLabels must be >= 2");
  return c;
}

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j = {
      {"task", task == Task::MLM ? "mlm" : "classify"},
      {"vocabSize", vocab_size},
      {"maxLen", max_len},
      {"dModel", d_model},
      {"layers", layers},
      {"heads", heads},
      {"ffn", ffn},
      {"dropout", dropout},
      {"attentionDropout", attention_dropout},
      {"norm", norm == NormPlacement::Post ? "post" : "pre"},
      {"layerNormEps", layer_norm_eps},
      {"padId", pad_id},
  };
  if (task == Task::Classify) j["numLabels"] = num_labels;
  return j;
}

}  // namespace trainlarge
