#include "bind/data_wrap.h"

#include "bind/addon.h"
#include "bind/convert.h"
#include "bind/job.h"
#include "bind/options.h"

namespace trainlarge::bind {

namespace {

Napi::Object batch_to_js(Napi::Env env, const Batch& b) {
  auto o = Napi::Object::New(env);
  o.Set("ids", int32_array(env, b.ids));
  auto dims = Napi::Array::New(env, 2);
  dims.Set(0u, static_cast<double>(b.ids.size(0)));
  dims.Set(1u, static_cast<double>(b.ids.size(1)));
  o.Set("dims", dims);
  o.Set("targets", int32_array(env, b.targets));
  if (b.positions.defined()) o.Set("positions", int32_array(env, b.positions));
  if (b.attention_mask.defined()) o.Set("mask", uint8_array(env, b.attention_mask));
  return o;
}

}  // namespace

Napi::Function DatasetWrap::Define(Napi::Env env) {
  return DefineClass(env, "Dataset",
                     {
                         InstanceAccessor<&DatasetWrap::Size>("size"),
                         InstanceMethod<&DatasetWrap::TrainBatch>("trainBatch"),
                         InstanceMethod<&DatasetWrap::EvalBatch>("evalBatch"),
                         InstanceMethod<&DatasetWrap::BatchPlan>("batchPlan"),
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
    auto data = std::make_shared<MlmBlocks>(TokenStream::from_tensor(tokens), read_mlm_options(info[1]));
    return wrap_dataset(info.Env(), data, tokens.numel() * 8);
  });
}

Napi::Value DatasetWrap::CreateMlmShards(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[0].IsArray()) throw std::invalid_argument("shards: expected an array of shard file paths");
    auto array = info[0].As<Napi::Array>();
    std::vector<std::string> paths;
    for (uint32_t i = 0; i < array.Length(); ++i) {
      auto v = array.Get(i);
      if (!v.IsString()) throw std::invalid_argument("shards[" + std::to_string(i) + "]: expected a path");
      paths.push_back(v.As<Napi::String>().Utf8Value());
    }
    auto data = std::make_shared<MlmBlocks>(TokenStream::map_shards(paths), read_mlm_options(info[1]));
    return wrap_dataset(info.Env(), data, 0);  // the shards are mapped, not allocated
  });
}

Napi::Value DatasetWrap::WriteShard(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto path = string_arg(info, 0, "path");
    auto ids = ids_from_js(info[1], "tokens");
    const int64_t vocab_size = int_arg(info, 2, "vocabSize");
    return run_async(info.Env(), "trainlarge.writeTokenShard", [path, ids, vocab_size]() -> Finish {
      const auto shard = write_token_shard(path, ids, vocab_size);
      return [shard](Napi::Env env) -> Napi::Value {
        auto o = Napi::Object::New(env);
        o.Set("tokens", static_cast<double>(shard.tokens));
        o.Set("tokenBytes", shard.token_bytes);
        o.Set("vocabSize", static_cast<double>(shard.vocab_size));
        return o;
      };
    });
  });
}

Napi::Value DatasetWrap::ReadShard(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto path = string_arg(info, 0, "path");
    auto stream = TokenStream::map_shards({path});
    const auto& header = stream.shards().front();
    auto env = info.Env();
    auto o = Napi::Object::New(env);
    o.Set("ids", int32_array(env, stream.slice(0, stream.size())));
    o.Set("tokenBytes", header.token_bytes);
    o.Set("vocabSize", static_cast<double>(header.vocab_size));
    return o;
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

Napi::Value DatasetWrap::CreateParallel(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto source = ids_from_js(info[0], "source");
    auto source_offsets = ids_from_js(info[1], "sourceOffsets");
    auto target = ids_from_js(info[2], "target");
    auto target_offsets = ids_from_js(info[3], "targetOffsets");
    auto data = std::make_shared<ParallelPairs>(source, source_offsets, target, target_offsets, read_parallel_options(info[4]));
    return wrap_dataset(info.Env(), data, (source.numel() + target.numel() + source_offsets.numel() + target_offsets.numel()) * 8);
  });
}

Napi::Value DatasetWrap::CreateParallelShards(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto paths = [&](int i, const char* field) {
      if (!info[i].IsArray()) throw std::invalid_argument(std::string(field) + ": expected an array of shard file paths");
      auto array = info[i].As<Napi::Array>();
      std::vector<std::string> out;
      for (uint32_t k = 0; k < array.Length(); ++k) {
        auto v = array.Get(k);
        if (!v.IsString()) throw std::invalid_argument(std::string(field) + "[" + std::to_string(k) + "]: expected a path");
        out.push_back(v.As<Napi::String>().Utf8Value());
      }
      return out;
    };
    auto data = ParallelPairs::from_shards(paths(0, "sourceShards"), paths(1, "targetShards"), read_parallel_options(info[2]));
    return wrap_dataset(info.Env(), data, 0);  // the shards are mapped; the pair index is small
  });
}

Napi::Value DatasetWrap::BatchPlan(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto data = std::dynamic_pointer_cast<ParallelPairs>(From(info.This(), "batchPlan"));
    if (!data) throw std::invalid_argument("batchPlan: only parallel (translation) data is batched by token count");
    const auto s = data->plan_stats(int_arg(info, 0, "batchTokens"), static_cast<uint64_t>(int_arg(info, 1, "seed")));
    auto o = Napi::Object::New(info.Env());
    o.Set("batches", static_cast<double>(s.batches));
    o.Set("pairs", static_cast<double>(s.pairs));
    o.Set("maxBatchTokens", static_cast<double>(s.max_batch_tokens));
    o.Set("sourceTokens", static_cast<double>(s.source_tokens));
    o.Set("targetTokens", static_cast<double>(s.target_tokens));
    o.Set("sourcePadded", static_cast<double>(s.source_padded));
    o.Set("targetPadded", static_cast<double>(s.target_padded));
    o.Set("paddingShare", s.padding_share());
    return o;
  });
}

Napi::Value DatasetWrap::Size(const Napi::CallbackInfo& info) {
  return Guard(info,
               [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(From(info.This(), "size")->size())); });
}

Napi::Value DatasetWrap::TrainBatch(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto data = From(info.This(), "trainBatch");
    const int64_t batch_size = int_arg(info, 1, "batchSize");
    if (batch_size <= 0) throw std::invalid_argument("batchSize: must be > 0");
    return batch_to_js(info.Env(),
                       data->train_batch(int_arg(info, 0, "index"), batch_size, static_cast<uint64_t>(int_arg(info, 2, "seed"))));
  });
}

Napi::Value DatasetWrap::EvalBatch(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto data = From(info.This(), "evalBatch");
    return batch_to_js(info.Env(), data->eval_batch(int_arg(info, 0, "first"), int_arg(info, 1, "count"),
                                                    static_cast<uint64_t>(int_arg(info, 2, "seed"))));
  });
}

Napi::Value DatasetWrap::Dispose(const Napi::CallbackInfo& info) {
  data_.reset();
  if (external_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -external_bytes_);
  external_bytes_ = 0;
  return info.Env().Undefined();
}

}  // namespace trainlarge::bind
