// libFuzzer target: the tokenizer loader (a SentencePiece model's bytes, native/spm) and, when it loads, a
// round trip through it. Any input must end in a tokenizer or a C++ exception; a crash or a sanitizer
// report is a bug. Built and run by scripts/fuzz; seeds in native/fuzz/corpus/tokenizer.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/tokenizer.h"

extern "C" trainlarge::Tokenizer* trainlarge_spm_load(const std::string& bytes);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    std::unique_ptr<trainlarge::Tokenizer> tok(trainlarge_spm_load(std::string(reinterpret_cast<const char*>(data), size)));
    std::vector<int32_t> ids;
    tok->encode_uncached("The Congress shall have power, 1790 — naïve café.", &ids);
    (void)tok->decode(std::vector<int>(ids.begin(), ids.end()));
  } catch (const std::exception&) {
    // a clear error is the right answer to a bad file
  }
  return 0;
}
