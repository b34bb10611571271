// A read-only memory map of a whole file: token shards are read in place, never copied into RAM, so a
// corpus larger than memory trains fine and many processes share one page cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace trainlarge {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws std::runtime_error naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace trainlarge
