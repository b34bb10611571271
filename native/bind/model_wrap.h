// JS class Model: a handle on an engine Model. Created by createModel / loadModel (async).
#pragma once

#include <napi.h>

#include <memory>

#include "engine/model.h"

namespace trainlarge::bind {

// The engine's compression kernels alone (magnitudeMasks, fakeQuantize, packBits, unpackBits), under
// `exports.testing`: no library code calls them; the tests check them against PyTorch's and by round trips.
void register_testing_ops(Napi::Env env, Napi::Object exports);

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Model> model);
  // The model behind a JS value; throws naming `field` if it is not a live Model.
  static std::shared_ptr<Model> From(const Napi::Value& value, const char* field);

  // [async] createModel(config: ModelConfig, seed, device) -> Promise<Model>
  static Napi::Value Create(const Napi::CallbackInfo& info);
  // [async] loadModel(config: ModelConfig, weightsPath, device) -> Promise<Model>; strict: exact tensors
  static Napi::Value Load(const Napi::CallbackInfo& info);

  explicit ModelWrap(const Napi::CallbackInfo& info);
  ~ModelWrap() override;

 private:
  // [sync] getters: parameterCount, parameterBytes, device, disposed
  Napi::Value ParameterCount(const Napi::CallbackInfo& info);
  Napi::Value ParameterBytes(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  // [async] predict(ids: Int32Array, batch, length, mask: Uint8Array | null, precision)
  //   -> Promise<{ data: Float32Array, dims }>  logits (B, T, V) for MLM, (B, C) for classify
  Napi::Value Predict(const Napi::CallbackInfo& info);
  // [async] predictTopK(ids, batch, length, mask | null, { positions: Int32Array, topK, precision })
  //   -> Promise<{ probs, ids, k }>
  Napi::Value PredictTopK(const Napi::CallbackInfo& info);
  // [async] translate(ids: Int32Array, batch, length, mask: Uint8Array | null, options: { beam, nbest, lengthPenalty,
  //   maxLenA, maxLenB }, precision) -> Promise<{ tokens: Int32Array, lengths: Int32Array, scores: Float64Array, nbest }>
  //   sources (B, S) ending in EOS; hypothesis j of sentence i is row i * nbest + j: its ids (no BOS, no EOS) are
  //   the next lengths[row] of tokens; all decoding in C++ off the JS thread
  Napi::Value Translate(const Napi::CallbackInfo& info);
  // [async] evaluate(dataset, { batchSize, maxSamples, seed, precision }, trainer?)
  //   -> Promise<{loss, count, correct, samples, seconds}>;
  //   with a trainer in a process group, every rank evaluates its share of the batches and gets the group's figures
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  // [async] save(path, metadata: {name: string}) -> Promise<void>; atomic safetensors write
  Napi::Value Save(const Napi::CallbackInfo& info);
  // [async] loadWeights(path, strict) -> Promise<string[]> names not found in the file
  Napi::Value LoadWeights(const Napi::CallbackInfo& info);
  // [async] saveRoberta(path, paddingIdx, metadata) -> Promise<void>: the tensors under transformers'
  // RoBERTa names (engine/roberta.h), atomically
  Napi::Value SaveRoberta(const Napi::CallbackInfo& info);
  // [async] loadRoberta(path, paddingIdx, strict) -> Promise<string[]>: a RoBERTa checkpoint's tensors; the
  // model's tensor names not found (a head, when not strict)
  Napi::Value LoadRoberta(const Napi::CallbackInfo& info);
  // [async] clone() -> Promise<Model>: weights and compression state
  Napi::Value Clone(const Napi::CallbackInfo& info);
  // [async] parameter(name) -> Promise<{ data: Float32Array, dims }>: a copy of one parameter
  Napi::Value Parameter(const Napi::CallbackInfo& info);
  // Compression (bind/compress_wrap.cc):
  // [async] prune(options) -> Promise<void>: { structure: 'unstructured', sparsity, scope, schedule: 'oneshot'|'gradual',
  //   initialSparsity, startStep, endStep, every, targets: ('attention'|'ffn'|'embeddings')[] }
  Napi::Value Prune(const Napi::CallbackInfo& info);
  // [async] pruneStructured(options) -> Promise<{ model: Model, heads, headDim, ffn }>: a new, smaller model
  //   without the least important heads and/or feed-forward units ({ structure: 'heads'|'ffn'|'heads+ffn',
  //   sparsity, scope, schedule }); heads, headDim and ffn are its config's
  Napi::Value PruneStructured(const Napi::CallbackInfo& info);
  // [async] quantize(options) -> Promise<void>: { bits, symmetric, granularity, targets }
  Napi::Value Quantize(const Napi::CallbackInfo& info);
  // [async] toInt8(engine: 'auto'|'onednn'|'qnnpack') -> Promise<Model>: a copy whose encoder runs int8 kernels
  Napi::Value ToInt8(const Napi::CallbackInfo& info);
  // [sync] compression() -> { pruned: {name: {numel, kept, sparsity}}, quantized: {...}, int8?, schedule? }
  Napi::Value CompressionInfo(const Napi::CallbackInfo& info);
  // [async] packedSize(metadata) -> Promise<{ fileBytes, headerBytes, tensors: {name: bytes} }>: save()'s file
  Napi::Value PackedSize(const Napi::CallbackInfo& info);
  // [async] weightErrors(reference: Model) -> Promise<{name: ||W - W_ref|| / ||W_ref||}>
  Napi::Value WeightErrors(const Napi::CallbackInfo& info);
  // [sync] dispose(): frees the native memory now (a running job keeps it alive until it ends)
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  const std::shared_ptr<Model>& live(const char* method) const;
  void release(Napi::Env env);

  std::shared_ptr<Model> model_;
  int64_t external_bytes_ = 0;
};

}  // namespace trainlarge::bind
