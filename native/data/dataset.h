// In-memory datasets that turn token ids into batches. Every batch is a pure function of
// (seed, batch index): the sample order comes from a per-epoch permutation and each row's masking from
// its own seeded generator. A resumed run therefore sees exactly the batches the uninterrupted run
// would have, with no data-loader state to save (the resume bugs of HF #11323/#12942 cannot happen).
#pragma once

#include <torch/torch.h>

#include <algorithm>
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
  // Batch `index` of the endless shuffled stream (epoch after epoch). `batch_size` counts samples, except
  // for token-batched data (ParallelPairs), where it is the token budget of a batch.
  virtual Batch train_batch(int64_t index, int64_t batch_size, uint64_t seed) const;
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

// lib/data's parallel data options with the tokenizer's ids.
struct ParallelOptions {
  int64_t max_len = 0;  // tokens per side including EOS (= the model's maxLen); longer sides are truncated
  int64_t pad_id = 0;
  int64_t eos_id = 0;
};

// What token-count batching makes of one epoch (ParallelPairs::plan).
struct BatchPlanStats {
  int64_t batches = 0, pairs = 0;
  int64_t max_batch_tokens = 0;                  // the largest B x max(S, T) over the batches
  int64_t source_tokens = 0, target_tokens = 0;  // real tokens (EOS included)
  int64_t source_padded = 0, target_padded = 0;  // B x S and B x T summed over the batches
  double padding_share() const {
    const auto all = source_padded + target_padded;
    return all > 0 ? 1.0 - static_cast<double>(source_tokens + target_tokens) / static_cast<double>(all) : 0.0;
  }
};

// (source, target) pairs for translation, each side ending in EOS. Training batches are built by TOKEN
// COUNT, as fairseq's --max-tokens: the pairs are ordered by length (max of the two sides, ties broken by
// a seeded shuffle), cut greedily into batches with B x max(S, T) <= batch_tokens, so each batch holds
// pairs of about one length and is hardly padded; every epoch visits these batches in a new seeded order.
// The plan depends only on (seed, batch_tokens), so batch `index` is a pure function of them and a
// resumed run sees the same batches. Batch: ids = source (B, S), attention_mask (B, S), targets (B, T).
class ParallelPairs : public Dataset {
 public:
  // Tokens of each side without EOS, concatenated; offsets (pairs + 1) into them.
  ParallelPairs(torch::Tensor source, torch::Tensor source_offsets, torch::Tensor target, torch::Tensor target_offsets,
                ParallelOptions options);
  // Source and target shards (trainlarge data prepare --parallel): each side's sentences followed by EOS,
  // memory-mapped; only the pair index (offsets and lengths: 20 bytes a pair) is held in memory.
  static std::shared_ptr<ParallelPairs> from_shards(const std::vector<std::string>& source, const std::vector<std::string>& target,
                                                    ParallelOptions options);
  // One side: sentence i is tokens [start[i], start[i] + length[i]) of the stream, EOS not included.
  struct Side {
    TokenStream stream;
    std::vector<int64_t> start;
    std::vector<int32_t> length;  // clamped to 2^31 - 1 (far above any maxLen)
  };
  ParallelPairs(Side source, Side target, ParallelOptions options);
  int64_t size() const override { return static_cast<int64_t>(src_len_.size()); }
  int64_t max_token_id() const override { return max_id_; }
  Batch train_batch(int64_t index, int64_t batch_tokens, uint64_t seed) const override;
  // Batches per epoch, their sizes and padding, for this budget and seed.
  BatchPlanStats plan_stats(int64_t batch_tokens, uint64_t seed) const;

 protected:
  Batch build(const std::vector<int64_t>& samples, const std::vector<uint64_t>& row_seeds) const override;

 private:
  // The batches of every epoch (each a list of pairs), before the per-epoch shuffle of their order;
  // cached, called under plan_mutex_.
  const std::vector<std::vector<int64_t>>& plan(int64_t batch_tokens, uint64_t seed) const;
  int64_t length(int64_t i) const { return std::max(src_len_[i], tgt_len_[i]); }
  TokenStream src_, tgt_;  // in memory or memory-mapped shards
  std::vector<int64_t> src_start_, tgt_start_;
  std::vector<int32_t> src_len_, tgt_len_;  // kept lengths, EOS included
  ParallelOptions options_;
  int64_t max_id_ = 0;
  mutable std::mutex plan_mutex_;
  mutable int64_t plan_tokens_ = -1;
  mutable uint64_t plan_seed_ = 0;
  mutable std::vector<std::vector<int64_t>> plan_;
  mutable int64_t order_epoch_ = -1;
  mutable std::vector<int64_t> order_;  // batch order of order_epoch_
};

}  // namespace trainlarge
