// The packed file of a compressed model (format in engine/packed.h): bit-packed codes and masks, and back.
#include <nlohmann/json.hpp>

#include <limits>

#include <set>
#include <stdexcept>

#include "compress/compress.h"
#include "engine/model.h"
#include "engine/packed.h"
#include "io/json_fields.h"

namespace trainlarge {

namespace {

constexpr const char* kCompressionKey = "trainlarge.compression";
constexpr const char* kPackedFormat = "trainlarge-packed";

int64_t bytes_of(const torch::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

torch::Tensor row_of_each(const torch::Tensor& flat_index, const std::vector<int64_t>& shape, Granularity granularity) {
  if (granularity != Granularity::Channel || shape.empty()) return torch::zeros_like(flat_index);
  int64_t row = 1;
  for (size_t i = 1; i < shape.size(); ++i) row *= shape[i];
  return torch::div(flat_index, row, "floor");
}

}  // namespace

bool is_packed(const std::map<std::string, std::string>& metadata) {
  auto it = metadata.find("format");
  return it != metadata.end() && it->second == kPackedFormat;
}

Packed pack(const Model& model, const std::map<std::string, std::string>& metadata) {
  torch::NoGradGuard no_grad;
  const auto& c = model.compression;
  Packed out;
  nlohmann::json info = nlohmann::json::object();
  for (const auto& [name, p] : model.named_parameters()) {
    const auto w = p.detach().to(torch::kCPU, torch::kFloat).contiguous();
    const auto mask_it = c.masks.find(name);
    const auto quant_it = c.quant.find(name);
    const bool pruned = mask_it != c.masks.end(), quantized = quant_it != c.quant.end();
    if (!pruned && !quantized) {
      out.tensors.emplace_back(name, w);
      out.bytes_per_tensor[name] = bytes_of(w);
      continue;
    }
    nlohmann::json e = {{"shape", w.sizes().vec()}};
    int64_t bytes = 0;
    const std::string& tensor = name;  // a structured binding cannot be captured before clang 16
    auto add = [&](const std::string& part, const torch::Tensor& t) {
      out.tensors.emplace_back(tensor + "#" + part, t);
      bytes += bytes_of(t);
    };
    auto flat = w.view(-1);
    torch::Tensor kept;  // flat indices of the stored entries
    if (pruned) {
      const auto mask = mask_it->second.to(torch::kCPU).reshape(-1);
      add("mask", pack_bits(mask.to(torch::kLong), 1));
      kept = mask.nonzero().squeeze(1);
      e["kept"] = kept.numel();
    }
    if (quantized) {
      const auto& q = quant_it->second;
      auto codes = quant_codes(w, q).view(-1);
      if (pruned) codes = codes.index_select(0, kept);
      add("codes", pack_bits(codes, q.bits));
      add("scale", q.scale.to(torch::kCPU, torch::kFloat).contiguous());
      if (!q.symmetric) add("zero_point", q.zero_point.to(torch::kCPU, torch::kByte).contiguous());
      e["bits"] = q.bits;
      e["symmetric"] = q.symmetric;
      e["granularity"] = q.granularity == Granularity::Channel ? "channel" : "tensor";
      e["encoding"] = pruned ? "mask+codes" : "codes";
    } else {
      add("values", flat.index_select(0, kept).contiguous());
      e["encoding"] = "mask+values";
    }
    info[name] = e;
    out.bytes_per_tensor[name] = bytes;
  }
  out.metadata = metadata;
  out.metadata["format"] = kPackedFormat;
  out.metadata[kCompressionKey] = info.dump();
  const auto header = safetensors_header(out.tensors, out.metadata);
  out.header_bytes = 8 + static_cast<int64_t>(header.size());
  out.file_bytes = out.header_bytes;
  for (const auto& [name, t] : out.tensors) out.file_bytes += bytes_of(t);
  return out;
}

std::map<std::string, torch::Tensor> unpack(const SafetensorsFile& file, Compression* state) {
  const auto it = file.metadata.find(kCompressionKey);
  if (it == file.metadata.end()) throw std::runtime_error("packed model: no '" + std::string(kCompressionKey) + "' metadata");
  const auto info = nlohmann::json::parse(it->second);
  std::map<std::string, torch::Tensor> dense;
  std::set<std::string> parts;
  auto part = [&](const std::string& name, const std::string& which) -> const torch::Tensor& {
    auto t = file.tensors.find(name + "#" + which);
    if (t == file.tensors.end()) throw std::runtime_error("packed model: '" + name + "' lacks its '" + which + "' part");
    parts.insert(t->first);
    return t->second;
  };
  if (!info.is_object()) throw std::runtime_error("packed model: '" + std::string(kCompressionKey) + "' is not an object");
  for (const auto& [name, e] : info.items()) {
    const std::string what = "packed model: '" + name + "'";
    const auto shape = json_ints(e.at("shape"), what + " shape", 0, std::numeric_limits<int64_t>::max());
    const int64_t numel = checked_numel(shape, what);
    const auto encoding = e.at("encoding").get<std::string>();
    if (encoding != "codes" && encoding != "mask+values" && encoding != "mask+codes") {
      throw std::runtime_error(what + ": unknown encoding '" + encoding + "'");
    }
    // Every element costs at least one bit of its parts (mask or codes): a shape larger than that is a lie,
    // refused before anything of its size is allocated.
    int64_t part_bytes = 0;
    for (auto t = file.tensors.lower_bound(name + "#"); t != file.tensors.end() && t->first.rfind(name + "#", 0) == 0; ++t) {
      part_bytes += t->second.numel() * static_cast<int64_t>(t->second.element_size());
    }
    if (numel / 8 > part_bytes) throw std::runtime_error(what + ": its shape needs more data than its parts hold");
    torch::Tensor kept, mask;
    if (encoding != "codes") {
      mask = unpack_bits(part(name, "mask"), numel, 1).to(torch::kBool);
      kept = mask.nonzero().squeeze(1);
      if (kept.numel() != json_int(e.at("kept"), what + " kept", 0, numel))
        throw std::runtime_error("packed model: '" + name + "' mask does not match its kept count");
    } else {
      kept = torch::arange(numel, torch::kLong);
    }
    auto flat = torch::zeros({numel}, torch::kFloat);
    if (encoding == "mask+values") {
      const auto& values = part(name, "values");
      if (values.numel() != kept.numel())
        throw std::runtime_error("packed model: '" + name + "' has " + std::to_string(values.numel()) + " values for " +
                                 std::to_string(kept.numel()) + " kept entries");
      flat.index_put_({kept}, values.to(torch::kFloat));
    } else {
      QuantSpec q;
      q.bits = static_cast<int>(json_int(e.at("bits"), what + " bits", 1, 8));
      q.symmetric = e.at("symmetric").get<bool>();
      q.granularity = e.at("granularity").get<std::string>() == "channel" ? Granularity::Channel : Granularity::Tensor;
      q.qmin = q.symmetric ? -(int64_t{1} << (q.bits - 1)) : 0;
      q.qmax = q.symmetric ? (int64_t{1} << (q.bits - 1)) - 1 : (int64_t{1} << q.bits) - 1;
      q.scale = part(name, "scale").to(torch::kFloat).contiguous();
      q.zero_point = q.symmetric ? torch::zeros({q.scale.numel()}, torch::kInt) : part(name, "zero_point").to(torch::kInt).contiguous();
      const auto codes = unpack_bits(part(name, "codes"), kept.numel(), q.bits);
      flat.index_put_({kept}, dequantize_codes(codes, row_of_each(kept, shape, q.granularity), q));
      if (state) state->quant[name] = q;
    }
    if (state && mask.defined()) state->masks[name] = mask.view(shape);
    dense[name] = flat.view(shape);
  }
  for (const auto& [name, t] : file.tensors) {
    if (name.find('#') == std::string::npos)
      dense[name] = t;
    else if (!parts.count(name))
      throw std::runtime_error("packed model: unexpected part '" + name + "'");
  }
  return dense;
}

std::map<std::string, std::string> plain_metadata(const std::map<std::string, std::string>& metadata) {
  auto meta = metadata;
  meta["format"] = "pt";
  return meta;
}

FileSize file_size(const Model& model, const std::map<std::string, std::string>& metadata) {
  FileSize out;
  const auto& c = model.compression;
  if (!c.masks.empty() || !c.quant.empty()) {
    const auto p = pack(model, metadata);
    out.file_bytes = p.file_bytes;
    out.header_bytes = p.header_bytes;
    out.tensors = p.bytes_per_tensor;
    return out;
  }
  const auto params = model.named_parameters();
  out.header_bytes = 8 + static_cast<int64_t>(safetensors_header(params, plain_metadata(metadata)).size());
  out.file_bytes = out.header_bytes;
  for (const auto& [name, p] : params) {
    out.tensors[name] = bytes_of(p);
    out.file_bytes += out.tensors[name];
  }
  return out;
}

}  // namespace trainlarge
