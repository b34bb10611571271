// libFuzzer target: the safetensors reader (io/safetensors.cc) and, for files that carry the packed
// metadata, the packed-file reader (compress/packed.cc) on what it read. Any input must end in a value or a
// C++ exception (a clear error); a crash, a sanitizer report or a hang is a bug. Built and run by
// scripts/fuzz (clang, -fsanitize=fuzzer,address,undefined); seeds in native/fuzz/corpus/safetensors.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "compress/compress.h"
#include "engine/packed.h"
#include "io/safetensors.h"

namespace {
// One in-memory file, rewritten for each input: load_safetensors reads a path.
int memfd() {
  static const int fd = ::memfd_create("safetensors-fuzz", 0);
  return fd;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd();
  if (fd < 0 || ::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) std::abort();
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    const auto file = trainlarge::load_safetensors(path);
    if (trainlarge::is_packed(file.metadata)) {
      trainlarge::Compression state;
      (void)trainlarge::unpack(file, &state);
    }
  } catch (const std::exception&) {
    // a clear error is the right answer to a bad file
  }
  return 0;
}
