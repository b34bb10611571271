#include "common/runtime.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <dlfcn.h>
#include <torch/version.h>

#include <stdexcept>

namespace trainlarge {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::BF16: return "bf16";
    case Precision::FP16: return "fp16";
  }
  return "?";
}

bool cuda_built() { return TRAINLARGE_CUDA != 0; }

#ifndef TRAINLARGE_NCCL
#define TRAINLARGE_NCCL 0
#endif
#ifndef TRAINLARGE_GLOO
#define TRAINLARGE_GLOO 0
#endif
bool nccl_built() { return TRAINLARGE_NCCL != 0; }
bool gloo_built() { return TRAINLARGE_GLOO != 0; }

bool cuda_available() { return cuda_built() && torch::cuda::is_available(); }

c10::Device parse_device(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "auto") return cuda_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!cuda_built()) {
      throw std::invalid_argument("device: 'cuda' was asked for, but this trainlarge build links a CPU-only libtorch (" TORCH_VERSION
                                  "). Rebuild against a CUDA libtorch: TRAINLARGE_TORCH=cuda bash scripts/setup, or "
                                  "TORCH_DIR=/path/to/cuda/libtorch npm run build");
    }
    if (!torch::cuda::is_available()) {
      throw std::invalid_argument("device: 'cuda' was asked for, but no CUDA device is visible (torch::cuda::is_available() is false)");
    }
    c10::Device d(name);
    if (d.index() >= static_cast<int>(torch::cuda::device_count())) {
      throw std::invalid_argument("device: '" + name + "' does not exist; this machine has " + std::to_string(torch::cuda::device_count()) +
                                  " CUDA device(s)");
    }
    return d;
  }
  throw std::invalid_argument("device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got '" + name + "'");
}

namespace {
using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();
SetThreadsFn openblas_set() { return reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")); }
GetThreadsFn openblas_get() { return reinterpret_cast<GetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")); }
}  // namespace

void set_threads(int intra_op, int blas) {
  // Once per thread and count, whatever get_num_threads() says: at::set_num_threads also sizes MKL's
  // threads, which a worker thread that never called it leaves at MKL's own default.
  thread_local int applied = 0;
  if (intra_op > 0 && applied != intra_op) {
    at::set_num_threads(intra_op);
    applied = intra_op;
  }
  if (blas > 0) {
    if (auto set = openblas_set()) {
      auto get = openblas_get();
      if (!get || get() != blas) set(blas);
    }
  }
}

int blas_threads() {
  auto get = openblas_get();
  return get ? get() : -1;
}

AutocastScope::AutocastScope(Precision p, c10::DeviceType device) {
  if (p == Precision::FP32) return;
  device_ = device == c10::kCUDA ? c10::kCUDA : c10::kCPU;
  if (device_ == c10::kCPU && p == Precision::FP16) {
    throw std::invalid_argument("precision: 'fp16' needs a CUDA device; on CPU use 'bf16' (CPU autocast is bf16 only)");
  }
  prev_enabled_ = at::autocast::is_autocast_enabled(device_);
  prev_dtype_ = at::autocast::get_autocast_dtype(device_);
  at::autocast::set_autocast_enabled(device_, true);
  at::autocast::set_autocast_dtype(device_, p == Precision::BF16 ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, prev_enabled_);
  at::autocast::set_autocast_dtype(device_, prev_dtype_);
}

}  // namespace trainlarge
