// libFuzzer target: the pytorch_model.bin reader (io/torch_checkpoint.cc), where a downloaded checkpoint's
// pickle is run by trainlarge's own small interpreter. The input is data.pkl; it is put in a torch.save archive
// beside two storages, data/0 and data/1 of 64 bytes each (the seeds in native/fuzz/corpus/torch_checkpoint
// are torch.save's pickles of state dicts over those storages), so the fuzzer spends its time in the pickle
// machine, not in the zip reader. Any input must end in a value or a C++ exception (a clear error); a crash, a
// sanitizer report or a hang is a bug. Built and run by scripts/fuzz.
#include <caffe2/serialize/inline_container.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "io/torch_checkpoint.h"

namespace {
int memfd() {
  static const int fd = ::memfd_create("torch-checkpoint-fuzz", 0);
  return fd;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string archive;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* buf, size_t n) {
      archive.append(static_cast<const char*>(buf), n);
      return n;
    });
    writer.writeRecord("data.pkl", data, size);
    const std::string storage(64, '\x01');
    writer.writeRecord("data/0", storage.data(), storage.size());
    writer.writeRecord("data/1", storage.data(), storage.size());
    writer.writeEndOfFile();
  }
  const int fd = memfd();
  if (fd < 0 || ::ftruncate(fd, 0) != 0 || ::pwrite(fd, archive.data(), archive.size(), 0) != static_cast<ssize_t>(archive.size()))
    std::abort();
  try {
    (void)trainlarge::read_torch_checkpoint("/proc/self/fd/" + std::to_string(fd));
  } catch (const std::exception&) {
    // a clear error is the right answer to a bad file
  }
  return 0;
}
