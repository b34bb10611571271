#include "io/torch_checkpoint.h"

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <unordered_map>
#include <variant>

namespace trainlarge {

namespace {

// A value of the pickle machine: only what a state dict holds.
struct PyValue;
using PyPtr = std::shared_ptr<PyValue>;
struct PyGlobal {
  std::string module, name;
};
struct PyStorage {
  at::Tensor data;  // 1-D, the storage's dtype
};
struct PyValue {
  std::variant<std::monostate, bool, int64_t, double, std::string, std::vector<PyPtr>, std::vector<std::pair<PyPtr, PyPtr>>, PyGlobal,
               PyStorage, at::Tensor>
      v;
  bool is_tuple = false;  // a vector: tuple (true) or list
};

PyPtr make(decltype(PyValue::v) v) {
  auto p = std::make_shared<PyValue>();
  p->v = std::move(v);
  return p;
}

at::ScalarType storage_dtype(const std::string& name, const std::string& where) {
  static const std::unordered_map<std::string, at::ScalarType> types = {
      {"FloatStorage", at::kFloat}, {"DoubleStorage", at::kDouble}, {"HalfStorage", at::kHalf},   {"BFloat16Storage", at::kBFloat16},
      {"LongStorage", at::kLong},   {"IntStorage", at::kInt},       {"ShortStorage", at::kShort}, {"CharStorage", at::kChar},
      {"ByteStorage", at::kByte},   {"BoolStorage", at::kBool},
  };
  auto it = types.find(name);
  if (it == types.end()) throw std::runtime_error(where + ": a storage of type torch." + name + ", which trainlarge does not read");
  return it->second;
}

// The pickle (data.pkl) of a torch.save archive, run by a small machine that knows the opcodes a state dict
// uses (protocols 2 to 4) and the few globals it calls: collections.OrderedDict, torch._utils._rebuild_tensor_v2
// and _rebuild_parameter. Storages are the archive's data/KEY records (persistent ids).
class StateDictUnpickler {
 public:
  StateDictUnpickler(caffe2::serialize::PyTorchStreamReader& reader, std::string where) : reader_(reader), where_(std::move(where)) {}

  PyPtr run(const char* data, size_t size) {
    p_ = data;
    end_ = data + size;
    while (true) {
      const auto op = static_cast<uint8_t>(byte());
      switch (op) {
        case 0x80: byte(); break;                          // PROTO
        case 0x95: take(8); break;                         // FRAME
        case '.': return pop();                            // STOP
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case 'N': push(make(std::monostate{})); break;
        case 0x88: push(make(true)); break;
        case 0x89: push(make(false)); break;
        case 'J': push(make(static_cast<int64_t>(static_cast<int32_t>(le(4))))); break;
        case 'K': push(make(static_cast<int64_t>(le(1)))); break;
        case 'M': push(make(static_cast<int64_t>(le(2)))); break;
        case 0x8a: push(make(long_int(le(1)))); break;  // LONG1
        case 0x8b: push(make(long_int(le(4)))); break;  // LONG4
        case 'G': {
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<uint8_t>(byte());
          double d;
          std::memcpy(&d, &bits, 8);
          push(make(d));
          break;
        }
        case 'X': push(make(take(le(4)))); break;   // BINUNICODE
        case 0x8c: push(make(take(le(1)))); break;  // SHORT_BINUNICODE
        case 0x8d: push(make(take(le(8)))); break;  // BINUNICODE8
        case 'T': push(make(take(le(4)))); break;   // BINSTRING
        case 'U': push(make(take(le(1)))); break;   // SHORT_BINSTRING
        case 'B': push(make(take(le(4)))); break;   // BINBYTES
        case 'C': push(make(take(le(1)))); break;   // SHORT_BINBYTES
        case '}': push(make(std::vector<std::pair<PyPtr, PyPtr>>{})); break;
        case ']': push(make(std::vector<PyPtr>{})); break;
        case ')': push(tuple({})); break;
        case 't': push(tuple(since_mark())); break;
        case 0x85: push(tuple(last(1))); break;
        case 0x86: push(tuple(last(2))); break;
        case 0x87: push(tuple(last(3))); break;
        case 'q': memo_[le(1)] = top(); break;          // BINPUT
        case 'r': memo_[le(4)] = top(); break;          // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;  // MEMOIZE
        case 'h': push(memo(le(1))); break;             // BINGET
        case 'j': push(memo(le(4))); break;             // LONG_BINGET
        case 'c': {                                     // GLOBAL module\nname\n
          auto module = line();
          push(make(PyGlobal{module, line()}));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = str(pop()), module = str(pop());
          push(make(PyGlobal{module, name}));
          break;
        }
        case 'Q': push(storage(pop())); break;  // BINPERSID
        case 'R': {                             // REDUCE
          auto args = pop();
          push(reduce(pop(), args));
          break;
        }
        case 0x81: {  // NEWOBJ
          auto args = pop();
          push(reduce(pop(), args));
          break;
        }
        case 's': {  // SETITEM
          auto value = pop(), key = pop();
          dict(top()).emplace_back(key, value);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = since_mark();
          if (items.size() % 2) fail("SETITEMS with an odd number of items");
          for (size_t k = 0; k < items.size(); k += 2) dict(top()).emplace_back(items[k], items[k + 1]);
          break;
        }
        case 'a': {  // APPEND
          auto item = pop();
          list(top()).push_back(item);
          break;
        }
        case 'e': {  // APPENDS
          for (auto& item : since_mark()) list(top()).push_back(item);
          break;
        }
        case 'b': pop(); break;  // BUILD: an OrderedDict's _metadata (versions of the modules), not needed
        default: fail("pickle opcode 0x" + hex(op) + ", which a state dict does not use");
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { throw std::runtime_error(where_ + ": data.pkl: " + why); }
  static std::string hex(uint8_t b) {
    const char* d = "0123456789abcdef";
    return {d[b >> 4], d[b & 15]};
  }
  char byte() {
    if (p_ >= end_) fail("ends early");
    return *p_++;
  }
  std::string take(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) fail("ends early");
    std::string s(p_, n);
    p_ += n;
    return s;
  }
  uint64_t le(int n) {
    uint64_t v = 0;
    for (int k = 0; k < n; ++k) v |= static_cast<uint64_t>(static_cast<uint8_t>(byte())) << (8 * k);
    return v;
  }
  int64_t long_int(uint64_t n) {
    if (n > 8) fail("an integer longer than 8 bytes");
    uint64_t v = 0;
    for (uint64_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(static_cast<uint8_t>(byte())) << (8 * k);
    if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }
  std::string line() {
    std::string s;
    for (char c = byte(); c != '\n'; c = byte()) s += c;
    return s;
  }
  void push(PyPtr v) { stack_.push_back(std::move(v)); }
  PyPtr pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("pops an empty stack");
    auto v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyPtr& top() {
    if (stack_.empty()) fail("an empty stack");
    return stack_.back();
  }
  PyPtr memo(uint64_t i) {
    auto it = memo_.find(i);
    if (it == memo_.end()) fail("reads memo " + std::to_string(i) + ", never written");
    return it->second;
  }
  std::vector<PyPtr> since_mark() {
    if (marks_.empty()) fail("no MARK");
    std::vector<PyPtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  std::vector<PyPtr> last(size_t n) {
    std::vector<PyPtr> items(n);
    for (size_t k = n; k-- > 0;) items[k] = pop();
    return items;
  }
  static PyPtr tuple(std::vector<PyPtr> items) {
    auto p = make(std::move(items));
    p->is_tuple = true;
    return p;
  }
  std::vector<std::pair<PyPtr, PyPtr>>& dict(PyPtr& v) {
    auto* d = std::get_if<std::vector<std::pair<PyPtr, PyPtr>>>(&v->v);
    if (!d) fail("SETITEM on something that is not a dict");
    return *d;
  }
  std::vector<PyPtr>& list(PyPtr& v) {
    auto* l = std::get_if<std::vector<PyPtr>>(&v->v);
    if (!l) fail("APPEND on something that is not a list");
    return *l;
  }
  const std::vector<PyPtr>& items(const PyPtr& v, const char* what) const {
    auto* l = std::get_if<std::vector<PyPtr>>(&v->v);
    if (!l) fail(std::string(what) + ": expected a tuple");
    return *l;
  }
  std::string str(const PyPtr& v) const {
    auto* s = std::get_if<std::string>(&v->v);
    if (!s) fail("expected a string");
    return *s;
  }
  int64_t integer(const PyPtr& v) const {
    auto* i = std::get_if<int64_t>(&v->v);
    if (!i) fail("expected an integer");
    return *i;
  }
  std::vector<int64_t> ints(const PyPtr& v) const {
    std::vector<int64_t> out;
    for (const auto& x : items(v, "a shape")) out.push_back(integer(x));
    return out;
  }

  // ('storage', torch.FloatStorage, key, location, numel): the archive's data/KEY record, read once per key.
  PyPtr storage(const PyPtr& pid) {
    const auto& t = items(pid, "a persistent id");
    if (t.size() < 5 || str(t[0]) != "storage") fail("a persistent id that is not a storage");
    auto* type = std::get_if<PyGlobal>(&t[1]->v);
    if (!type) fail("a storage without a type");
    const auto key = str(t[2]);
    auto it = storages_.find(key);
    if (it == storages_.end()) {
      const auto dtype = storage_dtype(type->name, where_);
      const auto numel = integer(t[4]);
      auto data = at::empty({numel}, at::TensorOptions().dtype(dtype));
      const size_t bytes = static_cast<size_t>(numel) * data.element_size();
      const auto name = "data/" + key;
      if (!reader_.hasRecord(name)) fail("its storage " + name + " is missing from the archive");
      auto [ptr, size] = reader_.getRecord(name);
      if (size != bytes) fail("storage " + name + " holds " + std::to_string(size) + " bytes, " + std::to_string(bytes) + " expected");
      if (bytes) std::memcpy(data.data_ptr(), ptr.get(), bytes);
      it = storages_.emplace(key, data).first;
    }
    return make(PyStorage{it->second});
  }

  PyPtr reduce(const PyPtr& callable, const PyPtr& args) {
    auto* g = std::get_if<PyGlobal>(&callable->v);
    if (!g) fail("calls something that is not a global");
    const auto name = g->module + "." + g->name;
    if (name == "collections.OrderedDict") return make(std::vector<std::pair<PyPtr, PyPtr>>{});
    const auto& a = items(args, name.c_str());
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (a.size() < 4) fail(name + " with " + std::to_string(a.size()) + " arguments");
      auto* s = std::get_if<PyStorage>(&a[0]->v);
      if (!s) fail(name + ": its first argument is not a storage");
      const auto offset = integer(a[1]);
      const auto size = ints(a[2]), stride = ints(a[3]);
      if (size.size() != stride.size())
        fail(name + ": a shape of " + std::to_string(size.size()) + " dimensions with " + std::to_string(stride.size()) + " strides");
      // Every element inside the storage: the last one's offset, in 128 bits (sizes and strides are the file's and
      // may be anything; each term is under 2^126 and the sum stops at the storage's end).
      const auto n = s->data.numel();
      bool empty = false;
      for (size_t k = 0; k < size.size(); ++k) {
        if (size[k] < 0 || stride[k] < 0) fail(name + ": a negative size or stride");
        empty = empty || size[k] == 0;
      }
      if (offset < 0 || offset > n) fail(name + ": a view outside its storage");
      __int128 last = offset;
      for (size_t k = 0; k < size.size() && !empty; ++k) {
        last += static_cast<__int128>(size[k] - 1) * stride[k];
        if (last >= n) fail(name + ": a view outside its storage");
      }
      if (!empty && last >= n) fail(name + ": a view outside its storage");
      return make(s->data.as_strided(size, stride, offset));
    }
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || !std::holds_alternative<at::Tensor>(a[0]->v)) fail(name + ": its first argument is not a tensor");
      return a[0];
    }
    fail("calls " + name + ", which a state dict does not (only tensors are read)");
  }

  caffe2::serialize::PyTorchStreamReader& reader_;
  std::string where_;
  const char* p_ = nullptr;
  const char* end_ = nullptr;
  std::vector<PyPtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyPtr> memo_;
  std::unordered_map<std::string, at::Tensor> storages_;
};

}  // namespace

NamedTensors read_torch_checkpoint(const std::string& path) {
  char magic[4] = {0, 0, 0, 0};
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open");
    in.read(magic, 4);
  }
  if (!(magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4)) {
    throw std::runtime_error(path +
                             ": not a zip archive: torch.save's legacy format (PyTorch before 1.6) or not a checkpoint; trainlarge "
                             "reads only the zip format (re-save it with a current PyTorch, or as model.safetensors)");
  }
  NamedTensors out;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord("data.pkl")) throw std::runtime_error(path + ": a zip archive without data.pkl: not written by torch.save");
    auto [pkl, size] = reader.getRecord("data.pkl");
    StateDictUnpickler unpickler(reader, path);
    const auto value = unpickler.run(static_cast<const char*>(pkl.get()), size);
    const auto* dict = std::get_if<std::vector<std::pair<PyPtr, PyPtr>>>(&value->v);
    if (!dict) throw std::runtime_error(path + ": holds no dict of tensors (a state dict)");
    for (const auto& [key, v] : *dict) {
      const auto* name = std::get_if<std::string>(&key->v);
      const auto* t = std::get_if<at::Tensor>(&v->v);
      if (!name) throw std::runtime_error(path + ": a key of its dict is not a name");
      if (!t) continue;  // not a weight (a version number, an optimizer's state)
      out.emplace_back(*name, t->is_floating_point() ? t->to(at::kFloat).contiguous() : t->contiguous());
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": libtorch cannot read the archive: " + e.what_without_backtrace());
  }
  if (out.empty()) throw std::runtime_error(path + ": its dict holds no tensors");
  return out;
}

}  // namespace trainlarge
