// PyTorch's own checkpoint files (torch.save: transformers' pytorch_model.bin), read without Python.
#pragma once

#include <string>

#include "io/safetensors.h"

namespace trainlarge {

// The tensors of a state dict saved with torch.save in its zip format (PyTorch 1.6 and later), by name, in the
// file's order, floating-point ones as float32 on the CPU. libtorch's PyTorchStreamReader reads the archive
// record by record (never the whole file at once); data.pkl is run by a small interpreter of the pickle
// opcodes a state dict uses (a dict or an OrderedDict of tensors built by torch._utils._rebuild_tensor_v2),
// because libtorch 2.13's own unpickler turns an OrderedDict into None. Throws std::runtime_error naming the
// file and the problem: torch.save's legacy format (before 1.6), a pickle that calls anything else, a storage
// missing or of the wrong size, a view outside its storage.
NamedTensors read_torch_checkpoint(const std::string& path);

}  // namespace trainlarge
