// The addon's entry point: classes, factories and process-wide functions.
#include "bind/addon.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "bind/convert.h"
#include "bind/data_wrap.h"
#include "bind/job.h"
#include "bind/model_wrap.h"
#include "bind/tokenizer_wrap.h"
#include "bind/trainer_wrap.h"
#include "common/runtime.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"

namespace trainlarge::bind {

namespace {

// [sync] engineInfo() -> { torchVersion, cudaBuilt, cudaAvailable, cudaDevices, threads, blasThreads, ... }
Napi::Value EngineInfo(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto env = info.Env();
    auto o = Napi::Object::New(env);
    o.Set("torchVersion", TORCH_VERSION);
    o.Set("cudaBuilt", cuda_built());
    o.Set("cudaAvailable", cuda_available());
    o.Set("distributedBackends", [&] {
      auto a = Napi::Array::New(env);
      if (gloo_built()) a.Set(0u, "gloo");
      if (gloo_built() && nccl_built()) a.Set(1u, "nccl");
      return a;
    }());
    o.Set("cudaDevices", static_cast<double>(cuda_available() ? torch::cuda::device_count() : 0));
    const auto [intra, blas] = thread_settings();
    o.Set("threads", intra > 0 ? intra : engine_default_threads());
    o.Set("blasThreads", blas > 0 ? blas : blas_threads());
    o.Set("hardwareThreads", static_cast<double>(std::thread::hardware_concurrency()));
    auto engines = Napi::Array::New(env);
    uint32_t i = 0;
    for (auto e : at::globalContext().supportedQEngines()) engines.Set(i++, c10::toString(e));
    o.Set("quantizedEngines", engines);
    o.Set("parallelInfo", engine_parallel_info());
    return o;
  });
}

// [sync] setThreads(intraOp, blas): thread counts every later job applies on its worker thread (0 = keep)
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    set_thread_settings(static_cast<int>(int_arg(info, 0, "threads")), static_cast<int>(int_arg(info, 1, "blasThreads")));
    return info.Env().Undefined();
  });
}

// [async] writeFileAtomic(path, data: string | Uint8Array) -> Promise<void>: temporary name, fsync, rename,
// fsync of the folder (io/atomic_file.h); lib/io.ts writes every file through this one implementation.
Napi::Value WriteFileAtomic(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto path = string_arg(info, 0, "path");
    std::string data;
    if (info.Length() > 1 && info[1].IsString()) {
      data = info[1].As<Napi::String>().Utf8Value();
    } else if (info.Length() > 1 && info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      auto bytes = info[1].As<Napi::Uint8Array>();
      data.assign(reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength());
    } else {
      throw std::invalid_argument("data: expected a string or a Uint8Array");
    }
    return run_io(info.Env(), "trainlarge.writeFileAtomic", [path, data = std::move(data)]() -> Finish {
      write_atomically(path, [&](int fd) { write_all(fd, data.data(), data.size(), path); });
      return nullptr;
    });
  });
}

// [async] convertTorchCheckpoint(binPath, safetensorsPath) -> Promise<string[]>: a torch.save state dict
// (pytorch_model.bin, zip format) rewritten as safetensors, float tensors as float32 (io/torch_checkpoint.h);
// resolves to the tensors' names. Runs on the engine thread (libtorch's unpickler makes tensors).
Napi::Value ConvertTorchCheckpoint(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto from = string_arg(info, 0, "binPath");
    const auto to = string_arg(info, 1, "safetensorsPath");
    return run_async(info.Env(), "trainlarge.convertTorchCheckpoint", [from, to]() -> Finish {
      const auto tensors = read_torch_checkpoint(from);
      save_safetensors(to, tensors);
      auto names = std::make_shared<std::vector<std::string>>();
      for (const auto& [name, t] : tensors) names->push_back(name);
      return [names](Napi::Env env) -> Napi::Value {
        auto a = Napi::Array::New(env, names->size());
        for (size_t i = 0; i < names->size(); ++i) a.Set(static_cast<uint32_t>(i), (*names)[i]);
        return a;
      };
    });
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  start_engine_thread();
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted with the env
  init_engine_jobs(env);
  auto model = ModelWrap::Define(env);
  auto dataset = DatasetWrap::Define(env);
  auto trainer = TrainerWrap::Define(env);
  data->model_class = Napi::Persistent(model);
  data->dataset_class = Napi::Persistent(dataset);
  data->trainer_class = Napi::Persistent(trainer);
  auto tokenizer = TokenizerWrap::Define(env);
  data->tokenizer_class = Napi::Persistent(tokenizer);
  exports.Set("trainTokenizer", Napi::Function::New<TokenizerWrap::Train>(env, "trainTokenizer"));
  exports.Set("loadTokenizer", Napi::Function::New<TokenizerWrap::Load>(env, "loadTokenizer"));
  exports.Set("loadForeignTokenizer", Napi::Function::New<TokenizerWrap::LoadForeign>(env, "loadForeignTokenizer"));
  exports.Set("createMlmShards", Napi::Function::New<DatasetWrap::CreateMlmShards>(env, "createMlmShards"));
  exports.Set("writeTokenShard", Napi::Function::New<DatasetWrap::WriteShard>(env, "writeTokenShard"));
  exports.Set("readTokenShard", Napi::Function::New<DatasetWrap::ReadShard>(env, "readTokenShard"));
  // Model, Dataset and Tokenizer come only from the factories below (their classes stay in AddonData for
  // them); Trainer is constructed from JS.
  exports.Set("Trainer", trainer);
  exports.Set("createModel", Napi::Function::New<ModelWrap::Create>(env, "createModel"));
  exports.Set("loadModel", Napi::Function::New<ModelWrap::Load>(env, "loadModel"));
  exports.Set("createMlmData", Napi::Function::New<DatasetWrap::CreateMlm>(env, "createMlmData"));
  exports.Set("createLabelledData", Napi::Function::New<DatasetWrap::CreateLabelled>(env, "createLabelledData"));
  exports.Set("createParallelData", Napi::Function::New<DatasetWrap::CreateParallel>(env, "createParallelData"));
  exports.Set("createParallelShards", Napi::Function::New<DatasetWrap::CreateParallelShards>(env, "createParallelShards"));
  exports.Set("distShare", Napi::Function::New<TrainerWrap::Share>(env, "distShare"));
  exports.Set("distGather", Napi::Function::New<TrainerWrap::Gather>(env, "distGather"));
  exports.Set("engineInfo", Napi::Function::New<EngineInfo>(env, "engineInfo"));
  exports.Set("setThreads", Napi::Function::New<SetThreads>(env, "setThreads"));
  exports.Set("writeFileAtomic", Napi::Function::New<WriteFileAtomic>(env, "writeFileAtomic"));
  exports.Set("convertTorchCheckpoint", Napi::Function::New<ConvertTorchCheckpoint>(env, "convertTorchCheckpoint"));
  register_testing_ops(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 11));
  return exports;
}

}  // namespace

}  // namespace trainlarge::bind

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return trainlarge::bind::Init(env, exports); }

NODE_API_MODULE(trainlarge, InitAddon)
