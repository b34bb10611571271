// JS <-> engine values. Typed arrays are copied into tensors on the JS thread (the JS side may reuse or
// detach its buffer while the job runs) and results are copied out (Electron rejects external buffers).
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <map>
#include <string>

namespace trainlarge::bind {

// Int32Array, Uint32Array or Uint16Array of token ids -> int64 tensor of `shape` (or 1-D when empty).
torch::Tensor ids_from_js(const Napi::Value& value, const char* field, std::vector<int64_t> shape = {});
// Uint8Array of 0/1 -> bool tensor of `shape`.
torch::Tensor mask_from_js(const Napi::Value& value, const char* field, std::vector<int64_t> shape);
// CPU copies of a tensor as typed arrays, converted to the array's element type (flattened).
Napi::Int32Array int32_array(Napi::Env env, const torch::Tensor& t);
Napi::Uint8Array uint8_array(Napi::Env env, const torch::Tensor& t);
Napi::Float32Array float32_array(Napi::Env env, const torch::Tensor& t);
// A CPU float32 tensor -> { data: Float32Array, dims: number[] }.
Napi::Object tensor_to_js(Napi::Env env, const torch::Tensor& t);

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* field);
double number_arg(const Napi::CallbackInfo& info, size_t i, const char* field);
int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* field);

}  // namespace trainlarge::bind
