// Builds the next training batch on a background thread while the current step computes. Batches are
// pure functions of (dataset, index, batch size, seed), so prefetching never changes what is trained on:
// a guess that turns out wrong (another dataset, a jump after resume) is dropped and built in place.
#pragma once

#include <future>
#include <memory>

#include "data/dataset.h"

namespace trainlarge {

class Prefetcher {
 public:
  ~Prefetcher();
  // Batch `index` (waiting for the prefetched one when it matches); then starts building index + 1.
  // `wait_seconds` receives the time this call blocked: the data time the step really paid.
  Batch get(const std::shared_ptr<const Dataset>& data, int64_t index, int64_t batch_size, uint64_t seed, double* wait_seconds);
  void reset();  // drops any pending batch (waits for it to finish)

 private:
  std::shared_ptr<const Dataset> data_;
  int64_t index_ = -1, batch_size_ = 0;
  uint64_t seed_ = 0;
  std::future<Batch> next_;
};

}  // namespace trainlarge
