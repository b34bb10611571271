#include "data/prefetch.h"

#include <chrono>

namespace trainlarge {

Prefetcher::~Prefetcher() { reset(); }

void Prefetcher::reset() {
  if (next_.valid()) {
    try {
      next_.get();
    } catch (...) {  // a failed guess: the synchronous build reports the error when it matters
    }
  }
  data_.reset();
  index_ = -1;
}

Batch Prefetcher::get(const std::shared_ptr<const Dataset>& data, int64_t index, int64_t batch_size, uint64_t seed, double* wait_seconds) {
  const auto start = std::chrono::steady_clock::now();
  Batch batch;
  if (next_.valid() && data_ == data && index_ == index && batch_size_ == batch_size && seed_ == seed) {
    batch = next_.get();  // rethrows the builder's exception
  } else {
    reset();
    batch = data->train_batch(index, batch_size, seed);
  }
  *wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  data_ = data;
  index_ = index + 1;
  batch_size_ = batch_size;
  seed_ = seed;
  next_ = std::async(std::launch::async, [data, i = index + 1, batch_size, seed] { return data->train_batch(i, batch_size, seed); });
  return batch;
}

}  // namespace trainlarge
