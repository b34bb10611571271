// Per-instance addon data (context-aware: no globals, so the addon may load in worker_threads).
#pragma once

#include <napi.h>

namespace trainlarge::bind {

struct AddonData {
  Napi::FunctionReference model_class, dataset_class, trainer_class, tokenizer_class;
};

inline AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace trainlarge::bind
