#include "bind/data_wrap.h"

#include <cstring>

#include "bind/addon.h"
#include "bind/convert.h"
#include "bind/job.h"

namespace trainlarge::bind {

namespace {

Napi::Int32Array int32_to_js(Napi::Env env, const torch::Tensor& t) {
  auto c = t.to(torch::kInt).contiguous();
  auto out = Napi::Int32Array::New(env, static_cast<size_t>(c.numel()));
  std::memcpy(out.Data(), c.data_ptr<int32_t>(), c.numel() * sizeof(int32_t));
  return out;
}

Napi::Object batch_to_js(Napi::Env env, const Batch& b) {
  auto o = Napi::Object::New(env);
  o.Set("ids", int32_to_js(env, b.ids));
  auto dims = Napi::Array::New(env, 2);
  dims.Set(0u, static_cast<double>(b.ids.size(0)));
  dims.Set(1u, static_cast<double>(b.ids.size(1)));
  o.Set("dims", dims);
  o.Set("targets", int32_to_js(env, b.targets));
  if (b.positions.defined()) o.Set("positions", int32_to_js(env, b.positions));
  if (b.attention_mask.defined()) {
    auto m = b.attention_mask.to(torch::kByte).contiguous();
    auto out = Napi::Uint8Array::New(env, static_cast<size_t>(m.numel()));
    std::memcpy(out.Data(), m.data_ptr<uint8_t>(), m.numel());
    o.Set("mask", out);
  }
  return o;
}

}  // namespace

Napi::Function DatasetWrap::Define(Napi::Env env) {
  return DefineClass(env, "Dataset",
                     {
                         InstanceAccessor<&DatasetWrap::Size>("size"),
                         InstanceMethod<&DatasetWrap::TrainBatch>("trainBatch"),
                         InstanceMethod<&DatasetWrap::EvalBatch>("evalBatch"),
                         InstanceMethod<&DatasetWrap::Dispose>("dispose"),
                     });
}

std::shared_ptr<Dataset> DatasetWrap::From(const Napi::Value& value, const char* field) {
  auto& ctor = addon_data(value.Env()).dataset_class;
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(ctor.Value())) {
    throw std::invalid_argument(std::string(field) + ": expected a native Dataset");
  }
  auto& data = Unwrap(value.As<Napi::Object>())->data_;
  if (!data) throw std::invalid_argument(std::string(field) + ": the dataset was disposed");
  return data;
}

DatasetWrap::DatasetWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DatasetWrap>(info) {
  if (info.Length() != 2 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "Dataset: use createMlmData() or createLabelledData(), not new");
  }
  data_ = *info[0].As<Napi::External<std::shared_ptr<Dataset>>>().Data();
  external_bytes_ = static_cast<int64_t>(info[1].As<Napi::Number>().DoubleValue());
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), external_bytes_);
}

DatasetWrap::~DatasetWrap() {
  if (external_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
}

static Napi::Value wrap_dataset(Napi::Env env, std::shared_ptr<Dataset> data, int64_t bytes) {
  auto holder = Napi::External<std::shared_ptr<Dataset>>::New(env, new std::shared_ptr<Dataset>(std::move(data)),
                                                             [](Napi::Env, std::shared_ptr<Dataset>* p) { delete p; });
  return addon_data(env).dataset_class.New({holder, Napi::Number::New(env, static_cast<double>(bytes))});
}

Napi::Value DatasetWrap::CreateMlm(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto tokens = ids_from_js(info[0], "tokens");
    auto j = json_arg(info, 1, "options");
    MlmOptions o;
    try {
      o.block_len = j.at("blockLen").get<int64_t>();
      o.mask_prob = j.at("maskProb").get<double>();
      o.mask_token_prob = j.at("maskTokenProb").get<double>();
      o.random_token_prob = j.at("randomTokenProb").get<double>();
      o.mask_id = j.at("maskId").get<int64_t>();
      o.cls_id = j.at("clsId").get<int64_t>();
      o.vocab_size = j.at("vocabSize").get<int64_t>();
      o.special_ids = j.at("specialIds").get<std::vector<int64_t>>();
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(std::string("MLM data options: ") + e.what());
    }
    auto data = std::make_shared<MlmBlocks>(tokens, o);
    return wrap_dataset(info.Env(), data, tokens.numel() * 8);
  });
}

Napi::Value DatasetWrap::CreateLabelled(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto tokens = ids_from_js(info[0], "tokens");
    auto offsets = ids_from_js(info[1], "offsets");
    auto labels = ids_from_js(info[2], "labels");
    auto data = std::make_shared<LabelledSequences>(tokens, offsets, labels, int_arg(info, 3, "maxLen"), int_arg(info, 4, "padId"));
    return wrap_dataset(info.Env(), data, (tokens.numel() + offsets.numel() + labels.numel()) * 8);
  });
}

Napi::Value DatasetWrap::Size(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(From(info.This(), "size")->size())); });
}

Napi::Value DatasetWrap::TrainBatch(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto data = From(info.This(), "trainBatch");
    const int64_t batch_size = int_arg(info, 1, "batchSize");
    if (batch_size <= 0) throw std::invalid_argument("batchSize: must be > 0");
    return batch_to_js(info.Env(), data->train_batch(int_arg(info, 0, "index"), batch_size, static_cast<uint64_t>(int_arg(info, 2, "seed"))));
  });
}

Napi::Value DatasetWrap::EvalBatch(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto data = From(info.This(), "evalBatch");
    return batch_to_js(info.Env(), data->eval_batch(int_arg(info, 0, "first"), int_arg(info, 1, "count"), static_cast<uint64_t>(int_arg(info, 2, "seed"))));
  });
}

Napi::Value DatasetWrap::Dispose(const Napi::CallbackInfo& info) {
  data_.reset();
  if (external_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -external_bytes_);
  external_bytes_ = 0;
  return info.Env().Undefined();
}

}  // namespace trainlarge::bind
