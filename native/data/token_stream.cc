#include "data/token_stream.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace trainlarge {

namespace {

constexpr char kMagic[8] = {'T', 'L', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr uint32_t kVersion = 1;

template <typename T>
T read_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // x86/ARM Linux are little-endian, as the format
  return v;
}

template <typename T>
int64_t max_of(const uint8_t* data, int64_t n) {
  const T* p = reinterpret_cast<const T*>(data);
  int64_t m = -1;
  for (int64_t i = 0; i < n; ++i) m = std::max<int64_t>(m, static_cast<int64_t>(p[i]));
  return m;
}

ShardInfo parse_header(const uint8_t* h, size_t file_size, const std::string& path) {
  if (file_size < kShardHeaderBytes || std::memcmp(h, kMagic, 8) != 0) {
    throw std::runtime_error(path + ": not a trainlarge token shard (bad magic)");
  }
  const auto version = read_le<uint32_t>(h + 8);
  if (version != kVersion) throw std::runtime_error(path + ": token shard version " + std::to_string(version) + " (this build reads 1)");
  ShardInfo info;
  info.token_bytes = static_cast<int32_t>(read_le<uint32_t>(h + 12));
  info.tokens = static_cast<int64_t>(read_le<uint64_t>(h + 16));
  info.vocab_size = read_le<uint32_t>(h + 24);
  if (info.token_bytes != 2 && info.token_bytes != 4) throw std::runtime_error(path + ": bytes per token must be 2 or 4");
  const size_t expected = kShardHeaderBytes + static_cast<size_t>(info.tokens) * static_cast<size_t>(info.token_bytes);
  if (file_size != expected) {
    throw std::runtime_error(path + ": truncated or padded token shard (" + std::to_string(file_size) + " bytes, header says " +
                             std::to_string(expected) + ")");
  }
  return info;
}

}  // namespace

ShardInfo write_token_shard(const std::string& path, const torch::Tensor& ids, int64_t vocab_size, int32_t token_bytes) {
  if (ids.dim() != 1) throw std::invalid_argument("tokens: expected a 1-D array");
  if (vocab_size <= 0 || vocab_size >= (int64_t{1} << 32)) throw std::invalid_argument("vocabSize: must be in [1, 2^32)");
  if (token_bytes == 0) token_bytes = vocab_size <= 65536 ? 2 : 4;
  if (token_bytes != 2 && token_bytes != 4) throw std::invalid_argument("tokenBytes: must be 2 or 4");
  if (token_bytes == 2 && vocab_size > 65536)
    throw std::invalid_argument("tokenBytes: 2 bytes cannot hold a vocabulary of " + std::to_string(vocab_size));
  auto t = ids.to(torch::kLong).contiguous();
  if (t.numel() > 0) {
    const auto lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
    if (lo < 0 || hi >= vocab_size) {
      throw std::invalid_argument("tokens: id " + std::to_string(lo < 0 ? lo : hi) +
                                  " is outside [0, vocabSize=" + std::to_string(vocab_size) + ")");
    }
  }
  auto payload = t.to(token_bytes == 2 ? torch::kShort : torch::kInt);  // the bit patterns of uint16/uint32
  uint8_t header[kShardHeaderBytes] = {};
  std::memcpy(header, kMagic, 8);
  const uint32_t version = kVersion, width = static_cast<uint32_t>(token_bytes), vocab = static_cast<uint32_t>(vocab_size);
  const uint64_t count = static_cast<uint64_t>(t.numel());
  std::memcpy(header + 8, &version, 4);
  std::memcpy(header + 12, &width, 4);
  std::memcpy(header + 16, &count, 8);
  std::memcpy(header + 24, &vocab, 4);
  write_atomically(path, [&](int fd) {
    write_all(fd, header, sizeof(header), path);
    write_all(fd, payload.data_ptr(), static_cast<size_t>(payload.numel()) * token_bytes, path);
  });
  return ShardInfo{t.numel(), token_bytes, vocab_size};
}

void TokenStream::add(const uint8_t* data, int32_t width, int64_t size) {
  if (size == 0) return;
  pieces_.push_back(Piece{data, width, total_, size});
  total_ += size;
}

TokenStream TokenStream::from_tensor(const torch::Tensor& ids) {
  if (ids.dim() != 1) throw std::invalid_argument("tokens: expected a 1-D array of token ids");
  auto t = std::make_shared<torch::Tensor>(ids.to(torch::kLong).contiguous());
  TokenStream s;
  if (t->numel() > 0) {
    if (t->min().item<int64_t>() < 0) throw std::invalid_argument("tokens: negative token id");
    s.max_id_ = t->max().item<int64_t>();
  }
  s.add(static_cast<const uint8_t*>(t->data_ptr()), 8, t->numel());
  s.owners_.push_back(t);
  return s;
}

TokenStream TokenStream::map_shards(const std::vector<std::string>& paths) {
  if (paths.empty()) throw std::invalid_argument("shards: no shard files given");
  TokenStream s;
  for (const auto& path : paths) {
    auto file = std::make_shared<MappedFile>(path);
    const auto info = parse_header(file->data(), file->size(), path);
    const uint8_t* data = file->data() + kShardHeaderBytes;
    const int64_t m = info.token_bytes == 2 ? max_of<uint16_t>(data, info.tokens) : max_of<uint32_t>(data, info.tokens);
    if (m >= info.vocab_size) throw std::runtime_error(path + ": token id " + std::to_string(m) + " >= its vocabulary size");
    s.max_id_ = std::max(s.max_id_, m);
    s.add(data, info.token_bytes, info.tokens);
    s.owners_.push_back(file);
    s.shards_.push_back(info);
  }
  return s;
}

void TokenStream::copy(int64_t start, int64_t n, int64_t* dst) const {
  if (start < 0 || n < 0 || start + n > total_) throw std::out_of_range("token stream: range outside the stream");
  // The piece holding `start`: the last whose first token is <= start.
  auto it = std::upper_bound(pieces_.begin(), pieces_.end(), start, [](int64_t pos, const Piece& p) { return pos < p.first; });
  size_t i = static_cast<size_t>(std::distance(pieces_.begin(), it)) - 1;
  while (n > 0) {
    const Piece& p = pieces_[i];
    const int64_t off = start - p.first, take = std::min(n, p.size - off);
    switch (p.width) {
      case 2: std::copy_n(reinterpret_cast<const uint16_t*>(p.data) + off, take, dst); break;
      case 4: std::copy_n(reinterpret_cast<const uint32_t*>(p.data) + off, take, dst); break;
      default: std::copy_n(reinterpret_cast<const int64_t*>(p.data) + off, take, dst); break;
    }
    dst += take;
    start += take;
    n -= take;
    ++i;
  }
}

torch::Tensor TokenStream::slice(int64_t start, int64_t n) const {
  auto out = torch::empty({n}, torch::kLong);
  copy(start, n, out.data_ptr<int64_t>());
  return out;
}

}  // namespace trainlarge
