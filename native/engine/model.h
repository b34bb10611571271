// The engine's model: a Transformer (models/) on a device with its compression state, its files (plain
// safetensors, or packed when compressed: engine/packed.h), inference (float or int8 through the Linear
// hook), and a busy flag so one job at a time uses it. bind/ and train/ hold models through this class.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <string>

#include "common/runtime.h"
#include "compress/compress.h"
#include "io/safetensors.h"
#include "models/seq2seq.h"
#include "models/transformer.h"

namespace trainlarge {

struct Int8Linears;      // engine/int8.h
class PrepackedLinears;  // engine/prepacked.h

class Model {
 public:
  Model(const ModelConfig& config, uint64_t seed, c10::Device device);

  const ModelConfig& config() const { return module->config; }
  NamedTensors named_parameters() const;  // safetensors keys, in registration order
  int64_t parameter_count() const { return module->parameter_count(); }
  int64_t parameter_bytes() const;

  // strict: the file must hold exactly this model's tensors. Non-strict (a pretrained body under a
  // new head) copies what matches and returns the names it did not find.
  std::vector<std::string> load_weights(const std::map<std::string, torch::Tensor>& tensors, bool strict);
  // Weights and, for a packed file (a compressed model's), the compression state too.
  void load_file(const SafetensorsFile& file, bool strict);
  // A compressed model (masks or quantization) is written packed (engine/packed.h); file_size() tells
  // the size of the file save() writes.
  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const;
  // A deep copy (weights and compression state) on the same device.
  std::shared_ptr<Model> clone() const;

  // A copy of one parameter (CPU float32); throws naming `name` when the model has none.
  torch::Tensor parameter(const std::string& name) const;

  // Task 'translate': the encoder-decoder behind `module` (whose encoder it is), else nullptr.
  std::shared_ptr<Seq2SeqImpl> seq2seq() const { return std::dynamic_pointer_cast<Seq2SeqImpl>(module.ptr()); }

  // Logits for ids (B, T) int64 on CPU and an optional (B, T) bool mask; returns CPU float32.
  torch::Tensor predict(const torch::Tensor& ids, const torch::Tensor& attention_mask, Precision precision);
  // Translate models: teacher-forced logits (B, T, V) of targets (B, T) = [y1 .. yn EOS PAD ..] for sources
  // (B, S): the decoder reads [BOS y1 .. ], as in training (Seq2SeqImpl::translation_logits).
  torch::Tensor predict_translation(const torch::Tensor& src, const torch::Tensor& src_mask, const torch::Tensor& targets,
                                    Precision precision);

  // Masked-LM only: the k most likely tokens and their softmax probabilities at flat positions
  // (b * T + t) of ids. The vocabulary projection runs on those rows only, not on all B * T.
  struct TopK {
    torch::Tensor probs;  // (N, k) float32
    torch::Tensor ids;    // (N, k) int32
  };
  TopK predict_top_k(const torch::Tensor& ids, const torch::Tensor& attention_mask, const torch::Tensor& positions, int64_t k,
                     Precision precision);

  // Translate only: source ids (B, S) int64 on CPU, an optional (B, S) bool mask (undefined: ids != padId)
  // -> per sentence its options.nbest best hypotheses (greedy for beam 1, else beam search), all in C++.
  std::vector<std::vector<Hypothesis>> translate(const torch::Tensor& src, const torch::Tensor& src_mask, const GenerateOptions& options,
                                                 Precision precision);

  // The encoder (MLM, classify), or for 'translate' the Seq2Seq model seen as its encoder (seq2seq()).
  Transformer module;
  c10::Device device;
  Compression compression;
  std::shared_ptr<Int8Linears> int8;  // set: inference runs the attention and feed-forward Linear layers on int8 kernels
  // fp32 inference on CPU (without int8): the Linear weights reordered for oneDNN, made on first use (in_inference)
  std::shared_ptr<PrepackedLinears> prepacked;
  std::atomic<bool> busy{false};
};

// Marks the model busy for a scope; a second job fails with a clear message instead of racing.
class BusyGuard {
 public:
  BusyGuard(Model& model, const char* job);
  ~BusyGuard() { model_.busy.store(false); }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;

 private:
  Model& model_;
};

}  // namespace trainlarge
