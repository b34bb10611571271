// JS class Trainer: AdamW training of a Model on a Dataset, a chunk of steps per async call.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "train/trainer.h"

namespace trainlarge::bind {

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // [sync] new Trainer(model, configJson)
  explicit TrainerWrap(const Napi::CallbackInfo& info);
  ~TrainerWrap() override;

 private:
  // [async] steps(data, maxSteps, maxSeconds) -> Promise<StepStats[]>: runs updates until maxSteps are
  //   done, maxSeconds have passed (at least one step), or abort() was called (checked between steps).
  Napi::Value Steps(const Napi::CallbackInfo& info);
  // [sync] abort(): the running steps() call returns after its current step
  Napi::Value Abort(const Napi::CallbackInfo& info);
  // [async] saveState(path) / loadState(path): weights + optimizer + step in one safetensors file
  Napi::Value SaveState(const Napi::CallbackInfo& info);
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  // [sync] step: optimizer updates done; lossScale (fp16)
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value LossScale(const Napi::CallbackInfo& info);
  // [sync] dispose(): frees the optimizer state
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  const std::shared_ptr<Trainer>& live(const char* method) const;

  std::shared_ptr<Trainer> trainer_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<std::atomic<bool>> abort_ = std::make_shared<std::atomic<bool>>(false);
  int64_t external_bytes_ = 0;
};

}  // namespace trainlarge::bind
