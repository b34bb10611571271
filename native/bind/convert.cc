#include "bind/convert.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace trainlarge::bind {

namespace {

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

void check_length(size_t length, const std::vector<int64_t>& shape, const char* field) {
  if (!shape.empty() && static_cast<int64_t>(length) != product(shape)) {
    throw std::invalid_argument(std::string(field) + ": has " + std::to_string(length) + " elements but the shape needs " +
                                std::to_string(product(shape)));
  }
}

}  // namespace

torch::Tensor ids_from_js(const Napi::Value& value, const char* field, std::vector<int64_t> shape) {
  if (!value.IsTypedArray()) throw std::invalid_argument(std::string(field) + ": expected an Int32Array, Uint32Array or Uint16Array");
  auto array = value.As<Napi::TypedArray>();
  const size_t n = array.ElementLength();
  check_length(n, shape, field);
  if (shape.empty()) shape = {static_cast<int64_t>(n)};
  auto out = torch::empty(shape, torch::kLong);
  auto* dst = out.data_ptr<int64_t>();
  const auto* base = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  switch (array.TypedArrayType()) {
    case napi_int32_array: {
      const auto* src = reinterpret_cast<const int32_t*>(base);
      for (size_t i = 0; i < n; ++i) dst[i] = src[i];
      break;
    }
    case napi_uint32_array: {
      const auto* src = reinterpret_cast<const uint32_t*>(base);
      for (size_t i = 0; i < n; ++i) dst[i] = src[i];
      break;
    }
    case napi_uint16_array: {
      const auto* src = reinterpret_cast<const uint16_t*>(base);
      for (size_t i = 0; i < n; ++i) dst[i] = src[i];
      break;
    }
    default: throw std::invalid_argument(std::string(field) + ": expected an Int32Array, Uint32Array or Uint16Array");
  }
  return out;
}

torch::Tensor mask_from_js(const Napi::Value& value, const char* field, std::vector<int64_t> shape) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw std::invalid_argument(std::string(field) + ": expected a Uint8Array of 0/1");
  }
  auto array = value.As<Napi::Uint8Array>();
  check_length(array.ElementLength(), shape, field);
  auto out = torch::empty(shape, torch::kBool);
  const uint8_t* src = array.Data();
  bool* dst = out.data_ptr<bool>();
  for (size_t i = 0; i < array.ElementLength(); ++i) dst[i] = src[i] != 0;
  return out;
}

namespace {

template <typename T, typename JsArray>
JsArray typed_array(Napi::Env env, const torch::Tensor& t, torch::ScalarType type) {
  auto c = t.to(torch::kCPU, type).contiguous();
  auto out = JsArray::New(env, static_cast<size_t>(c.numel()));
  if (c.numel() > 0) std::memcpy(out.Data(), c.template data_ptr<T>(), c.numel() * sizeof(T));
  return out;
}

}  // namespace

Napi::Int32Array int32_array(Napi::Env env, const torch::Tensor& t) { return typed_array<int32_t, Napi::Int32Array>(env, t, torch::kInt); }
Napi::Uint8Array uint8_array(Napi::Env env, const torch::Tensor& t) { return typed_array<uint8_t, Napi::Uint8Array>(env, t, torch::kByte); }
Napi::Float32Array float32_array(Napi::Env env, const torch::Tensor& t) {
  return typed_array<float, Napi::Float32Array>(env, t, torch::kFloat);
}

Napi::Object tensor_to_js(Napi::Env env, const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat).contiguous();
  auto data = float32_array(env, c);
  auto dims = Napi::Array::New(env, c.dim());
  for (int64_t i = 0; i < c.dim(); ++i) dims.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(c.size(i))));
  auto out = Napi::Object::New(env);
  out.Set("data", data);
  out.Set("dims", dims);
  return out;
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* field) {
  if (info.Length() <= i || !info[i].IsString()) throw std::invalid_argument(std::string(field) + ": expected a string");
  return info[i].As<Napi::String>().Utf8Value();
}

double number_arg(const Napi::CallbackInfo& info, size_t i, const char* field) {
  if (info.Length() <= i || !info[i].IsNumber()) throw std::invalid_argument(std::string(field) + ": expected a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* field) {
  const double v = number_arg(info, i, field);
  if (!std::isfinite(v) || std::floor(v) != v) throw std::invalid_argument(std::string(field) + ": expected an integer");
  return static_cast<int64_t>(v);
}

}  // namespace trainlarge::bind
