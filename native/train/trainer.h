// The training loop: plain libtorch, one optimizer update per step() call. TypeScript decides when to
// evaluate, checkpoint and stop; this computes.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "common/runtime.h"
#include "data/dataset.h"
#include "data/prefetch.h"
#include "engine/model.h"
#include "train/adamw.h"
#include "train/dist.h"
#include "train/schedule.h"

namespace trainlarge {

// lib/config/train.ts's TrainConfig, resolved (threads are counts). Its schema states the rules and
// defaults; validate() keeps what protects the loop (sizes that index and divide).
struct TrainConfig {
  Schedule schedule;
  AdamWOptions adamw;
  double clip_norm = 0;  // 0 = no clipping (the norm is still reported)
  int64_t batch_size = 0;
  int64_t batch_tokens = 0;    // token-batched data (ParallelPairs): a batch's token budget; 0 = none
  double label_smoothing = 0;  // translate models: fairseq's label-smoothed cross-entropy
  int64_t accum_steps = 1;
  Precision precision = Precision::FP32;
  uint64_t seed = 0;
  int threads = 0;  // intra-op threads; 0 = leave as is
  int blas_threads = 0;

  void validate() const;
};

struct StepStats {
  int64_t step = 0;  // updates done after this one
  double loss = 0, lr = 0, grad_norm = 0;
  int64_t tokens = 0, targets = 0;
  double seconds = 0, data_seconds = 0;
  bool skipped = false;  // fp16 overflow: the update was skipped and the loss scale lowered
  // Data-parallel: seconds in the gradient all-reduce and bytes all-reduced (0 in one process).
  double comm_seconds = 0;
  int64_t comm_bytes = 0;
};

struct EvalResult {
  double loss = 0;
  int64_t count = 0, correct = 0, samples = 0;
  double seconds = 0;
  // MLM only: the loss on the targets whose input was replaced by the mask token (the 10% kept unchanged
  // can be copied, so the whole loss can beat a unigram model without using context), and how often each
  // id was a target, over all targets and over those masked ones (for a unigram baseline of the same targets).
  double mask_loss = 0;
  int64_t mask_count = 0;
  std::vector<double> target_counts, mask_target_counts;
};

class Trainer {
 public:
  Trainer(std::shared_ptr<Model> model, TrainConfig config);

  // One update; the next micro-batch is built on a background thread meanwhile.
  StepStats step(const std::shared_ptr<const Dataset>& data);
  void release_data() { prefetch_.reset(); }
  const TrainConfig& config() const { return config_; }
  int64_t steps() const { return optimizer_.steps(); }
  double loss_scale() const { return loss_scale_; }

  // Data-parallel training: from now on each step trains on this rank's rows of a batch `world` times
  // batchSize and averages gradients over the group (the same update as one process with that batch).
  void set_group(std::shared_ptr<DistGroup> group);
  const std::shared_ptr<DistGroup>& group() const { return group_; }
  // Rank 0's weights, optimizer state and step (and `extra`, the caller's counters) into every rank:
  // after joining and after rank 0 resumed from a checkpoint. Returns rank 0's `extra`.
  std::vector<double> sync_state(std::vector<double> extra);

  // One file holding the model weights, the optimizer moments and the step: a consistent snapshot.
  void save_state(const std::string& path) const;
  void load_state(const std::string& path);

 private:
  std::shared_ptr<Model> model_;
  TrainConfig config_;
  AdamW optimizer_;
  double loss_scale_ = 1.0;  // fp16 on CUDA only: dynamic loss scaling (no C++ GradScaler exists)
  int64_t good_steps_ = 0;
  Prefetcher prefetch_;
  std::shared_ptr<DistGroup> group_;
  std::unique_ptr<GradReducer> reducer_;  // with group_ of more than one rank
};

// Mean loss (and accuracy for classification) over the first max_samples samples (all when <= 0),
// with dropout off and masking seeded by `seed`. Translate models: the plain cross-entropy per target
// token (no label smoothing: fairseq's nll_loss), accuracy of the argmax next token.
// In a process group of more than one rank (`group`), each rank evaluates every world-th batch and the sums
// are gathered: every rank returns the whole set's figures, each batch computed once.
EvalResult evaluate(Model& model, const Dataset& data, int64_t batch_size, int64_t max_samples, uint64_t seed, Precision precision,
                    DistGroup* group = nullptr);

}  // namespace trainlarge
