// Loads native/spm (trainlarge_spm.so, built beside the addon) once, in its own symbol scope.
#include <dlfcn.h>

#include <mutex>
#include <stdexcept>
#include <string>

#include "data/tokenizer.h"

namespace trainlarge {

namespace {

struct Plugin {
  TokenizerTrainFn train = nullptr;
  TokenizerLoadFn load = nullptr;
  TokenizerLoadFn load_foreign = nullptr;
};

std::string addon_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&addon_dir), &info) == 0 || info.dli_fname == nullptr) return ".";
  std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

const Plugin& plugin() {
  static Plugin p;
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
    const char* env = std::getenv("TRAINLARGE_SPM");
    const std::string path = env != nullptr ? env : addon_dir() + "/trainlarge_spm.so";
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      error = std::string("tokenizer: cannot load the SentencePiece plugin ") + path + ": " + dlerror() +
              " (rebuild with 'npm run build'; it needs libsentencepiece-dev)";
      return;
    }
    p.train = reinterpret_cast<TokenizerTrainFn>(dlsym(handle, "trainlarge_spm_train"));
    p.load = reinterpret_cast<TokenizerLoadFn>(dlsym(handle, "trainlarge_spm_load"));
    p.load_foreign = reinterpret_cast<TokenizerLoadFn>(dlsym(handle, "trainlarge_spm_load_foreign"));
    if (p.train == nullptr || p.load == nullptr || p.load_foreign == nullptr)
      error = "tokenizer: " + path + " lacks the trainlarge_spm_* entry points (stale build?)";
  });
  if (!error.empty()) throw std::runtime_error(error);
  return p;
}

}  // namespace

std::shared_ptr<Tokenizer> Tokenizer::train(const std::vector<std::string>& lines, const TokenizerTrainOptions& options) {
  return std::shared_ptr<Tokenizer>(plugin().train(lines, options));
}

std::shared_ptr<Tokenizer> Tokenizer::from_model_proto(const std::string& bytes) {
  return std::shared_ptr<Tokenizer>(plugin().load(bytes));
}

std::shared_ptr<Tokenizer> Tokenizer::from_foreign_model_proto(const std::string& bytes) {
  return std::shared_ptr<Tokenizer>(plugin().load_foreign(bytes));
}

}  // namespace trainlarge
