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
  // [async] distShare(distributed config, text | null) -> Promise<string>: rank 0's text on every rank, through
  //   this process's group for that config (joined on first use, shared with the trainers that join it)
  static Napi::Value Share(const Napi::CallbackInfo& info);
  // [async] distGather(distributed config, text) -> Promise<string[]>: every rank's text in rank order, on
  //   every rank, through the same group
  static Napi::Value Gather(const Napi::CallbackInfo& info);
  // The process group of a native Trainer (`field` names the argument in errors); null when it has none.
  static std::shared_ptr<DistGroup> GroupOf(const Napi::Value& value, const char* field);

 private:
  // [async] steps(data, maxSteps, maxSeconds, aborted) -> Promise<{ stats: StepStats[], aborted }>: runs
  //   updates until maxSteps are done, maxSeconds have passed (at least one step), or abort() was called
  //   (checked between steps; `aborted` is the flag's value at the start). In a process group the ranks agree
  //   before each step whether any was aborted, and count the agreed step seconds: all stop at the same step.
  //   Throws when a collective fails (naming the rank at fault).
  Napi::Value Steps(const Napi::CallbackInfo& info);
  // [sync] abort(): the running steps() call returns after its current step
  Napi::Value Abort(const Napi::CallbackInfo& info);
  // [async] saveState(path) / loadState(path): weights + optimizer + step in one safetensors file
  Napi::Value SaveState(const Napi::CallbackInfo& info);
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  // [async] joinGroup({ rank, worldSize, masterAddr, masterPort, backend, timeoutSeconds }) -> Promise<void>:
  //   joins the data-parallel process group (blocks the engine thread until every rank joined or the timeout)
  Napi::Value JoinGroup(const Napi::CallbackInfo& info);
  // [async] syncState(values: number[]) -> Promise<number[]>: rank 0's weights, optimizer state, step and
  //   `values` into every rank; returns rank 0's values (in one process, `values`)
  Napi::Value SyncState(const Napi::CallbackInfo& info);
  // [async] agree(local: boolean) -> Promise<boolean>: true on every rank when true on any
  Napi::Value Agree(const Napi::CallbackInfo& info);
  // [async] barrier() -> Promise<void>; [async] leaveGroup() -> Promise<void>: this trainer leaves the process
  //   group (the process keeps it for the next trainer: DistGroup::shared)
  Napi::Value Barrier(const Napi::CallbackInfo& info);
  Napi::Value LeaveGroup(const Napi::CallbackInfo& info);
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
