// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length, a
// JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the raw bytes.
// PyTorch, HuggingFace and numpy read it; torch::save archives they cannot.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace trainlarge {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The JSON header as written (padded with spaces to 8-byte alignment); the file is 8 + its size + data.
std::string safetensors_header(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});

// Writes atomically: a temporary file beside `path`, fsynced, then renamed over it.
void save_safetensors(const std::string& path, const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::map<std::string, torch::Tensor> tensors;  // CPU tensors
  std::map<std::string, std::string> metadata;
};

// Throws std::runtime_error naming the file and what is wrong with it.
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace trainlarge
