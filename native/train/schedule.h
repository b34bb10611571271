// Learning-rate schedules: linear warmup to the peak, then decay over the step budget
// (fairseq's polynomial_decay and HF's linear/cosine schedules).
#pragma once

#include <cstdint>
#include <string>

namespace trainlarge {

struct Schedule {
  std::string kind = "linear";  // "linear" | "polynomial" | "cosine" | "constant"
  double peak = 5e-4, end = 0.0, power = 1.0;
  int64_t warmup = 0, total = 1;

  // The rate for update number `step` (0-based). Warmup starts at peak/warmup (as fairseq), not at 0.
  double at(int64_t step) const;
};

}  // namespace trainlarge
