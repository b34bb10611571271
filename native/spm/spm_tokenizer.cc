// The SentencePiece implementation of trainlarge::Tokenizer, built as its own shared library
// (trainlarge_spm.so) and loaded by the addon with dlopen: see data/tokenizer.h for why.
#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <stdexcept>
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

 private:
  friend Tokenizer* spm_load(const std::string& bytes);
  void check_layout() const;
  sentencepiece::SentencePieceProcessor sp_;
  static constexpr int kCacheShards = 16;
  static constexpr size_t kCacheEntriesPerShard = size_t{1} << 16;
  struct CacheShard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> words;
  };
  mutable CacheShard cache_[kCacheShards];
};

Tokenizer* spm_load(const std::string& bytes);

Tokenizer* spm_train(const std::vector<std::string>& lines, const TokenizerTrainOptions& o) {
  if (o.model_type != "bpe" && o.model_type != "unigram") throw std::invalid_argument("model: must be 'bpe' or 'unigram', got '" + o.model_type + "'");
  if (o.vocab_size < 16 || o.vocab_size > 1000000) throw std::invalid_argument("vocabSize: must be in [16, 1000000]");
  if (!(o.character_coverage > 0 && o.character_coverage <= 1)) throw std::invalid_argument("characterCoverage: must be in (0, 1]");
  if (lines.empty()) throw std::invalid_argument("text: nothing to train a tokenizer on");
  std::unordered_map<std::string, std::string> args = {
      {"model_type", o.model_type},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      // SentencePiece takes 0 (all lines) or a sample of more than 100.
      {"input_sentence_size", std::to_string(static_cast<size_t>(o.max_sentences) >= lines.size() ? 0 : std::max<int64_t>(o.max_sentences, 101))},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", "65536"},
      {"num_threads", std::to_string(std::max(1, o.threads))},
      {"pad_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"unk_id", "3"},
      {"pad_piece", "<pad>"}, {"bos_piece", "<s>"}, {"eos_piece", "</s>"}, {"unk_piece", "<unk>"},
      {"control_symbols", "<mask>"},
      {"minloglevel", "2"},
  };
  // SentencePiece's trainer keeps its seed in a process-wide generator: serialize training runs.
  static std::mutex train_mutex;
  std::lock_guard<std::mutex> lock(train_mutex);
  sentencepiece::SetRandomGeneratorSeed(o.seed);
  LineIterator it(lines);
  std::string proto;
  check(sentencepiece::SentencePieceTrainer::Train(args, &it, &proto), "tokenizer training");
  return spm_load(proto);
}

Tokenizer* spm_load(const std::string& bytes) {
  std::unique_ptr<SpmTokenizer> t(new SpmTokenizer());
  check(t->sp_.LoadFromSerializedProto(bytes), "tokenizer model");
  t->check_layout();
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

void SpmTokenizer::encode(const std::string& text, std::vector<int32_t>* out) const {
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
    auto& shard = cache_[std::hash<std::string>{}(word) % kCacheShards];
    {
      std::lock_guard<std::mutex> lock(shard.mutex);
      auto it = shard.words.find(word);
      if (it != shard.words.end()) {
        out->insert(out->end(), it->second.begin(), it->second.end());
        i = j;
        continue;
      }
    }
    check(sp_.Encode(word, &ids), "encode");
    out->insert(out->end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(shard.mutex);
    if (shard.words.size() >= kCacheEntriesPerShard) shard.words.clear();  // bounded memory on endless vocabularies
    shard.words.emplace(word, std::vector<int32_t>(ids.begin(), ids.end()));
    i = j;
  }
}

void SpmTokenizer::encode_batch(const std::vector<std::string>& docs, int threads, std::vector<int32_t>* ids,
                             std::vector<int64_t>* offsets) const {
  std::vector<std::vector<int32_t>> per_doc(docs.size());
  const size_t workers = std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(std::max(1, threads)), docs.size()));
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(workers);
  for (size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      try {
        for (size_t d = w; d < docs.size(); d += workers) encode(docs[d], &per_doc[d]);
      } catch (...) {
        errors[w] = std::current_exception();
      }
    });
  }
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
    if (id < 0 || id >= sp_.GetPieceSize()) throw std::out_of_range("ids: " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(sp_.GetPieceSize()) + ")");
  std::string text;
  check(sp_.Decode(ids, &text), "decode");
  return text;
}

}  // namespace trainlarge

extern "C" __attribute__((visibility("default"))) trainlarge::Tokenizer* trainlarge_spm_train(
    const std::vector<std::string>& lines, const trainlarge::TokenizerTrainOptions& options) {
  return trainlarge::spm_train(lines, options);
}

extern "C" __attribute__((visibility("default"))) trainlarge::Tokenizer* trainlarge_spm_load(const std::string& bytes) {
  return trainlarge::spm_load(bytes);
}
