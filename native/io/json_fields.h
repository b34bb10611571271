// Numbers read from JSON in files trainlarge did not necessarily write (safetensors headers, packed-file
// metadata): a value that is not an integer, or out of range, is an error naming it, never a float-to-int
// conversion or an overflowing product (both undefined behaviour; found by native/fuzz/safetensors_fuzz.cc).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace trainlarge {

inline int64_t json_int(const nlohmann::json& j, const std::string& what, int64_t lo = std::numeric_limits<int64_t>::min(),
                        int64_t hi = std::numeric_limits<int64_t>::max()) {
  if (!j.is_number_integer()) throw std::runtime_error(what + ": expected an integer, got " + j.dump());
  if (j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw std::runtime_error(what + ": " + j.dump() + " is out of range");
  }
  const int64_t v = j.get<int64_t>();
  if (v < lo || v > hi)
    throw std::runtime_error(what + ": " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

inline std::vector<int64_t> json_ints(const nlohmann::json& j, const std::string& what, int64_t lo, int64_t hi) {
  if (!j.is_array()) throw std::runtime_error(what + ": expected an array of integers");
  std::vector<int64_t> out;
  out.reserve(j.size());
  for (const auto& e : j) out.push_back(json_int(e, what, lo, hi));
  return out;
}

// The number of elements of a shape of non-negative sizes; an error when it does not fit in int64.
inline int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what) {
  int64_t n = 1;
  for (const auto d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) throw std::runtime_error(what + ": the shape is too large");
  }
  return n;
}

}  // namespace trainlarge
