#include "models/config.h"

#include <stdexcept>
#include <string>

namespace trainlarge {

namespace {

void positive(int64_t v, const char* name) {
  if (v <= 0) throw std::invalid_argument(std::string("model config: ") + name + " must be > 0, got " + std::to_string(v));
}

}  // namespace

void ModelConfig::validate() const {
  positive(vocab_size, "vocabSize");
  positive(max_len, "maxLen");
  positive(d_model, "dModel");
  if (task == Task::Translate) {
    positive(encoder_layers, "encoderLayers");
    positive(decoder_layers, "decoderLayers");
  } else {
    positive(layers, "layers");
  }
  positive(heads, "heads");
  positive(ffn, "ffn");
  if (head_dim < 0) throw std::invalid_argument("model config: headDim must be > 0, got " + std::to_string(head_dim));
  if (head_dim == 0 && d_model % heads != 0) {
    throw std::invalid_argument("model config: heads (" + std::to_string(heads) + ") must divide dModel (" + std::to_string(d_model) + ")");
  }
  if (pad_id < 0 || pad_id >= vocab_size) throw std::invalid_argument("model config: padId must be in [0, vocabSize)");
  if (task == Task::Classify && num_labels < 2) throw std::invalid_argument("model config: numLabels must be >= 2");
  if (task == Task::Translate) {
    if (bos_id < 0 || bos_id >= vocab_size) throw std::invalid_argument("model config: bosId must be in [0, vocabSize)");
    if (eos_id < 0 || eos_id >= vocab_size) throw std::invalid_argument("model config: eosId must be in [0, vocabSize)");
    if (eos_id == pad_id) throw std::invalid_argument("model config: eosId must differ from padId");
    if (max_len < 2) throw std::invalid_argument("model config: maxLen must be >= 2 for translate (BOS and one token)");
  }
}

}  // namespace trainlarge
