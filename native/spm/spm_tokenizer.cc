// The SentencePiece implementation of trainlarge::Tokenizer, built as its own shared library
// (trainlarge_spm.so) and loaded by the addon with dlopen: see data/tokenizer.h for why.
#include "data/tokenizer.h"

#include <malloc.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace trainlarge {

namespace {

// Feeds in-memory lines to SentencePiece's trainer (no temporary file).
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<std::string>& lines) : lines_(lines) {}
  bool done() const override { return i_ >= lines_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return lines_[i_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  const std::vector<std::string>& lines_;
  size_t i_ = 0;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

void check(const sentencepiece::util::Status& status, const std::string& what) {
  if (!status.ok()) throw std::runtime_error(what + ": " + status.ToString());
}

// SentencePiece's trainer keeps its seed in a process-wide generator: one training at a time.
std::mutex train_mutex;

// --- The normalizers of a model file, checked before SentencePiece uses them ---------------------------------
// SentencePiece (0.1.97) trusts a model's precompiled_charsmap: a damaged one loads, then reads out of bounds
// on the first encode (found by native/fuzz/tokenizer_fuzz.cc). Every normalization rule has one canonical
// charsmap, so a model's is accepted only when it equals the one SentencePiece builds for the model's rule.
// The few protobuf fields needed are read here (sentencepiece_model.pb.h is not installed by Debian).

struct ProtoReader {
  std::string_view b;
  size_t i = 0;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= b.size()) throw std::runtime_error("tokenizer model: malformed protobuf");
      const auto c = static_cast<uint8_t>(b[i++]);
      v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    throw std::runtime_error("tokenizer model: malformed protobuf");
  }
  // Each (field number, wire type, bytes for wire type 2) at this level; other wire types are skipped.
  template <typename F>
  void fields(F&& f) {
    while (i < b.size()) {
      const uint64_t key = varint();
      const auto field = static_cast<uint32_t>(key >> 3);
      switch (key & 7) {
        case 0: varint(); break;
        case 1: skip(8); break;
        case 5: skip(4); break;
        case 2: {
          const uint64_t n = varint();
          if (n > b.size() - i) throw std::runtime_error("tokenizer model: malformed protobuf");
          f(field, b.substr(i, n));
          i += n;
          break;
        }
        default: throw std::runtime_error("tokenizer model: malformed protobuf");
      }
    }
  }
  void skip(size_t n) {
    if (n > b.size() - i) throw std::runtime_error("tokenizer model: malformed protobuf");
    i += n;
  }
};

struct NormalizerFields {
  bool present = false;
  std::string name;
  std::string charsmap;
};

// ModelProto field 3 (normalizer_spec) or 5 (denormalizer_spec): NormalizerSpec name (1), precompiled_charsmap (2).
// A message field that occurs twice is merged, as protobuf does: each field's last value wins, so a second
// occurrence naming 'identity' cannot hide the charsmap of the first.
NormalizerFields normalizer_of(std::string_view model, uint32_t which) {
  NormalizerFields out;
  ProtoReader top{model};
  top.fields([&](uint32_t field, std::string_view bytes) {
    if (field != which) return;
    out.present = true;
    ProtoReader spec{bytes};
    spec.fields([&](uint32_t f, std::string_view v) {
      if (f == 1) out.name = std::string(v);
      if (f == 2) out.charsmap = std::string(v);
    });
  });
  return out;
}

// The charsmap SentencePiece builds for a rule name: taken from a tiny model trained with that rule (cached).
const std::string& canonical_charsmap(const std::string& rule) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::string> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(rule);
  if (it != cache.end()) return it->second;
  const std::vector<std::string> lines = {"abc abd", "bcd cde", "a b c d e"};
  const std::unordered_map<std::string, std::string> args = {{"model_type", "char"},        {"vocab_size", "40"},
                                                             {"hard_vocab_limit", "false"}, {"normalization_rule_name", rule},
                                                             {"minloglevel", "2"},          {"num_threads", "1"}};
  std::string proto;
  {
    std::lock_guard<std::mutex> train(train_mutex);
    LineIterator lines_it(lines);
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines_it, &proto);
    if (!status.ok()) throw std::runtime_error("tokenizer model: unknown normalization rule '" + rule + "'");
  }
  return cache.emplace(rule, normalizer_of(proto, 3).charsmap).first->second;
}

// Whether a charsmap cannot make SentencePiece read outside it, checked on its structure (for models trained
// elsewhere, whose charsmap for the same rule can differ from this SentencePiece's: another version built it).
// The blob is [trie size: uint32 LE][darts-clone double array][NUL-terminated normalized strings]. Normalizing
// walks the trie from the root: at a node whose base is b, every byte c reads unit b ^ c before its label is
// compared, a matching unit leads to base b ^ c ^ offset, and a unit with a leaf reads the value unit there,
// whose value is the offset of a string in the blob, read up to its NUL. So every reachable base's block of 256
// units, every leaf's value unit and every value must lie inside the blob, and the blob must end in a NUL.
bool charsmap_is_sound(const std::string& blob) {
  if (blob.size() <= 4) return false;
  uint32_t trie_bytes = 0;
  for (int k = 3; k >= 0; --k) trie_bytes = (trie_bytes << 8) | static_cast<uint8_t>(blob[k]);
  if (trie_bytes >= blob.size() - 4) return false;
  const size_t n = trie_bytes / 4, strings = blob.size() - 4 - trie_bytes;
  if (n == 0 || blob.back() != '\0') return false;
  auto unit = [&](size_t i) {
    uint32_t u = 0;
    for (int k = 3; k >= 0; --k) u = (u << 8) | static_cast<uint8_t>(blob[4 + i * 4 + k]);
    return u;
  };
  auto offset = [](uint32_t u) { return static_cast<size_t>((u >> 10) << ((u & (1U << 9)) >> 6)); };
  std::vector<bool> seen(n, false);
  std::vector<size_t> todo = {offset(unit(0))};
  while (!todo.empty()) {
    const size_t base = todo.back();
    todo.pop_back();
    if ((base | 0xFF) >= n) return false;
    if (seen[base]) continue;
    seen[base] = true;
    for (size_t c = 0; c < 256; ++c) {
      const uint32_t u = unit(base ^ c);
      if ((u & ((1U << 31) | 0xFF)) != c) continue;
      const size_t next = base ^ c ^ offset(u);
      if (next >= n) return false;
      if ((u >> 8) & 1) {
        if ((unit(next) & ((1U << 31) - 1)) >= strings) return false;
      }
      todo.push_back(next);
    }
  }
  return true;
}

// `foreign`: a model trained elsewhere, whose charsmap is checked on its structure (charsmap_is_sound) rather
// than against the one this SentencePiece builds for its rule.
void check_normalizers(const std::string& model, bool foreign) {
  for (const auto& [which, what] : {std::pair<uint32_t, const char*>{3, "normalizer"}, {5, "denormalizer"}}) {
    const auto n = normalizer_of(model, which);
    if (!n.present || (n.charsmap.empty() && (n.name.empty() || n.name == "identity"))) continue;
    if (foreign) {
      if (!n.charsmap.empty() && !charsmap_is_sound(n.charsmap))
        throw std::runtime_error(std::string("tokenizer model: its ") + what + "'s charsmap is malformed (a damaged file?)");
      continue;
    }
    if (n.name.empty() || n.name == "user_defined") {
      throw std::runtime_error(std::string("tokenizer model: its ") + what +
                               " is a user-defined rule table, which trainlarge does not load");
    }
    if (n.charsmap != canonical_charsmap(n.name)) {
      throw std::runtime_error(std::string("tokenizer model: its ") + what + " does not match the rule '" + n.name +
                               "' it names (a damaged file?)");
    }
  }
}

}  // namespace

class SpmTokenizer : public Tokenizer {
 public:
  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::string model_proto() const override { return sp_.serialized_model_proto(); }
  std::string piece(int id) const override;
  int piece_to_id(const std::string& piece) const override { return sp_.PieceToId(piece); }
  void encode(const std::string& text, std::vector<int32_t>* out) const override;
  void encode_uncached(const std::string& text, std::vector<int32_t>* out) const override;
  void encode_batch(const std::vector<std::string>& docs, int threads, std::vector<int32_t>* ids,
                    std::vector<int64_t>* offsets) const override;
  std::string decode(const std::vector<int>& ids) const override;
  void encode_pieces(const std::string& text, std::vector<std::string>* out) const override;
  std::string decode_pieces(const std::vector<std::string>& pieces) const override;

 private:
  friend Tokenizer* spm_load(const std::string& bytes, bool trainlarge_ids);
  void check_layout() const;
  sentencepiece::SentencePieceProcessor sp_;
  // Word caches: a caller takes one whole for its call (a worker of encode_batch for its share of the
  // documents), so no lock is taken per word. One cache shared by every worker under per-word locks made two
  // threads slower than one (measured: 40 MB of text, 1.07 s on one thread, 1.19 s on two).
  struct WordCache {
    std::mutex busy;
    std::unordered_map<std::string, std::vector<int32_t>> words;
  };
  static constexpr int kCaches = 16;
  static constexpr size_t kCacheEntries = size_t{1} << 16;  // per cache: bounded memory on endless vocabularies
  WordCache& take_cache() const;
  void encode_with(const std::string& text, std::vector<int32_t>* out, WordCache& cache) const;
  mutable WordCache caches_[kCaches];
};

Tokenizer* spm_load(const std::string& bytes, bool trainlarge_ids);

Tokenizer* spm_train(const std::vector<std::string>& lines, const TokenizerTrainOptions& o) {
  if (o.model_type != "bpe" && o.model_type != "unigram")
    throw std::invalid_argument("model: must be 'bpe' or 'unigram', got '" + o.model_type + "'");
  if (o.vocab_size < 16 || o.vocab_size > 1000000) throw std::invalid_argument("vocabSize: must be in [16, 1000000]");
  if (!(o.character_coverage > 0 && o.character_coverage <= 1)) throw std::invalid_argument("characterCoverage: must be in (0, 1]");
  if (lines.empty()) throw std::invalid_argument("text: nothing to train a tokenizer on");
  std::unordered_map<std::string, std::string> args = {
      {"model_type", o.model_type},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      // SentencePiece takes 0 (all lines) or a sample of more than 100.
      {"input_sentence_size",
       std::to_string(static_cast<size_t>(o.max_sentences) >= lines.size() ? 0 : std::max<int64_t>(o.max_sentences, 101))},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", "65536"},
      {"num_threads", std::to_string(std::max(1, o.threads))},
      {"pad_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"unk_id", "3"},
      {"pad_piece", "<pad>"},
      {"bos_piece", "<s>"},
      {"eos_piece", "</s>"},
      {"unk_piece", "<unk>"},
      {"control_symbols", "<mask>"},
      {"minloglevel", "2"},
  };
  std::string proto;
  {
    std::lock_guard<std::mutex> lock(train_mutex);
    sentencepiece::SetRandomGeneratorSeed(o.seed);
    LineIterator it(lines);
    check(sentencepiece::SentencePieceTrainer::Train(args, &it, &proto), "tokenizer training");
  }
  // The trainer's working memory (~4 bytes a character of its input) is freed now; hand it back to the
  // system, or a corpus prepare carries it as resident memory through the whole encoding pass.
  malloc_trim(0);
  return spm_load(proto, true);  // outside the lock: loading may train a tiny model of its own (canonical_charsmap)
}

Tokenizer* spm_load(const std::string& bytes, bool trainlarge_ids) {
  check_normalizers(bytes, !trainlarge_ids);
  std::unique_ptr<SpmTokenizer> t(new SpmTokenizer());
  check(t->sp_.LoadFromSerializedProto(bytes), "tokenizer model");
  if (trainlarge_ids) t->check_layout();
  return t.release();
}

void SpmTokenizer::check_layout() const {
  const std::pair<int, const char*> expected[] = {{kPad, "<pad>"}, {kCls, "<s>"}, {kEos, "</s>"}, {kUnk, "<unk>"}, {kMask, "<mask>"}};
  for (const auto& [id, name] : expected) {
    if (id >= sp_.GetPieceSize() || sp_.IdToPiece(id) != name) {
      throw std::runtime_error(std::string("tokenizer model: id ") + std::to_string(id) + " must be " + name +
                               " (train tokenizers with trainlarge so the special ids are fixed)");
    }
  }
}

std::string SpmTokenizer::piece(int id) const {
  if (id < 0 || id >= sp_.GetPieceSize()) throw std::out_of_range("id " + std::to_string(id) + " is outside the vocabulary");
  return sp_.IdToPiece(id);
}

void SpmTokenizer::encode_uncached(const std::string& text, std::vector<int32_t>* out) const {
  std::vector<int> ids;
  check(sp_.Encode(text, &ids), "encode");
  out->assign(ids.begin(), ids.end());
}

SpmTokenizer::WordCache& SpmTokenizer::take_cache() const {
  for (auto& c : caches_)
    if (c.busy.try_lock()) return c;
  // More callers than caches: wait for one, chosen by thread.
  auto& c = caches_[std::hash<std::thread::id>{}(std::this_thread::get_id()) % kCaches];
  c.busy.lock();
  return c;
}

void SpmTokenizer::encode(const std::string& text, std::vector<int32_t>* out) const {
  auto& cache = take_cache();
  std::lock_guard<std::mutex> hold(cache.busy, std::adopt_lock);
  encode_with(text, out, cache);
}

void SpmTokenizer::encode_with(const std::string& text, std::vector<int32_t>* out, WordCache& cache) const {
  out->clear();
  std::vector<int> ids;
  std::string word;
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    while (i < n && is_space(text[i])) ++i;
    size_t j = i;
    while (j < n && !is_space(text[j])) ++j;
    if (j == i) break;
    word.assign(text, i, j - i);
    auto it = cache.words.find(word);
    if (it != cache.words.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      i = j;
      continue;
    }
    check(sp_.Encode(word, &ids), "encode");
    out->insert(out->end(), ids.begin(), ids.end());
    if (cache.words.size() >= kCacheEntries) cache.words.clear();
    cache.words.emplace(word, std::vector<int32_t>(ids.begin(), ids.end()));
    i = j;
  }
}

void SpmTokenizer::encode_batch(const std::vector<std::string>& docs, int threads, std::vector<int32_t>* ids,
                                std::vector<int64_t>* offsets) const {
  std::vector<std::vector<int32_t>> per_doc(docs.size());
  const size_t workers = std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(std::max(1, threads)), docs.size()));
  std::vector<std::exception_ptr> errors(workers);
  auto share = [&](size_t w) {
    try {
      auto& cache = take_cache();
      std::lock_guard<std::mutex> hold(cache.busy, std::adopt_lock);
      for (size_t d = w; d < docs.size(); d += workers) encode_with(docs[d], &per_doc[d], cache);
    } catch (...) {
      errors[w] = std::current_exception();
    }
  };
  // The calling thread takes the first share: one thread fewer to start, none at all for a single worker (a
  // service's request, whose thread start cost more than its encoding).
  std::vector<std::thread> pool;
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(share, w);
  share(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  offsets->assign(docs.size() + 1, 0);
  for (size_t d = 0; d < docs.size(); ++d) (*offsets)[d + 1] = (*offsets)[d] + static_cast<int64_t>(per_doc[d].size());
  ids->resize(static_cast<size_t>(offsets->back()));
  for (size_t d = 0; d < docs.size(); ++d) std::copy(per_doc[d].begin(), per_doc[d].end(), ids->begin() + (*offsets)[d]);
}

std::string SpmTokenizer::decode(const std::vector<int>& ids) const {
  for (int id : ids)
    if (id < 0 || id >= sp_.GetPieceSize())
      throw std::out_of_range("ids: " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(sp_.GetPieceSize()) + ")");
  std::string text;
  check(sp_.Decode(ids, &text), "decode");
  return text;
}

void SpmTokenizer::encode_pieces(const std::string& text, std::vector<std::string>* out) const {
  out->clear();
  check(sp_.Encode(text, out), "encode");
}

std::string SpmTokenizer::decode_pieces(const std::vector<std::string>& pieces) const {
  std::string text;
  check(sp_.Decode(pieces, &text), "decode");
  return text;
}

}  // namespace trainlarge

extern "C" __attribute__((visibility("default"))) trainlarge::Tokenizer* trainlarge_spm_train(
    const std::vector<std::string>& lines, const trainlarge::TokenizerTrainOptions& options) {
  return trainlarge::spm_train(lines, options);
}

extern "C" __attribute__((visibility("default"))) trainlarge::Tokenizer* trainlarge_spm_load(const std::string& bytes) {
  return trainlarge::spm_load(bytes, true);
}

extern "C" __attribute__((visibility("default"))) trainlarge::Tokenizer* trainlarge_spm_load_foreign(const std::string& bytes) {
  return trainlarge::spm_load(bytes, false);
}
