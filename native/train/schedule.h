// Learning-rate schedules: linear warmup to the peak, then decay over the step budget
// (fairseq's polynomial_decay and HF's linear/cosine schedules). Fields as lib/config/train.ts names them.
#pragma once

#include <cstdint>

namespace trainlarge {

// InverseSqrt: fairseq's inverse_sqrt (Vaswani et al. 2017): linear warmup to lr, then lr * sqrt(warmup / n)
// for update n (1-based); it needs no step budget.
enum class ScheduleKind { Linear, Polynomial, Cosine, Constant, InverseSqrt };

struct Schedule {
  ScheduleKind kind = ScheduleKind::Linear;  // `schedule` in TrainConfig
  double lr = 0, end_lr = 0, power = 1;      // lr: the peak, reached after warmup
  int64_t warmup_steps = 0, max_steps = 0;

  // The rate for update number `step` (0-based). Warmup starts at lr/warmup_steps (as fairseq), not at 0.
  double at(int64_t step) const;
};

}  // namespace trainlarge
