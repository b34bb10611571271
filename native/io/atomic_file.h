// Crash-safe file replacement: write to a temporary name, fsync, rename, fsync the directory.
#pragma once

#include <functional>
#include <string>

namespace trainlarge {

// Calls write(fd) on a temporary file beside `path`, then makes it `path` atomically.
void write_atomically(const std::string& path, const std::function<void(int fd)>& write);
// write(2) until done, throwing std::runtime_error on failure.
void write_all(int fd, const void* data, size_t size, const std::string& path);

}  // namespace trainlarge
