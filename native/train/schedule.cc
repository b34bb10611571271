#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace trainlarge {

double Schedule::at(int64_t step) const {
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (kind == "constant") return peak;
  const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
  const double progress = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
  double factor = 1.0 - progress;                                    // linear
  if (kind == "polynomial") factor = std::pow(1.0 - progress, power);
  else if (kind == "cosine") factor = 0.5 * (1.0 + std::cos(M_PI * progress));
  return end + (peak - end) * factor;
}

}  // namespace trainlarge
