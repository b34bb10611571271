// The compression methods of the JS Model class, and process-wide compression ops (compress/compress.h).
#include <cstring>

#include "bind/convert.h"
#include "bind/job.h"
#include "bind/model_wrap.h"
#include "common/json_field.h"
#include "compress/compress.h"
#include "compress/int8.h"

namespace trainlarge::bind {

namespace {

std::vector<std::string> targets_from(const Model& model, const nlohmann::json& j, const char* what) {
  const auto t = json_field<nlohmann::json>(j, what, "targets");
  return compressible(model, json_field<bool>(t, what, "attention"), json_field<bool>(t, what, "ffn"), json_field<bool>(t, what, "embeddings"));
}

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
    if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d))) throw std::invalid_argument(std::string(field) + ": dimensions must be non-negative integers");
    dims.push_back(static_cast<int64_t>(d));
  }
  return dims;
}

nlohmann::json describe(const Model& model) {
  nlohmann::json j = {{"pruned", nlohmann::json::object()}, {"quantized", nlohmann::json::object()}};
  const auto& c = model.compression;
  for (const auto& [name, m] : c.masks) {
    const int64_t kept = m.sum().item<int64_t>();
    j["pruned"][name] = {{"numel", m.numel()}, {"kept", kept}, {"sparsity", 1.0 - static_cast<double>(kept) / static_cast<double>(m.numel())}};
  }
  for (const auto& [name, q] : c.quant) {
    j["quantized"][name] = {{"bits", q.bits}, {"symmetric", q.symmetric}, {"granularity", q.per_channel ? "channel" : "tensor"}};
  }
  if (model.int8) j["int8"] = {{"engine", model.int8->engine}, {"layers", model.int8->packed.size()}, {"exactLayers", model.int8->exact}, {"weightBytes", model.int8->weight_bytes}};
  if (c.schedule) {
    const auto& s = *c.schedule;
    j["schedule"] = {{"initialSparsity", s.initial}, {"sparsity", s.final}, {"startStep", s.start}, {"endStep", s.end}, {"every", s.every},
                     {"scope", s.scope == PruneScope::Layer ? "layer" : "global"}, {"targets", s.targets}};
  }
  return j;
}

}  // namespace

Napi::Value ModelWrap::Prune(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("prune");
    const auto j = json_arg(info, 0, "options");
    const char* what = "prune options";
    const double sparsity = json_field<double>(j, what, "sparsity");
    if (!(sparsity >= 0 && sparsity < 1)) throw std::invalid_argument("sparsity: must be in [0, 1), got " + std::to_string(sparsity));
    const auto scope = parse_scope(json_field<std::string>(j, what, "scope"));
    const auto schedule = json_field<std::string>(j, what, "schedule");
    if (schedule != "oneshot" && schedule != "gradual") throw std::invalid_argument("schedule: must be 'oneshot' or 'gradual', got '" + schedule + "'");
    GradualPruning g;
    if (schedule == "gradual") {
      g.initial = json_field<double>(j, what, "initialSparsity");
      g.final = sparsity;
      g.start = json_field<int64_t>(j, what, "startStep");
      g.end = json_field<int64_t>(j, what, "endStep");
      g.every = json_field<int64_t>(j, what, "every");
      g.scope = scope;
      if (g.end <= g.start || g.every <= 0) throw std::invalid_argument("gradual pruning: needs endStep > startStep and every > 0");
      if (!(g.initial >= 0 && g.initial <= sparsity)) throw std::invalid_argument("initialSparsity: must be in [0, sparsity]");
    }
    return run_async(info.Env(), "trainlarge.prune", [=]() mutable -> Finish {
      BusyGuard busy(*model, "prune");
      const auto targets = targets_from(*model, j, what);
      if (targets.empty()) throw std::invalid_argument("prune: the model has no weight matrices to prune (targets selects none)");
      if (schedule == "oneshot") {
        prune_model(*model, sparsity, scope, targets);
      } else {
        g.targets = targets;
        model->compression.schedule = g;
      }
      return nullptr;
    }, {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::Quantize(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("quantize");
    const auto j = json_arg(info, 0, "options");
    const char* what = "quantize options";
    const int bits = json_field<int>(j, what, "bits");
    const bool symmetric = json_field<bool>(j, what, "symmetric");
    const auto granularity = json_field<std::string>(j, what, "granularity");
    if (granularity != "channel" && granularity != "tensor") throw std::invalid_argument("granularity: must be 'channel' or 'tensor', got '" + granularity + "'");
    return run_async(info.Env(), "trainlarge.quantize", [=]() -> Finish {
      BusyGuard busy(*model, "quantize");
      quantize_model(*model, bits, symmetric, granularity == "channel", targets_from(*model, j, what));
      return nullptr;
    }, {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::Clone(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("clone");
    return run_async(info.Env(), "trainlarge.clone", [=]() -> Finish {
      BusyGuard busy(*model, "clone");
      auto copy = model->clone();
      return [copy](Napi::Env env) -> Napi::Value { return Wrap(env, copy); };
    }, {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::ToInt8(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("toInt8");
    const auto engine = string_arg(info, 0, "engine");
    return run_async(info.Env(), "trainlarge.toInt8", [=]() -> Finish {
      BusyGuard busy(*model, "toInt8");
      auto copy = model->clone();
      if (!copy->int8) copy->int8 = pack_int8(*copy, engine);
      return [copy](Napi::Env env) -> Napi::Value { return Wrap(env, copy); };
    }, {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::CompressionInfo(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), describe(*live("compression")).dump()); });
}

Napi::Value ModelWrap::PackedSize(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("packedSize");
    const auto metadata = string_map_arg(info, 0, "metadata");
    return run_async(info.Env(), "trainlarge.packedSize", [=]() -> Finish {
      BusyGuard busy(*model, "packedSize");
      const bool compressed = !model->compression.masks.empty() || !model->compression.quant.empty();
      int64_t file = 0, header = 0;
      std::map<std::string, int64_t> tensors;
      if (compressed) {
        const auto p = pack(*model, metadata);
        file = p.file_bytes;
        header = p.header_bytes;
        tensors = p.bytes_per_tensor;
      } else {  // the plain safetensors file save() writes
        auto meta = metadata;
        meta["format"] = "pt";
        const auto params = model->named_parameters();
        header = 8 + static_cast<int64_t>(safetensors_header(params, meta).size());
        file = header;
        for (const auto& [name, p] : params) {
          tensors[name] = p.numel() * static_cast<int64_t>(p.element_size());
          file += tensors[name];
        }
      }
      return [file, header, tensors](Napi::Env env) -> Napi::Value {
        auto o = Napi::Object::New(env);
        o.Set("fileBytes", static_cast<double>(file));
        o.Set("headerBytes", static_cast<double>(header));
        auto t = Napi::Object::New(env);
        for (const auto& [name, bytes] : tensors) t.Set(name, static_cast<double>(bytes));
        o.Set("tensors", t);
        return o;
      };
    }, {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::WeightErrors(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("weightErrors");
    auto reference = From(info[0], "reference");
    return run_async(info.Env(), "trainlarge.weightErrors", [=]() -> Finish {
      BusyGuard busy(*model, "weightErrors");
      const auto errors = relative_errors(*model, *reference);
      return [errors](Napi::Env env) -> Napi::Value {
        auto o = Napi::Object::New(env);
        for (const auto& [name, e] : errors) o.Set(name, e);
        return o;
      };
    }, {info.This().As<Napi::Object>(), info[0].As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::Parameter(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("parameter");
    const auto name = string_arg(info, 0, "name");
    return run_async(info.Env(), "trainlarge.parameter", [=]() -> Finish {
      BusyGuard busy(*model, "parameter");
      for (const auto& [n, p] : model->named_parameters()) {
        if (n != name) continue;
        auto t = p.detach().to(torch::kCPU, torch::kFloat).contiguous();
        return [t](Napi::Env env) -> Napi::Value { return tensor_to_js(env, t); };
      }
      throw std::invalid_argument("name: the model has no parameter '" + name + "'");
    }, {info.This().As<Napi::Object>()});
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
    auto masks = magnitude_masks(weights, number_arg(info, 2, "sparsity"), parse_scope(string_arg(info, 3, "scope")));
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
    const auto q = calibrate(w, static_cast<int>(int_arg(info, 2, "bits")), info[3].ToBoolean(), info[4].ToBoolean());
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
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) throw std::invalid_argument("packed: expected a Uint8Array");
    auto a = info[0].As<Napi::Uint8Array>();
    auto t = torch::empty({static_cast<int64_t>(a.ElementLength())}, torch::kByte);
    if (a.ElementLength() > 0) std::memcpy(t.data_ptr<uint8_t>(), a.Data(), a.ElementLength());
    return int32_array(info.Env(), unpack_bits(t, int_arg(info, 1, "count"), static_cast<int>(int_arg(info, 2, "bits"))));
  });
}

void register_compression_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("magnitudeMasks", Napi::Function::New<MagnitudeMasks>(env, "magnitudeMasks"));
  exports.Set("fakeQuantize", Napi::Function::New<FakeQuantize>(env, "fakeQuantize"));
  exports.Set("packBits", Napi::Function::New<PackBits>(env, "packBits"));
  exports.Set("unpackBits", Napi::Function::New<UnpackBits>(env, "unpackBits"));
}

}  // namespace trainlarge::bind
