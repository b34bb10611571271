#include "bind/trainer_wrap.h"

#include <chrono>

#include "bind/convert.h"
#include "bind/data_wrap.h"
#include "bind/job.h"
#include "bind/model_wrap.h"
#include "bind/options.h"

namespace trainlarge::bind {

Napi::Function TrainerWrap::Define(Napi::Env env) {
  return DefineClass(env, "Trainer",
                     {
                         InstanceMethod<&TrainerWrap::Steps>("steps"),
                         InstanceMethod<&TrainerWrap::Abort>("abort"),
                         InstanceMethod<&TrainerWrap::SaveState>("saveState"),
                         InstanceMethod<&TrainerWrap::LoadState>("loadState"),
                         InstanceMethod<&TrainerWrap::JoinGroup>("joinGroup"),
                         InstanceMethod<&TrainerWrap::SyncState>("syncState"),
                         InstanceMethod<&TrainerWrap::Agree>("agree"),
                         InstanceMethod<&TrainerWrap::Barrier>("barrier"),
                         InstanceMethod<&TrainerWrap::LeaveGroup>("leaveGroup"),
                         InstanceAccessor<&TrainerWrap::Step>("step"),
                         InstanceAccessor<&TrainerWrap::LossScale>("lossScale"),
                         InstanceMethod<&TrainerWrap::Dispose>("dispose"),
                     });
}

TrainerWrap::TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
  try {
    model_ = ModelWrap::From(info[0], "model");
    auto config = read_train_config(info[1]);
    trainer_ = std::make_shared<Trainer>(model_, config);
    external_bytes_ = 3 * model_->parameter_bytes();  // two AdamW moments + gradients
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), external_bytes_);
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw to_js_error(info.Env());
  }
}

Napi::Value TrainerWrap::Share(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto config = read_dist_config(info[0]);
    const std::string text = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    return run_async(info.Env(), "trainlarge.distShare", [=]() -> Finish {
      const auto out = DistGroup::shared(config)->broadcast_text(text);
      return [out](Napi::Env env) -> Napi::Value { return Napi::String::New(env, out); };
    });
  });
}

Napi::Value TrainerWrap::Gather(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto config = read_dist_config(info[0]);
    if (info.Length() < 2 || !info[1].IsString()) throw std::invalid_argument("distGather: text: expected a string");
    const std::string text = info[1].As<Napi::String>().Utf8Value();
    return run_async(info.Env(), "trainlarge.distGather", [=]() -> Finish {
      auto out = DistGroup::shared(config)->gather_text(text);
      return [out = std::move(out)](Napi::Env env) -> Napi::Value {
        auto a = Napi::Array::New(env, out.size());
        for (size_t i = 0; i < out.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::String::New(env, out[i]));
        return a;
      };
    });
  });
}

std::shared_ptr<DistGroup> TrainerWrap::GroupOf(const Napi::Value& value, const char* field) {
  auto& ctor = addon_data(value.Env()).trainer_class;
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(ctor.Value())) {
    throw std::invalid_argument(std::string(field) + ": expected a native Trainer");
  }
  return Unwrap(value.As<Napi::Object>())->live(field)->group();
}

TrainerWrap::~TrainerWrap() {
  if (external_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
}

const std::shared_ptr<Trainer>& TrainerWrap::live(const char* method) const {
  if (!trainer_) throw std::invalid_argument(std::string(method) + ": the trainer was disposed");
  return trainer_;
}

Napi::Value TrainerWrap::Steps(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto trainer = live("steps");
    auto model = model_;
    auto data = DatasetWrap::From(info[0], "data");
    const int64_t max_steps = int_arg(info, 1, "maxSteps");
    const double max_seconds = number_arg(info, 2, "maxSeconds");
    if (max_steps <= 0) throw std::invalid_argument("maxSteps: must be > 0");
    auto abort = abort_;
    abort->store(info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value());
    return run_async(info.Env(), "trainlarge.steps",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "training");
                       const auto& c = trainer->config();
                       set_threads(c.threads, c.blas_threads);
                       const auto start = std::chrono::steady_clock::now();
                       const auto group = trainer->group();
                       std::vector<StepStats> done;
                       bool aborted = false;
                       double agreed_seconds = 0;
                       while (static_cast<int64_t>(done.size()) < max_steps) {
                         if (group ? group->any(abort->load()) : abort->load()) {
                           aborted = true;
                           break;
                         }
                         done.push_back(trainer->step(data));
                         agreed_seconds += done.back().seconds;
                         const double elapsed =
                             group ? agreed_seconds : std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                         if (max_seconds > 0 && elapsed >= max_seconds) break;
                       }
                       return [done, aborted](Napi::Env env) -> Napi::Value {
                         auto out = Napi::Array::New(env, done.size());
                         for (size_t i = 0; i < done.size(); ++i) {
                           const auto& s = done[i];
                           auto o = Napi::Object::New(env);
                           o.Set("step", static_cast<double>(s.step));
                           o.Set("loss", s.loss);
                           o.Set("lr", s.lr);
                           o.Set("gradNorm", s.grad_norm);
                           o.Set("tokens", static_cast<double>(s.tokens));
                           o.Set("targets", static_cast<double>(s.targets));
                           o.Set("seconds", s.seconds);
                           o.Set("dataSeconds", s.data_seconds);
                           o.Set("skipped", s.skipped);
                           o.Set("commSeconds", s.comm_seconds);
                           o.Set("commBytes", static_cast<double>(s.comm_bytes));
                           out.Set(static_cast<uint32_t>(i), o);
                         }
                         auto result = Napi::Object::New(env);
                         result.Set("stats", out);
                         result.Set("aborted", aborted);
                         return result;
                       };
                     },
                     {info.This().As<Napi::Object>(), info[0].As<Napi::Object>()});
  });
}

Napi::Value TrainerWrap::Abort(const Napi::CallbackInfo& info) {
  abort_->store(true);
  return info.Env().Undefined();
}

Napi::Value TrainerWrap::SaveState(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto trainer = live("saveState");
    auto model = model_;
    const auto path = string_arg(info, 0, "path");
    return run_async(info.Env(), "trainlarge.saveState",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "saveState");
                       trainer->save_state(path);
                       return nullptr;
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value TrainerWrap::LoadState(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto trainer = live("loadState");
    auto model = model_;
    const auto path = string_arg(info, 0, "path");
    return run_async(info.Env(), "trainlarge.loadState",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "loadState");
                       trainer->load_state(path);
                       return nullptr;
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value TrainerWrap::JoinGroup(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto trainer = live("joinGroup");
    if (trainer->group()) throw std::invalid_argument("joinGroup: this trainer is in a process group already");
    const auto config = read_dist_config(info[0]);
    check_backend(config.backend, model_->device);
    return run_async(info.Env(), "trainlarge.joinGroup",
                     [=]() -> Finish {
                       trainer->set_group(DistGroup::shared(config));
                       return nullptr;
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value TrainerWrap::SyncState(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto trainer = live("syncState");
    auto model = model_;
    std::vector<double> values;
    if (!info[0].IsArray()) throw std::invalid_argument("syncState: values must be an array of numbers");
    auto a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) values.push_back(a.Get(i).As<Napi::Number>().DoubleValue());
    return run_async(info.Env(), "trainlarge.syncState",
                     [=]() -> Finish {
                       BusyGuard busy(*model, "syncState");
                       auto out = trainer->sync_state(values);
                       return [out](Napi::Env env) -> Napi::Value {
                         auto arr = Napi::Array::New(env, out.size());
                         for (size_t i = 0; i < out.size(); ++i) arr.Set(static_cast<uint32_t>(i), out[i]);
                         return arr;
                       };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value TrainerWrap::Agree(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto trainer = live("agree");
    const bool local = info[0].ToBoolean().Value();
    return run_async(info.Env(), "trainlarge.agree",
                     [=]() -> Finish {
                       const bool all = trainer->group() ? trainer->group()->any(local) : local;
                       return [all](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, all); };
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value TrainerWrap::Barrier(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto trainer = live("barrier");
    return run_async(info.Env(), "trainlarge.barrier",
                     [=]() -> Finish {
                       if (trainer->group()) trainer->group()->barrier();
                       return nullptr;
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value TrainerWrap::LeaveGroup(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto trainer = live("leaveGroup");
    return run_async(info.Env(), "trainlarge.leaveGroup",
                     [=]() -> Finish {
                       trainer->set_group(nullptr);
                       return nullptr;
                     },
                     {info.This().As<Napi::Object>()});
  });
}

Napi::Value TrainerWrap::Step(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(live("step")->steps())); });
}

Napi::Value TrainerWrap::LossScale(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), live("lossScale")->loss_scale()); });
}

Napi::Value TrainerWrap::Dispose(const Napi::CallbackInfo& info) {
  trainer_.reset();
  model_.reset();
  if (external_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -external_bytes_);
  external_bytes_ = 0;
  return info.Env().Undefined();
}

}  // namespace trainlarge::bind
