// One logical token array made of pieces that live in memory or in memory-mapped shard files.
//
// Shard file format (".tok", little-endian, 32-byte header so the payload is aligned):
//   0  char[8]  magic "TLTOKENS"
//   8  uint32   version (1)
//  12  uint32   bytes per token: 2 (uint16, when the vocabulary fits) or 4 (uint32)
//  16  uint64   token count
//  24  uint32   vocabulary size the ids were made for (every id is below it)
//  28  uint32   reserved (0)
//  32  tokens
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace trainlarge {

constexpr size_t kShardHeaderBytes = 32;

struct ShardInfo {
  int64_t tokens = 0;
  int32_t token_bytes = 0;
  int64_t vocab_size = 0;
};

// Writes ids (any integer dtype, 1-D) as a shard, atomically. token_bytes 0 = smallest that fits vocab_size.
ShardInfo write_token_shard(const std::string& path, const torch::Tensor& ids, int64_t vocab_size, int32_t token_bytes = 0);

class TokenStream {
 public:
  // The tensor's ids (copied to int64 and kept alive by the stream).
  static TokenStream from_tensor(const torch::Tensor& ids);
  // The shards, memory-mapped in the order given, as one stream.
  static TokenStream map_shards(const std::vector<std::string>& paths);

  int64_t size() const { return total_; }
  int64_t max_id() const { return max_id_; }
  // Copies tokens [start, start + n) into dst (n may cross piece boundaries).
  void copy(int64_t start, int64_t n, int64_t* dst) const;
  torch::Tensor slice(int64_t start, int64_t n) const;  // int64 copy
  int64_t pieces() const { return static_cast<int64_t>(pieces_.size()); }
  // Headers of the mapped shards, in order (empty for a stream from a tensor).
  const std::vector<ShardInfo>& shards() const { return shards_; }

 private:
  struct Piece {
    const uint8_t* data;
    int32_t width;  // bytes per token: 2, 4 or 8
    int64_t first;  // position of its first token in the stream
    int64_t size;
  };
  void add(const uint8_t* data, int32_t width, int64_t size);
  std::vector<Piece> pieces_;
  std::vector<std::shared_ptr<const void>> owners_;
  std::vector<ShardInfo> shards_;  // tensors and mappings the pieces point into
  int64_t total_ = 0, max_id_ = -1;
};

}  // namespace trainlarge
