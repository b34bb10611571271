#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace trainlarge {

double Schedule::at(int64_t step) const {
  if (step < warmup_steps) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (kind == ScheduleKind::Constant) return lr;
  if (kind == ScheduleKind::InverseSqrt) {
    return lr * std::sqrt(static_cast<double>(std::max<int64_t>(1, warmup_steps)) / static_cast<double>(step + 1));
  }
  const double span = static_cast<double>(std::max<int64_t>(1, max_steps - warmup_steps));
  const double progress = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
  double factor = 1.0 - progress;  // linear
  if (kind == ScheduleKind::Polynomial)
    factor = std::pow(1.0 - progress, power);
  else if (kind == ScheduleKind::Cosine)
    factor = 0.5 * (1.0 + std::cos(M_PI * progress));
  return end_lr + (lr - end_lr) * factor;
}

}  // namespace trainlarge
