// In-memory datasets that turn token ids into batches. Every batch is a pure function of
// (seed, batch index): the sample order comes from a per-epoch permutation and each row's masking from
// its own seeded generator. A resumed run therefore sees exactly the batches the uninterrupted run
// would have, with no data-loader state to save (the resume bugs of HF #11323/#12942 cannot happen).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "data/batch.h"
#include "data/token_stream.h"

namespace trainlarge {

uint64_t mix_seed(uint64_t a, uint64_t b);  // splitmix64 of a combination: independent streams

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;  // samples (blocks or examples)
  virtual int64_t max_token_id() const = 0;
  // Batch `index` of the endless shuffled stream (epoch after epoch).
  Batch train_batch(int64_t index, int64_t batch_size, uint64_t seed) const;
  // Samples [first, first + count) in order, with masking seeded from `seed` per sample, so numbers
  // compare across runs, batch sizes and model sizes.
  Batch eval_batch(int64_t first, int64_t count, uint64_t seed) const;

 protected:
  virtual Batch build(const std::vector<int64_t>& samples, const std::vector<uint64_t>& row_seeds) const = 0;

 private:
  const std::vector<int64_t>& permutation(int64_t epoch, uint64_t seed) const;
  mutable std::mutex mutex_;
  mutable int64_t cached_epoch_ = -1;
  mutable uint64_t cached_seed_ = 0;
  mutable std::vector<int64_t> cached_perm_;
};

// lib/data's MlmOptions with the tokenizer's ids; the rules and defaults are stated there.
struct MlmOptions {
  int64_t max_len = 0;  // tokens per sample (block) including the leading cls token (= the model's maxLen)
  double mask_prob = 0;
  double mask_token_prob = 0;    // of the selected: replaced by mask_id
  double random_token_prob = 0;  // of the selected: replaced by a random non-special token; rest kept
  int64_t mask_id = 0;
  int64_t cls_id = 0;
  int64_t vocab_size = 0;
  std::vector<int64_t> special_ids;  // never selected for masking nor drawn as random replacements
};

// RoBERTa's FULL-SENTENCES: the token stream (documents joined by eos) cut into contiguous blocks of
// max_len - 1 tokens, each led by cls; dynamic masking each time a block is drawn.
class MlmBlocks : public Dataset {
 public:
  MlmBlocks(TokenStream tokens, MlmOptions options);
  int64_t size() const override { return num_blocks_; }
  int64_t max_token_id() const override { return max_id_; }
  const MlmOptions& options() const { return options_; }
  // Masks ids (B, T) in place of a copy; exposed for tests of the masking rates.
  Batch mask(const torch::Tensor& ids, const std::vector<uint64_t>& row_seeds) const;

 protected:
  Batch build(const std::vector<int64_t>& samples, const std::vector<uint64_t>& row_seeds) const override;

 private:
  TokenStream tokens_;  // in memory or memory-mapped shards
  MlmOptions options_;
  int64_t num_blocks_ = 0, max_id_ = 0;
  torch::Tensor special_ids_, normal_ids_;
};

// Labelled sequences for classification: truncated to max_len, padded to the longest in the batch.
class LabelledSequences : public Dataset {
 public:
  LabelledSequences(torch::Tensor tokens, torch::Tensor offsets, torch::Tensor labels, int64_t max_len, int64_t pad_id);
  int64_t size() const override { return labels_.size(0); }
  int64_t max_token_id() const override { return max_id_; }
  int64_t num_labels() const { return num_labels_; }

 protected:
  Batch build(const std::vector<int64_t>& samples, const std::vector<uint64_t>& row_seeds) const override;

 private:
  torch::Tensor tokens_, offsets_, labels_;  // int64: tokens (N), offsets (S + 1), labels (S)
  int64_t max_len_, pad_id_, max_id_ = 0, num_labels_ = 0;
};

}  // namespace trainlarge
