// Typed option readers: one per option set, each reading a JS object that lib/ has already validated with
// its zod schema (lib/config/, the one place rules, defaults and user-facing messages live) into the
// engine's struct. Fields keep their names (camelCase there, snake_case here); the few renamings are
// commented where they happen. A reader still names the field when a value has the wrong type, since the
// addon can be called directly.
#pragma once

#include <napi.h>

#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/runtime.h"
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "engine/compression.h"
#include "models/config.h"
#include "models/seq2seq.h"
#include "train/trainer.h"

namespace trainlarge::bind {

// An enum-like string: the engine's value of the name `value` holds, one of `allowed`; anything else (another
// string, or not a string) is an error naming `field` and the allowed names. lib/config/ holds each list's
// TypeScript union; every such string the addon takes is read through here.
template <typename E>
E read_choice(const Napi::Value& value, const std::string& field, std::initializer_list<std::pair<const char*, E>> allowed) {
  std::string names;
  for (const auto& [name, e] : allowed) names += (names.empty() ? "'" : ", '") + std::string(name) + "'";
  const auto s = value.IsString() ? value.As<Napi::String>().Utf8Value() : std::string();
  if (value.IsString()) {
    for (const auto& [name, e] : allowed) {
      if (s == name) return e;
    }
  }
  throw std::invalid_argument(field + ": must be one of " + names + (value.IsString() ? ", got '" + s + "'" : ", got no string"));
}

// One JS options object; every error names "<what>.<field>".
class OptionReader {
 public:
  OptionReader(const Napi::Value& value, std::string what);
  bool has(const char* key) const;
  double number(const char* key) const;
  int64_t integer(const char* key) const;
  bool boolean(const char* key) const;
  std::string string(const char* key) const;
  std::vector<double> numbers(const char* key) const;
  std::vector<int64_t> integers(const char* key) const;
  std::vector<std::string> strings(const char* key) const;
  // A field as it is, for a reader of its own (read_precision, ids_from_js); missing: an error naming it.
  Napi::Value value(const char* key) const { return get(key); }
  // A string field that names one of `allowed` (read_choice); missing: an error naming it.
  template <typename E>
  E choice(const char* key, std::initializer_list<std::pair<const char*, E>> allowed) const {
    return read_choice(get(key), field(key), allowed);
  }

 private:
  Napi::Value get(const char* key) const;
  std::string field(const char* key) const { return what_ + "." + key; }
  Napi::Object object_;
  std::string what_;
};

ModelConfig read_model_config(const Napi::Value& value);
DistConfig read_dist_config(const Napi::Value& value);
TrainConfig read_train_config(const Napi::Value& value);
MlmOptions read_mlm_options(const Napi::Value& value);
ParallelOptions read_parallel_options(const Napi::Value& value);
GenerateOptions read_generate_options(const Napi::Value& value);
// Model.evaluate's options: what trainlarge::evaluate takes beside the model, the data and the group.
struct EvaluateOptions {
  int64_t batch_size = 0;
  int64_t max_samples = 0;  // 0: all
  uint64_t seed = 0;
  Precision precision = Precision::FP32;
};
EvaluateOptions read_evaluate_options(const Napi::Value& value);
// Model.predictTopK's options: the flat positions (b * length + t), how many candidates, the precision.
struct TopKOptions {
  torch::Tensor positions;
  int64_t k = 0;
  Precision precision = Precision::FP32;
};
TopKOptions read_top_k_options(const Napi::Value& value);
PruneOptions read_prune_options(const Napi::Value& value);
QuantizeOptions read_quantize_options(const Napi::Value& value);
TokenizerTrainOptions read_tokenizer_options(const Napi::Value& value);
// A { name: string } object (file metadata); absent or undefined: empty.
std::map<std::string, std::string> read_metadata(const Napi::Value& value, const char* field);
// The enum-like strings read in more than one place, each list written once (lib/config/'s unions: Precision,
// PruneScope, Int8Engine).
Precision read_precision(const Napi::Value& value, const char* field);
PruneScope read_scope(const Napi::Value& value, const char* field);
std::string read_int8_engine(const Napi::Value& value, const char* field);

}  // namespace trainlarge::bind
