// libFuzzer target: the tokenizer loaders (a SentencePiece model's bytes, native/spm: trainlarge's, and a
// model trained elsewhere, whose charsmap is checked on its structure) and, when one loads, a round trip
// through it. Any input must end in a tokenizer or a C++ exception; a crash or a sanitizer
// report is a bug. Built and run by scripts/fuzz; seeds in native/fuzz/corpus/tokenizer.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/tokenizer.h"

extern "C" trainlarge::Tokenizer* trainlarge_spm_load(const std::string& bytes);
extern "C" trainlarge::Tokenizer* trainlarge_spm_load_foreign(const std::string& bytes);

namespace {
const char* const kText = "The Congress shall have power, 1790 — naïve café.";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    std::unique_ptr<trainlarge::Tokenizer> tok(trainlarge_spm_load(bytes));
    std::vector<int32_t> ids;
    tok->encode_uncached(kText, &ids);
    (void)tok->decode(std::vector<int>(ids.begin(), ids.end()));
  } catch (const std::exception&) {
    // a clear error is the right answer to a bad file
  }
  try {
    std::unique_ptr<trainlarge::Tokenizer> tok(trainlarge_spm_load_foreign(bytes));
    std::vector<std::string> pieces;
    tok->encode_pieces(kText, &pieces);
    (void)tok->decode_pieces(pieces);
  } catch (const std::exception&) {
  }
  return 0;
}
