// JS class Dataset: token ids held natively, batched by the engine (MLM blocks or labelled sequences).
#pragma once

#include <napi.h>

#include <memory>

#include "data/dataset.h"

namespace trainlarge::bind {

class DatasetWrap : public Napi::ObjectWrap<DatasetWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static std::shared_ptr<Dataset> From(const Napi::Value& value, const char* field);

  // [sync] createMlmData(tokens: Int32Array|Uint16Array|Uint32Array, optionsJson) -> Dataset
  static Napi::Value CreateMlm(const Napi::CallbackInfo& info);
  // [sync] createMlmShards(paths: string[], optionsJson) -> Dataset over memory-mapped token shards
  static Napi::Value CreateMlmShards(const Napi::CallbackInfo& info);
  // [async] writeTokenShard(path, tokens: Int32Array, vocabSize) -> Promise<{ tokens, tokenBytes, vocabSize }>
  static Napi::Value WriteShard(const Napi::CallbackInfo& info);
  // [sync] readTokenShard(path) -> { ids: Int32Array, tokenBytes, vocabSize } (through the memory map)
  static Napi::Value ReadShard(const Napi::CallbackInfo& info);
  // [sync] createLabelledData(tokens, offsets: Int32Array, labels: Int32Array, maxLen, padId) -> Dataset
  static Napi::Value CreateLabelled(const Napi::CallbackInfo& info);
  // [sync] createParallelShards(sourceShards: string[], targetShards: string[], { maxLen, padId, eosId }) -> a Dataset of
  // pairs over memory-mapped shards whose sentences each end with EOS
  static Napi::Value CreateParallelShards(const Napi::CallbackInfo& info);
  // [sync] createParallelData(source, sourceOffsets, target, targetOffsets: Int32Array, { maxLen, padId, eosId })
  //   -> Dataset of (source, target) pairs batched by token count; each side without EOS (the engine adds it)
  static Napi::Value CreateParallel(const Napi::CallbackInfo& info);

  explicit DatasetWrap(const Napi::CallbackInfo& info);
  ~DatasetWrap() override;

 private:
  // [sync] size: samples (blocks or examples)
  Napi::Value Size(const Napi::CallbackInfo& info);
  // [sync] trainBatch(index, batchSize, seed) / evalBatch(first, count, seed)
  //   -> { ids: Int32Array, dims, targets: Int32Array, positions?: Int32Array, mask?: Uint8Array }
  Napi::Value TrainBatch(const Napi::CallbackInfo& info);
  Napi::Value EvalBatch(const Napi::CallbackInfo& info);
  // [sync] batchPlan(batchTokens, seed) -> { batches, pairs, maxBatchTokens, sourceTokens, targetTokens,
  //   sourcePadded, targetPadded, paddingShare }: one epoch of token-count batches (parallel data only)
  Napi::Value BatchPlan(const Napi::CallbackInfo& info);
  // [sync] dispose()
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<Dataset> data_;
  int64_t external_bytes_ = 0;
};

}  // namespace trainlarge::bind
