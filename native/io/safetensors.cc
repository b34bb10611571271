#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "io/atomic_file.h"
#include "io/json_fields.h"

namespace trainlarge {

namespace {

const std::vector<std::pair<std::string, at::ScalarType>>& dtype_names() {
  static const std::vector<std::pair<std::string, at::ScalarType>> names = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
      {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool},
  };
  return names;
}

std::string dtype_name(at::ScalarType t) {
  for (const auto& [name, type] : dtype_names())
    if (type == t) return name;
  throw std::invalid_argument(std::string("safetensors: no dtype name for ") + c10::toString(t));
}

at::ScalarType dtype_of(const std::string& name, const std::string& path) {
  for (const auto& [n, type] : dtype_names())
    if (n == name) return type;
  throw std::runtime_error(path + ": unsupported safetensors dtype '" + name + "'");
}

}  // namespace

std::string safetensors_header(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const size_t bytes = t.numel() * t.element_size();
    header[name] = {{"dtype", dtype_name(t.scalar_type())}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the spec pads the header with spaces to 8-byte alignment
  return text;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  NamedTensors data;
  data.reserve(tensors.size());
  for (const auto& [name, t] : tensors) data.emplace_back(name, t.detach().to(torch::kCPU).contiguous());
  const std::string text = safetensors_header(data, metadata);
  const uint64_t n = text.size();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  write_atomically(path, [&](int fd) {
    write_all(fd, len, 8, path);
    write_all(fd, text.data(), text.size(), path);
    for (const auto& [name, c] : data) write_all(fd, c.data_ptr(), c.numel() * c.element_size(), path);
  });
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  uint8_t len[8];
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(len), 8)) throw std::runtime_error(path + ": not a safetensors file (too short)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  if (n > file_size - 8 || n > (100u << 20)) throw std::runtime_error(path + ": not a safetensors file (bad header length)");
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not a safetensors file (header is not JSON: " + e.what() + ")");
  }
  const uint64_t base = 8 + n, data_size = file_size - base;
  SafetensorsFile out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : info.items()) out.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    try {
      const auto dtype = dtype_of(info.at("dtype").get<std::string>(), path);
      const std::string what = path + ": tensor '" + name + "'";
      const auto shape = json_ints(info.at("shape"), what + " shape", 0, std::numeric_limits<int64_t>::max());
      const auto offsets = json_ints(info.at("data_offsets"), what + " data_offsets", 0, std::numeric_limits<int64_t>::max());
      int64_t bytes = 0;
      if (__builtin_mul_overflow(checked_numel(shape, what), static_cast<int64_t>(c10::elementSize(dtype)), &bytes)) {
        throw std::runtime_error(what + ": the shape is too large");
      }
      // Checked against the file before anything is allocated.
      if (offsets.size() != 2 || offsets[1] < offsets[0] || offsets[1] - offsets[0] != bytes ||
          static_cast<uint64_t>(offsets[1]) > data_size) {
        throw std::runtime_error(what + " has data_offsets that do not match its shape or the file");
      }
      auto t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
      in.seekg(static_cast<std::streamoff>(base + offsets[0]));
      if (!in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(bytes))) {
        throw std::runtime_error(path + ": truncated data for tensor '" + name + "'");
      }
      out.tensors.emplace(name, std::move(t));
    } catch (const nlohmann::json::exception&) {
      throw std::runtime_error(path + ": malformed header entry for tensor '" + name + "'");
    }
  }
  return out;
}

}  // namespace trainlarge
