#include "bind/model_wrap.h"

#include <algorithm>
#include <limits>

#include "bind/addon.h"
#include "bind/convert.h"
#include "bind/data_wrap.h"
#include "bind/job.h"
#include "bind/options.h"
#include "bind/trainer_wrap.h"
#include "engine/packed.h"
#include "engine/roberta.h"
#include "train/trainer.h"

namespace trainlarge::bind {

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {
                         InstanceAccessor<&ModelWrap::ParameterCount>("parameterCount"),
                         InstanceAccessor<&ModelWrap::ParameterBytes>("parameterBytes"),
                         InstanceAccessor<&ModelWrap::Device>("device"),
                         InstanceAccessor<&ModelWrap::Disposed>("disposed"),
                         InstanceMethod<&ModelWrap::Predict>("predict"),
                         InstanceMethod<&ModelWrap::PredictTopK>("predictTopK"),
                         InstanceMethod<&ModelWrap::Translate>("translate"),
                         InstanceMethod<&ModelWrap::Evaluate>("evaluate"),
                         InstanceMethod<&ModelWrap::Save>("save"),
                         InstanceMethod<&ModelWrap::LoadWeights>("loadWeights"),
                         InstanceMethod<&ModelWrap::SaveRoberta>("saveRoberta"),
                         InstanceMethod<&ModelWrap::LoadRoberta>("loadRoberta"),
                         InstanceMethod<&ModelWrap::Prune>("prune"),
                         InstanceMethod<&ModelWrap::PruneStructured>("pruneStructured"),
                         InstanceMethod<&ModelWrap::Quantize>("quantize"),
                         InstanceMethod<&ModelWrap::Clone>("clone"),
                         InstanceMethod<&ModelWrap::ToInt8>("toInt8"),
                         InstanceMethod<&ModelWrap::CompressionInfo>("compression"),
                         InstanceMethod<&ModelWrap::PackedSize>("packedSize"),
                         InstanceMethod<&ModelWrap::WeightErrors>("weightErrors"),
                         InstanceMethod<&ModelWrap::Parameter>("parameter"),
                         InstanceMethod<&ModelWrap::Dispose>("dispose"),
                     });
}

Napi::Object ModelWrap::Wrap(Napi::Env env, std::shared_ptr<Model> model) {
  auto holder = Napi::External<std::shared_ptr<Model>>::New(env, new std::shared_ptr<Model>(std::move(model)),
                                                            [](Napi::Env, std::shared_ptr<Model>* p) { delete p; });
  return addon_data(env).model_class.New({holder});
}

std::shared_ptr<Model> ModelWrap::From(const Napi::Value& value, const char* field) {
  auto& ctor = addon_data(value.Env()).model_class;
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(ctor.Value())) {
    throw std::invalid_argument(std::string(field) + ": expected a native Model");
  }
  return Unwrap(value.As<Napi::Object>())->live(field);
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "Model: use createModel() or loadModel(), not new");
  }
  model_ = *info[0].As<Napi::External<std::shared_ptr<Model>>>().Data();
  // Weights, plus gradients and AdamW's two moments once trained: tell V8 what this handle holds.
  external_bytes_ = model_->parameter_bytes();
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), external_bytes_);
}

ModelWrap::~ModelWrap() {
  if (model_) release(Env());
}

void ModelWrap::release(Napi::Env env) {
  model_.reset();
  if (external_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -external_bytes_);
  external_bytes_ = 0;
}

const std::shared_ptr<Model>& ModelWrap::live(const char* method) const {
  if (!model_) throw std::invalid_argument(std::string(method) + ": the model was disposed");
  return model_;
}

Napi::Value ModelWrap::Create(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto config = read_model_config(info[0]);
    const auto seed = static_cast<uint64_t>(int_arg(info, 1, "seed"));
    const auto device = parse_device(string_arg(info, 2, "device"));
    return run_async(info.Env(), "trainlarge.createModel", [=]() -> Finish {
      auto model = std::make_shared<Model>(config, seed, device);
      return [model](Napi::Env env) -> Napi::Value { return Wrap(env, model); };
    });
  });
}

Napi::Value ModelWrap::Load(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto config = read_model_config(info[0]);
    const auto path = string_arg(info, 1, "path");
    const auto device = parse_device(string_arg(info, 2, "device"));
    return run_async(info.Env(), "trainlarge.loadModel", [=]() -> Finish {
      auto file = load_safetensors(path);
      auto model = std::make_shared<Model>(config, /*seed=*/0, device);
      model->load_file(file, /*strict=*/true);
      return [model](Napi::Env env) -> Napi::Value { return Wrap(env, model); };
    });
  });
}

Napi::Value ModelWrap::ParameterCount(const Napi::CallbackInfo& info) {
  return Guard(
      info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(live("parameterCount")->parameter_count())); });
}

Napi::Value ModelWrap::ParameterBytes(const Napi::CallbackInfo& info) {
  return Guard(
      info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(live("parameterBytes")->parameter_bytes())); });
}

Napi::Value ModelWrap::Device(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), live("device")->device.str()); });
}

Napi::Value ModelWrap::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

namespace {

// Arguments 0..3 of predict and predictTopK: (ids, batch, length, mask | null) -> ids (B, T) and an
// optional (B, T) attention mask.
std::pair<torch::Tensor, torch::Tensor> token_batch_arg(const Napi::CallbackInfo& info) {
  const int64_t B = int_arg(info, 1, "batch"), T = int_arg(info, 2, "length");
  if (B <= 0 || T <= 0) throw std::invalid_argument("tokens: batch and length must be > 0");
  auto ids = ids_from_js(info[0], "tokens", {B, T});
  torch::Tensor mask;
  if (info.Length() > 3 && !info[3].IsNull() && !info[3].IsUndefined()) mask = mask_from_js(info[3], "attentionMask", {B, T});
  return {ids, mask};
}

}  // namespace

Napi::Value ModelWrap::Predict(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("predict");
    auto [ids, mask] = token_batch_arg(info);
    const auto precision = read_precision(info[4], "precision");
    // [targets, targetLength]: a translate model's teacher-forced logits (B, T, V).
    torch::Tensor targets;
    if (info.Length() > 5 && !info[5].IsUndefined()) {
      const int64_t T = int_arg(info, 6, "targetLength");
      if (T <= 0) throw std::invalid_argument("targets: length must be > 0");
      targets = ids_from_js(info[5], "targets", {ids.size(0), T});
    }
    return run_async(info.Env(), "trainlarge.predict",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "predict");
                       auto logits = targets.defined() ? model->predict_translation(ids, mask, targets, precision)
                                                       : model->predict(ids, mask, precision);
                       return [logits](Napi::Env env) -> Napi::Value { return tensor_to_js(env, logits); };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::PredictTopK(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("fillMask");
    auto [ids, mask] = token_batch_arg(info);
    const auto options = read_top_k_options(info[4]);
    const auto positions = options.positions;
    const int64_t k = options.k;
    const auto precision = options.precision;
    return run_async(info.Env(), "trainlarge.predictTopK",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "fillMask");
                       auto r = model->predict_top_k(ids, mask, positions, k, precision);
                       return [r](Napi::Env env) -> Napi::Value {
                         auto o = Napi::Object::New(env);
                         o.Set("probs", float32_array(env, r.probs));
                         o.Set("ids", int32_array(env, r.ids));
                         o.Set("k", Napi::Number::New(env, static_cast<double>(r.ids.size(1))));
                         return o;
                       };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::Translate(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("translate");
    auto [ids, mask] = token_batch_arg(info);
    const auto options = read_generate_options(info[4]);
    const auto precision = read_precision(info[5], "precision");
    return run_async(info.Env(), "trainlarge.translate",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "translate");
                       const auto hyps = model->translate(ids, mask, options, precision);
                       // Flattened: nbest rows per sentence (a sentence with fewer hypotheses gets empty rows, score -inf).
                       const auto rows = hyps.size() * static_cast<size_t>(options.nbest);
                       std::vector<int32_t> tokens, lengths(rows, 0);
                       std::vector<double> scores(rows, -std::numeric_limits<double>::infinity());
                       for (size_t i = 0; i < hyps.size(); ++i) {
                         for (size_t j = 0; j < hyps[i].size() && j < static_cast<size_t>(options.nbest); ++j) {
                           const auto row = i * static_cast<size_t>(options.nbest) + j;
                           for (auto t : hyps[i][j].tokens) tokens.push_back(static_cast<int32_t>(t));
                           lengths[row] = static_cast<int32_t>(hyps[i][j].tokens.size());
                           scores[row] = hyps[i][j].score;
                         }
                       }
                       const auto nbest = options.nbest;
                       return [tokens, lengths, scores, nbest](Napi::Env env) -> Napi::Value {
                         auto o = Napi::Object::New(env);
                         auto t = Napi::Int32Array::New(env, tokens.size());
                         std::copy(tokens.begin(), tokens.end(), t.Data());
                         auto l = Napi::Int32Array::New(env, lengths.size());
                         std::copy(lengths.begin(), lengths.end(), l.Data());
                         auto s = Napi::Float64Array::New(env, scores.size());
                         std::copy(scores.begin(), scores.end(), s.Data());
                         o.Set("tokens", t);
                         o.Set("lengths", l);
                         o.Set("scores", s);
                         o.Set("nbest", static_cast<double>(nbest));
                         return o;
                       };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::Evaluate(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("evaluate");
    auto data = DatasetWrap::From(info[0], "data");
    const auto options = read_evaluate_options(info[1]);
    const int64_t batch_size = options.batch_size, max_samples = options.max_samples;
    const auto seed = options.seed;
    const auto precision = options.precision;
    if (batch_size <= 0) throw std::invalid_argument("batchSize: must be > 0");
    // A trainer in a process group: the ranks share the batches out and sum their figures.
    std::shared_ptr<DistGroup> group;
    if (info.Length() > 2 && !info[2].IsUndefined()) group = TrainerWrap::GroupOf(info[2], "group");
    return run_async(info.Env(), "trainlarge.evaluate",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "evaluate");
                       auto r = trainlarge::evaluate(*model, *data, batch_size, max_samples, seed, precision, group.get());
                       return [r](Napi::Env env) -> Napi::Value {
                         auto o = Napi::Object::New(env);
                         o.Set("loss", r.loss);
                         o.Set("count", static_cast<double>(r.count));
                         o.Set("correct", static_cast<double>(r.correct));
                         o.Set("samples", static_cast<double>(r.samples));
                         o.Set("seconds", r.seconds);
                         if (!r.target_counts.empty()) {
                           o.Set("maskLoss", r.mask_loss);
                           o.Set("maskCount", static_cast<double>(r.mask_count));
                           auto histogram = [&](const std::vector<double>& v) {
                             auto a = Napi::Float64Array::New(env, v.size());
                             std::copy(v.begin(), v.end(), a.Data());
                             return a;
                           };
                           o.Set("targetCounts", histogram(r.target_counts));
                           o.Set("maskTargetCounts", histogram(r.mask_target_counts));
                         }
                         return o;
                       };
                     },
                     {info.This().As<Napi::Object>(), info[0].As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::Save(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("save");
    const auto path = string_arg(info, 0, "path");
    const auto metadata = read_metadata(info[1], "metadata");
    return run_async(info.Env(), "trainlarge.save",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "save");
                       model->save(path, metadata);
                       return nullptr;
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::LoadWeights(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("loadWeights");
    const auto path = string_arg(info, 0, "path");
    const bool strict = info.Length() > 1 && info[1].ToBoolean();
    return run_async(info.Env(), "trainlarge.loadWeights",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "loadWeights");
                       auto file = load_safetensors(path);
                       auto missing = model->load_weights(is_packed(file.metadata) ? unpack(file, nullptr) : file.tensors, strict);
                       return [missing](Napi::Env env) -> Napi::Value {
                         auto out = Napi::Array::New(env, missing.size());
                         for (size_t i = 0; i < missing.size(); ++i) out.Set(static_cast<uint32_t>(i), missing[i]);
                         return out;
                       };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::SaveRoberta(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("save");
    const auto path = string_arg(info, 0, "path");
    const int64_t padding_idx = int_arg(info, 1, "paddingIdx");
    const auto metadata = read_metadata(info[2], "metadata");
    return run_async(info.Env(), "trainlarge.saveRoberta",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "save");
                       save_safetensors(path, to_roberta(*model, padding_idx), plain_metadata(metadata));
                       return nullptr;
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::LoadRoberta(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("fromHF");
    const auto path = string_arg(info, 0, "path");
    const int64_t padding_idx = int_arg(info, 1, "paddingIdx");
    const bool strict = info.Length() > 2 && info[2].ToBoolean();
    return run_async(info.Env(), "trainlarge.loadRoberta",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "fromHF");
                       const auto missing = load_roberta(*model, load_safetensors(path).tensors, padding_idx, strict);
                       return [missing](Napi::Env env) -> Napi::Value {
                         auto out = Napi::Array::New(env, missing.size());
                         for (size_t i = 0; i < missing.size(); ++i) out.Set(static_cast<uint32_t>(i), missing[i]);
                         return out;
                       };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::Clone(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("clone");
    return run_async(info.Env(), "trainlarge.clone",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "clone");
                       auto copy = model->clone();
                       return [copy](Napi::Env env) -> Napi::Value { return Wrap(env, copy); };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::Parameter(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto model = live("parameter");
    const auto name = string_arg(info, 0, "name");
    return run_async(info.Env(), "trainlarge.parameter",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "parameter");
                       auto t = model->parameter(name);
                       return [t](Napi::Env env) -> Napi::Value { return tensor_to_js(env, t); };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  if (model_) release(info.Env());
  return info.Env().Undefined();
}

}  // namespace trainlarge::bind
