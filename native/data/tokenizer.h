// Subword tokenizer interface. The implementation is Google's SentencePiece (Debian's libsentencepiece;
// BPE or unigram) in a separate library, native/spm/, that the addon loads with dlopen(RTLD_LOCAL):
// libsentencepiece carries its own copy of protobuf-lite and exports its symbols, and linked beside
// libtorch (whose libprotobuf.so.32 then resolves to those copies) the process crashed while loading.
// In its own symbol scope each library keeps its protobuf.
//
// Special ids (fixed, like the byte tokenizer's): pad 0, cls/bos <s> 1, eos </s> 2, unk 3, mask 4.
// <mask> is a control symbol: text never encodes to it, only the masking does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace trainlarge {

// lib/data/tokenizer.ts's TokenizerOptions (its schema states the rules and defaults); `model` is model_type.
struct TokenizerTrainOptions {
  int64_t vocab_size = 0;
  std::string model_type;  // bpe | unigram
  double character_coverage = 0;
  bool byte_fallback = true;  // characters outside the vocabulary become <0xNN> byte pieces, never unk
  int64_t max_sentences = 0;  // lines sampled for training (SentencePiece's input_sentence_size)
  int threads = 1;
  uint32_t seed = 0;  // SentencePiece samples and shuffles lines: fixed for reproducible models
};

class Tokenizer {
 public:
  static constexpr int kPad = 0, kCls = 1, kEos = 2, kUnk = 3, kMask = 4;

  // Trains on `lines` (one sentence or paragraph each). Throws std::invalid_argument on bad options and
  // std::runtime_error with SentencePiece's message on failure (e.g. vocabulary larger than the text allows).
  static std::shared_ptr<Tokenizer> train(const std::vector<std::string>& lines, const TokenizerTrainOptions& options);
  // From a serialized SentencePiece model (the bytes of a .model file) with trainlarge's special ids.
  static std::shared_ptr<Tokenizer> from_model_proto(const std::string& bytes);
  // Any SentencePiece model, its ids its own (opus-mt's source.spm and target.spm: a vocabulary file maps
  // their pieces to the model's ids, so callers use encode_pieces and decode_pieces, not the ids).
  static std::shared_ptr<Tokenizer> from_foreign_model_proto(const std::string& bytes);

  virtual ~Tokenizer() = default;
  virtual int64_t vocab_size() const = 0;
  virtual std::string model_proto() const = 0;
  virtual std::string piece(int id) const = 0;
  virtual int piece_to_id(const std::string& piece) const = 0;
  // Ids of `text`, identical to SentencePiece's own encoding (tested): whitespace-separated words are
  // encoded independently (SentencePiece never merges across "▁"), each once, then served from a cache.
  virtual void encode(const std::string& text, std::vector<int32_t>* out) const = 0;
  virtual void encode_uncached(const std::string& text, std::vector<int32_t>* out) const = 0;
  // Encodes many documents on `threads` threads; returns ids concatenated and offsets (docs + 1).
  virtual void encode_batch(const std::vector<std::string>& docs, int threads, std::vector<int32_t>* ids,
                            std::vector<int64_t>* offsets) const = 0;
  virtual std::string decode(const std::vector<int>& ids) const = 0;
  // SentencePiece's pieces of the whole `text` (no word cache): a character outside the model is its own
  // piece (its id would be unk), as sentencepiece's encode(text, out_type=str) gives it.
  virtual void encode_pieces(const std::string& text, std::vector<std::string>* out) const = 0;
  // SentencePiece's detokenization of `pieces` (a piece outside the model is kept as written).
  virtual std::string decode_pieces(const std::vector<std::string>& pieces) const = 0;
};

// The plugin's entry points (extern "C" so dlsym finds them by name; C++ types cross because both sides
// are built together with the same compiler and libstdc++).
using TokenizerTrainFn = Tokenizer* (*)(const std::vector<std::string>& lines, const TokenizerTrainOptions& options);
using TokenizerLoadFn = Tokenizer* (*)(const std::string& bytes);  // trainlarge_spm_load and trainlarge_spm_load_foreign

}  // namespace trainlarge
