// Model hyper-parameters. The TypeScript layer validates and fills defaults (lib/config/model.ts, the
// one place they are stated); this side checks the invariants again so the engine is safe on its own.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace trainlarge {

enum class Task { MLM, Classify };
enum class NormPlacement { Post, Pre };  // post-LN as BERT/RoBERTa; pre-LN as GPT-2 / fairseq normalize_before

struct ModelConfig {
  Task task = Task::MLM;
  int64_t vocab_size = 0;
  int64_t max_len = 0;
  int64_t d_model = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t ffn = 0;  // feed-forward width (4 * d_model in RoBERTa)
  double dropout = 0.1;
  double attention_dropout = 0.1;
  NormPlacement norm = NormPlacement::Post;
  double layer_norm_eps = 1e-5;
  int64_t num_labels = 0;  // classify only
  int64_t pad_id = 0;

  static ModelConfig from_json(const nlohmann::json& j);  // throws std::invalid_argument naming the field
  nlohmann::json to_json() const;
  int64_t head_dim() const { return d_model / heads; }
};

}  // namespace trainlarge
