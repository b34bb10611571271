#include "bind/tokenizer_wrap.h"

#include <cstring>

#include "bind/addon.h"
#include "bind/convert.h"
#include "bind/job.h"
#include "bind/options.h"

namespace trainlarge::bind {

namespace {

std::vector<std::string> strings_arg(const Napi::CallbackInfo& info, size_t i, const char* field) {
  if (!info[i].IsArray()) throw std::invalid_argument(std::string(field) + ": expected an array of strings");
  auto array = info[i].As<Napi::Array>();
  std::vector<std::string> out(array.Length());
  for (uint32_t k = 0; k < array.Length(); ++k) {
    auto v = array.Get(k);
    if (!v.IsString()) throw std::invalid_argument(std::string(field) + "[" + std::to_string(k) + "]: expected a string");
    out[k] = v.As<Napi::String>().Utf8Value();
  }
  return out;
}

Napi::Int32Array to_js(Napi::Env env, const std::vector<int32_t>& ids) {
  auto out = Napi::Int32Array::New(env, ids.size());
  if (!ids.empty()) std::memcpy(out.Data(), ids.data(), ids.size() * sizeof(int32_t));
  return out;
}

Napi::Value wrap(Napi::Env env, std::shared_ptr<Tokenizer> tok) {
  auto holder = Napi::External<std::shared_ptr<Tokenizer>>::New(env, new std::shared_ptr<Tokenizer>(std::move(tok)),
                                                                [](Napi::Env, std::shared_ptr<Tokenizer>* p) { delete p; });
  return addon_data(env).tokenizer_class.New({holder});
}

std::string model_bytes_arg(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw std::invalid_argument("modelBytes: expected a Uint8Array (the bytes of a .model file)");
  }
  auto bytes = info[0].As<Napi::Uint8Array>();
  return std::string(reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength());
}

}  // namespace

Napi::Function TokenizerWrap::Define(Napi::Env env) {
  return DefineClass(env, "Tokenizer",
                     {
                         InstanceAccessor<&TokenizerWrap::VocabSize>("vocabSize"),
                         InstanceMethod<&TokenizerWrap::ModelBytes>("modelBytes"),
                         InstanceMethod<&TokenizerWrap::Encode>("encode"),
                         InstanceMethod<&TokenizerWrap::EncodeUncached>("encodeUncached"),
                         InstanceMethod<&TokenizerWrap::EncodeBatch>("encodeBatch"),
                         InstanceMethod<&TokenizerWrap::Decode>("decode"),
                         InstanceMethod<&TokenizerWrap::Piece>("piece"),
                         InstanceMethod<&TokenizerWrap::Pieces>("pieces"),
                         InstanceMethod<&TokenizerWrap::PieceToId>("pieceToId"),
                         InstanceMethod<&TokenizerWrap::EncodePieces>("encodePieces"),
                         InstanceMethod<&TokenizerWrap::DecodePieces>("decodePieces"),
                     });
}

TokenizerWrap::TokenizerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TokenizerWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "Tokenizer: use trainTokenizer() or loadTokenizer(), not new");
  }
  tok_ = *info[0].As<Napi::External<std::shared_ptr<Tokenizer>>>().Data();
}

Napi::Value TokenizerWrap::Train(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto lines = std::make_shared<std::vector<std::string>>(strings_arg(info, 0, "lines"));
    const auto o = read_tokenizer_options(info[1]);
    return run_io(info.Env(), "trainlarge.trainTokenizer", [lines, o]() -> Finish {
      auto tok = Tokenizer::train(*lines, o);
      return [tok](Napi::Env env) { return wrap(env, tok); };
    });
  });
}

Napi::Value TokenizerWrap::Load(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return wrap(info.Env(), Tokenizer::from_model_proto(model_bytes_arg(info))); });
}

Napi::Value TokenizerWrap::LoadForeign(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return wrap(info.Env(), Tokenizer::from_foreign_model_proto(model_bytes_arg(info))); });
}

Napi::Value TokenizerWrap::VocabSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(tok_->vocab_size()));
}

Napi::Value TokenizerWrap::ModelBytes(const Napi::CallbackInfo& info) {
  const auto proto = tok_->model_proto();
  return Napi::Buffer<uint8_t>::Copy(info.Env(), reinterpret_cast<const uint8_t*>(proto.data()), proto.size());
}

Napi::Value TokenizerWrap::Encode(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::vector<int32_t> ids;
    tok_->encode(string_arg(info, 0, "text"), &ids);
    return to_js(info.Env(), ids);
  });
}

Napi::Value TokenizerWrap::EncodeUncached(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::vector<int32_t> ids;
    tok_->encode_uncached(string_arg(info, 0, "text"), &ids);
    return to_js(info.Env(), ids);
  });
}

Napi::Value TokenizerWrap::EncodeBatch(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto texts = std::make_shared<std::vector<std::string>>(strings_arg(info, 0, "texts"));
    const int threads = static_cast<int>(int_arg(info, 1, "threads"));
    auto tok = tok_;
    return run_io(info.Env(), "trainlarge.encodeBatch",
                  [texts, threads, tok]() -> Finish {
                    auto ids = std::make_shared<std::vector<int32_t>>();
                    auto offsets = std::make_shared<std::vector<int64_t>>();
                    tok->encode_batch(*texts, threads, ids.get(), offsets.get());
                    return [ids, offsets](Napi::Env env) -> Napi::Value {
                      auto o = Napi::Object::New(env);
                      o.Set("ids", to_js(env, *ids));
                      auto off = Napi::Float64Array::New(env, offsets->size());
                      for (size_t i = 0; i < offsets->size(); ++i) off[i] = static_cast<double>((*offsets)[i]);
                      o.Set("offsets", off);
                      return o;
                    };
                  },
                  {info.This().As<Napi::Object>()});
  });
}

Napi::Value TokenizerWrap::Decode(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto t = ids_from_js(info[0], "ids");
    std::vector<int> ids(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    return Napi::String::New(info.Env(), tok_->decode(ids));
  });
}

Napi::Value TokenizerWrap::Piece(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), tok_->piece(static_cast<int>(int_arg(info, 0, "id")))); });
}

Napi::Value TokenizerWrap::Pieces(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto ids = ids_from_js(info[0], "ids");
    const auto* p = ids.data_ptr<int64_t>();
    auto out = Napi::Array::New(info.Env(), static_cast<size_t>(ids.numel()));
    for (int64_t i = 0; i < ids.numel(); ++i) out.Set(static_cast<uint32_t>(i), tok_->piece(static_cast<int>(p[i])));
    return out;
  });
}

Napi::Value TokenizerWrap::PieceToId(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), tok_->piece_to_id(string_arg(info, 0, "piece"))); });
}

Napi::Value TokenizerWrap::EncodePieces(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::vector<std::string> pieces;
    tok_->encode_pieces(string_arg(info, 0, "text"), &pieces);
    auto out = Napi::Array::New(info.Env(), pieces.size());
    for (size_t i = 0; i < pieces.size(); ++i) out.Set(static_cast<uint32_t>(i), pieces[i]);
    return out;
  });
}

Napi::Value TokenizerWrap::DecodePieces(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), tok_->decode_pieces(strings_arg(info, 0, "pieces"))); });
}

}  // namespace trainlarge::bind
