// Per-instance addon data (context-aware: no globals, so the addon may load in worker_threads).
#pragma once

#include <napi.h>

#include <memory>

namespace trainlarge::bind {

struct EngineChannel;  // bind/job.cc

struct AddonData {
  Napi::FunctionReference model_class, dataset_class, trainer_class, tokenizer_class;
  // run_async's completions from the engine thread (bind/job.cc); each job holds it until it is settled.
  std::shared_ptr<EngineChannel> engine;
};

inline AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace trainlarge::bind
