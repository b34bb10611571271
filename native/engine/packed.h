// The packed file of a compressed model: a safetensors file whose compressed tensors are stored as parts,
//   NAME#codes (uint8, bit-packed k-bit codes of the kept entries), NAME#mask (uint8, 1 bit per entry,
//   pruned tensors only), NAME#values (float32 kept values of pruned, unquantized tensors),
//   NAME#scale (float32), NAME#zero_point (uint8, asymmetric only)
// and described in the metadata key "trainlarge.compression". Everything else is float32 as usual.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "compress/compress.h"
#include "io/safetensors.h"

namespace trainlarge {

class Model;

struct Packed {
  NamedTensors tensors;
  std::map<std::string, std::string> metadata;
  std::map<std::string, int64_t> bytes_per_tensor;  // data bytes of each model tensor (all its parts)
  int64_t header_bytes = 0;                         // 8-byte length + JSON header
  int64_t file_bytes = 0;                           // == the saved file's size
};
Packed pack(const Model& model, const std::map<std::string, std::string>& metadata);
bool is_packed(const std::map<std::string, std::string>& metadata);
// Dense weights and the compression state from a packed file's tensors.
std::map<std::string, torch::Tensor> unpack(const SafetensorsFile& file, Compression* state);

// The size of the file Model::save writes with this metadata: packed when the model is compressed,
// plain safetensors otherwise.
struct FileSize {
  int64_t file_bytes = 0, header_bytes = 0;
  std::map<std::string, int64_t> tensors;  // data bytes of each model tensor
};
FileSize file_size(const Model& model, const std::map<std::string, std::string>& metadata);
// The metadata a plain (uncompressed) model file carries, `format: pt` as HuggingFace's loaders expect.
std::map<std::string, std::string> plain_metadata(const std::map<std::string, std::string>& metadata);

}  // namespace trainlarge
