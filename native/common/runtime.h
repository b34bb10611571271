// Process and thread facts the engine needs: devices, thread counts, mixed precision.
// Grad mode, autocast and OpenMP's thread count are thread-local, so every engine entry point that
// runs on a worker thread sets them itself (ThreadScope, AutocastScope) instead of trusting the caller.
#pragma once

#include <torch/torch.h>

#include <string>

namespace trainlarge {

enum class Precision { FP32, BF16, FP16 };

const char* precision_name(Precision p);

// "cpu", "cuda", "cuda:N" or "auto" (cuda when this build and machine have it, else cpu).
// Asking for cuda on a CPU-only libtorch is an error that says how to build against a CUDA one.
c10::Device parse_device(const std::string& name);

bool cuda_built();      // this addon was compiled against a libtorch with CUDA
bool cuda_available();  // ... and a GPU is visible now
bool nccl_built();      // ... with NCCL's headers: data-parallel CUDA tensors can go through ProcessGroupNCCL
bool gloo_built();      // this addon can join a process group at all (ProcessGroupGloo)

// Sets the intra-op thread count for the calling thread (OpenMP's count is per thread) and, when
// blas_threads > 0, OpenBLAS's own pool (process-wide). 0 leaves a setting as it is.
void set_threads(int intra_op, int blas_threads);
int blas_threads();  // -1 when the BLAS in this process is not OpenBLAS

// Enables autocast for the device type on this thread for the scope's lifetime (libtorch has no public
// C++ guard for it). FP32 makes it a no-op; FP16 on CPU is refused (CPU autocast is bf16 only).
class AutocastScope {
 public:
  AutocastScope(Precision p, c10::DeviceType device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType device_ = c10::kCPU;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kFloat;
};

}  // namespace trainlarge
