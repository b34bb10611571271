// The compression methods of the JS Model class (engine/compression.h does the work), and the process-wide
// tensor ops of compress/compress.h.
#include <cstring>

#include "bind/convert.h"
#include "bind/job.h"
#include "bind/model_wrap.h"
#include "bind/options.h"
#include "compress/compress.h"
#include "engine/compression.h"
#include "engine/int8.h"
#include "engine/packed.h"

namespace trainlarge::bind {

namespace {

torch::Tensor float_tensor(const Napi::Value& v, const char* field, const std::vector<int64_t>& shape) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw std::invalid_argument(std::string(field) + ": expected a Float32Array");
  }
  auto a = v.As<Napi::Float32Array>();
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (static_cast<int64_t>(a.ElementLength()) != n) throw std::invalid_argument(std::string(field) + ": length does not match its dims");
  auto t = torch::empty(shape, torch::kFloat);
  std::memcpy(t.data_ptr<float>(), a.Data(), n * sizeof(float));
  return t;
}

std::vector<int64_t> dims_arg(const Napi::Value& v, const char* field) {
  if (!v.IsArray()) throw std::invalid_argument(std::string(field) + ": expected an array of dimensions");
  auto a = v.As<Napi::Array>();
  std::vector<int64_t> dims;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const double d = a.Get(i).ToNumber().DoubleValue();
    if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d)))
      throw std::invalid_argument(std::string(field) + ": dimensions must be non-negative integers");
    dims.push_back(static_cast<int64_t>(d));
  }
  return dims;
}

const char* granularity_name(Granularity g) { return g == Granularity::Channel ? "channel" : "tensor"; }

// { pruned: {name: {numel, kept, sparsity}}, quantized: {name: {bits, symmetric, granularity}}, int8?, schedule? }
Napi::Object summary_to_js(Napi::Env env, const CompressionSummary& c) {
  auto out = Napi::Object::New(env);
  auto pruned = Napi::Object::New(env);
  for (const auto& [name, p] : c.pruned) {
    auto o = Napi::Object::New(env);
    o.Set("numel", static_cast<double>(p.numel));
    o.Set("kept", static_cast<double>(p.kept));
    o.Set("sparsity", p.sparsity);
    pruned.Set(name, o);
  }
  out.Set("pruned", pruned);
  auto quantized = Napi::Object::New(env);
  for (const auto& [name, q] : c.quantized) {
    auto o = Napi::Object::New(env);
    o.Set("bits", q.bits);
    o.Set("symmetric", q.symmetric);
    o.Set("granularity", granularity_name(q.granularity));
    quantized.Set(name, o);
  }
  out.Set("quantized", quantized);
  if (c.int8) {
    auto o = Napi::Object::New(env);
    o.Set("engine", c.int8->engine);
    o.Set("layers", static_cast<double>(c.int8->layers));
    o.Set("exactLayers", static_cast<double>(c.int8->exact_layers));
    o.Set("weightBytes", static_cast<double>(c.int8->weight_bytes));
    out.Set("int8", o);
  }
  if (c.schedule) {
    const auto& s = *c.schedule;
    auto o = Napi::Object::New(env);
    o.Set("initialSparsity", s.initial_sparsity);
    o.Set("sparsity", s.sparsity);
    o.Set("startStep", static_cast<double>(s.start_step));
    o.Set("endStep", static_cast<double>(s.end_step));
    o.Set("every", static_cast<double>(s.every));
    o.Set("scope", s.scope == PruneScope::Layer ? "layer" : "global");
    auto targets = Napi::Array::New(env, s.targets.size());
    for (size_t k = 0; k < s.targets.size(); ++k) targets.Set(static_cast<uint32_t>(k), s.targets[k]);
    o.Set("targets", targets);
    out.Set("schedule", o);
  }
  return out;
}

}  // namespace

Napi::Value ModelWrap::Prune(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("prune");
    const auto options = read_prune_options(info[0]);
    return run_async(info.Env(), "trainlarge.prune",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "prune");
                       prune(*model, options);
                       return nullptr;
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::PruneStructured(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("pruneStructured");
    const auto options = read_prune_options(info[0]);
    return run_async(info.Env(), "trainlarge.pruneStructured",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "pruneStructured");
                       auto smaller = prune_structured(*model, options);
                       return [smaller](Napi::Env env) -> Napi::Value {
                         const auto& c = smaller->config();
                         auto o = Napi::Object::New(env);
                         o.Set("heads", static_cast<double>(c.heads));
                         o.Set("headDim", static_cast<double>(c.head_size()));
                         o.Set("ffn", static_cast<double>(c.ffn));
                         o.Set("model", Wrap(env, smaller));
                         return o;
                       };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::Quantize(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("quantize");
    const auto options = read_quantize_options(info[0]);
    return run_async(info.Env(), "trainlarge.quantize",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "quantize");
                       quantize(*model, options);
                       return nullptr;
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::ToInt8(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("toInt8");
    const auto engine = read_int8_engine(info[0], "engine");
    return run_async(info.Env(), "trainlarge.toInt8",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "toInt8");
                       auto copy = model->clone();
                       if (!copy->int8) copy->int8 = pack_int8(*copy, engine);
                       return [copy](Napi::Env env) -> Napi::Value { return Wrap(env, copy); };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::CompressionInfo(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return summary_to_js(info.Env(), summarize(*live("compression"))); });
}

Napi::Value ModelWrap::PackedSize(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("packedSize");
    const auto metadata = read_metadata(info[0], "metadata");
    return run_async(info.Env(), "trainlarge.packedSize",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "packedSize");
                       const auto size = file_size(*model, metadata);
                       return [size](Napi::Env env) -> Napi::Value {
                         auto o = Napi::Object::New(env);
                         o.Set("fileBytes", static_cast<double>(size.file_bytes));
                         o.Set("headerBytes", static_cast<double>(size.header_bytes));
                         auto t = Napi::Object::New(env);
                         for (const auto& [name, bytes] : size.tensors) t.Set(name, static_cast<double>(bytes));
                         o.Set("tensors", t);
                         return o;
                       };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::WeightErrors(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("weightErrors");
    auto reference = From(info[0], "reference");
    return run_async(info.Env(), "trainlarge.weightErrors",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "weightErrors");
                       const auto errors = relative_errors(*model, *reference);
                       return [errors](Napi::Env env) -> Napi::Value {
                         auto o = Napi::Object::New(env);
                         for (const auto& [name, e] : errors) o.Set(name, e);
                         return o;
                       };
                     },
                     {info.This().As<Napi::Object>(), info[0].As<Napi::Object>()});
  });
}

// [sync] magnitudeMasks(weights: Float32Array[], dims: number[][], sparsity, scope) -> Uint8Array[] (1 = kept)
Napi::Value MagnitudeMasks(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[0].IsArray() || !info[1].IsArray()) throw std::invalid_argument("weights, dims: expected arrays");
    auto ws = info[0].As<Napi::Array>(), ds = info[1].As<Napi::Array>();
    if (ws.Length() != ds.Length()) throw std::invalid_argument("dims: one entry per weight");
    std::vector<torch::Tensor> weights;
    for (uint32_t i = 0; i < ws.Length(); ++i) weights.push_back(float_tensor(ws.Get(i), "weights[i]", dims_arg(ds.Get(i), "dims[i]")));
    auto masks = magnitude_masks(weights, number_arg(info, 2, "sparsity"), read_scope(info[3], "scope"));
    auto out = Napi::Array::New(info.Env(), masks.size());
    for (size_t i = 0; i < masks.size(); ++i) out.Set(static_cast<uint32_t>(i), uint8_array(info.Env(), masks[i]));
    return out;
  });
}

// [sync] fakeQuantize(weight: Float32Array, dims, bits, symmetric, perChannel)
//   -> { values: Float32Array, codes: Int32Array (0..2^bits-1), scale: Float32Array, zeroPoint: Int32Array, qmin, qmax }
Napi::Value FakeQuantize(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto w = float_tensor(info[0], "weight", dims_arg(info[1], "dims"));
    const auto q = calibrate(w, static_cast<int>(int_arg(info, 2, "bits")), info[3].ToBoolean(),
                             info[4].ToBoolean() ? Granularity::Channel : Granularity::Tensor);
    auto env = info.Env();
    auto o = Napi::Object::New(env);
    o.Set("values", float32_array(env, fake_quantize(w, q)));
    o.Set("codes", int32_array(env, quant_codes(w, q)));
    o.Set("scale", float32_array(env, q.scale));
    o.Set("zeroPoint", int32_array(env, q.zero_point));
    o.Set("qmin", static_cast<double>(q.qmin));
    o.Set("qmax", static_cast<double>(q.qmax));
    return o;
  });
}

// [sync] packBits(values: Int32Array, bits) -> Uint8Array; unpackBits(packed: Uint8Array, count, bits) -> Int32Array
Napi::Value PackBits(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto v = ids_from_js(info[0], "values");
    return uint8_array(info.Env(), pack_bits(v, static_cast<int>(int_arg(info, 1, "bits"))));
  });
}

Napi::Value UnpackBits(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw std::invalid_argument("packed: expected a Uint8Array");
    auto a = info[0].As<Napi::Uint8Array>();
    auto t = torch::empty({static_cast<int64_t>(a.ElementLength())}, torch::kByte);
    if (a.ElementLength() > 0) std::memcpy(t.data_ptr<uint8_t>(), a.Data(), a.ElementLength());
    return int32_array(info.Env(), unpack_bits(t, int_arg(info, 1, "count"), static_cast<int>(int_arg(info, 2, "bits"))));
  });
}

void register_testing_ops(Napi::Env env, Napi::Object exports) {
  auto testing = Napi::Object::New(env);
  testing.Set("magnitudeMasks", Napi::Function::New<MagnitudeMasks>(env, "magnitudeMasks"));
  testing.Set("fakeQuantize", Napi::Function::New<FakeQuantize>(env, "fakeQuantize"));
  testing.Set("packBits", Napi::Function::New<PackBits>(env, "packBits"));
  testing.Set("unpackBits", Napi::Function::New<UnpackBits>(env, "unpackBits"));
  exports.Set("testing", testing);
}

}  // namespace trainlarge::bind
