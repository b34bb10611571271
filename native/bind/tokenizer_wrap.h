// JS class Tokenizer: a SentencePiece model with trainlarge's special ids (native/data/tokenizer.h).
#pragma once

#include <napi.h>

#include <memory>

#include "data/tokenizer.h"

namespace trainlarge::bind {

class TokenizerWrap : public Napi::ObjectWrap<TokenizerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);

  // [async] trainTokenizer(lines: string[], optionsJson) -> Promise<Tokenizer>
  //   options: { vocabSize, model: 'bpe'|'unigram', characterCoverage, byteFallback, maxSentences, threads, seed }
  static Napi::Value Train(const Napi::CallbackInfo& info);
  // [sync] loadTokenizer(modelBytes: Uint8Array) -> Tokenizer; throws when the bytes are not a model
  static Napi::Value Load(const Napi::CallbackInfo& info);
  // [sync] loadForeignTokenizer(modelBytes: Uint8Array) -> Tokenizer: any SentencePiece model, its own ids (for
  //   encodePieces/decodePieces under a vocabulary of another numbering, e.g. opus-mt's); throws when not a model
  static Napi::Value LoadForeign(const Napi::CallbackInfo& info);

  explicit TokenizerWrap(const Napi::CallbackInfo& info);

 private:
  // [sync] vocabSize
  Napi::Value VocabSize(const Napi::CallbackInfo& info);
  // [sync] modelBytes() -> Uint8Array (the .model file)
  Napi::Value ModelBytes(const Napi::CallbackInfo& info);
  // [sync] encode(text) -> Int32Array; encodeUncached(text): SentencePiece without the word cache
  Napi::Value Encode(const Napi::CallbackInfo& info);
  Napi::Value EncodeUncached(const Napi::CallbackInfo& info);
  // [async] encodeBatch(texts: string[], threads) -> Promise<{ ids: Int32Array, offsets: Float64Array }>
  Napi::Value EncodeBatch(const Napi::CallbackInfo& info);
  // [sync] decode(ids: Int32Array) -> string; piece(id) -> string; pieceToId(piece) -> number (unk when absent)
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value Piece(const Napi::CallbackInfo& info);
  // [sync] pieces(ids: Int32Array) -> string[]: piece() of each id in one call
  Napi::Value Pieces(const Napi::CallbackInfo& info);
  Napi::Value PieceToId(const Napi::CallbackInfo& info);
  // [sync] encodePieces(text) -> string[]: SentencePiece's pieces of the whole text (an unknown character is its own piece)
  Napi::Value EncodePieces(const Napi::CallbackInfo& info);
  // [sync] decodePieces(pieces: string[]) -> string: SentencePiece's detokenization
  Napi::Value DecodePieces(const Napi::CallbackInfo& info);

  std::shared_ptr<Tokenizer> tok_;
};

}  // namespace trainlarge::bind
