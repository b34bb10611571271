// PyTorch's own checkpoint files (torch.save: transformers' pytorch_model.bin), read by libtorch's unpickler.
#pragma once

#include <string>

#include "io/safetensors.h"

namespace trainlarge {

// The tensors of a state dict saved with torch.save in its zip format (PyTorch 1.6 and later), by name, in the
// file's order, floating-point ones as float32 on the CPU. libtorch's own reader does the work (a
// PyTorchStreamReader reads each record from the file as it is needed; readArchiveAndTensors unpickles
// data.pkl, which may be a dict or an OrderedDict). Throws std::runtime_error naming the file and the problem:
// torch.save's legacy format (before 1.6), or a pickle that holds no dict of tensors.
NamedTensors read_torch_checkpoint(const std::string& path);

}  // namespace trainlarge
