#include "train/dist.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <torch/version.h>

#include "common/runtime.h"

#if TRAINLARGE_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#if TRAINLARGE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace trainlarge {

void check_backend(const std::string& backend, std::optional<c10::Device> device) {
  if (backend != "nccl") return;
  if (!nccl_built()) {
    throw std::invalid_argument(std::string("distributed: backend 'nccl' is not in this build (libtorch ") + TORCH_VERSION +
                                (cuda_built() ? ", CUDA, built without NCCL's headers" : ", CPU only") +
                                "); use 'auto' or 'gloo' (Gloo carries every tensor then)");
  }
  if (device && !device->is_cuda()) {
    throw std::invalid_argument("distributed: backend 'nccl' carries CUDA tensors only, and this model is on the " + device->str() +
                                "; use 'auto' or 'gloo'");
  }
}

#if TRAINLARGE_GLOO

namespace {

using DistClock = std::chrono::steady_clock;
double seconds_since(DistClock::time_point t) { return std::chrono::duration<double>(DistClock::now() - t).count(); }

constexpr int64_t kBucketBytes = 25 << 20;  // DistributedDataParallel's bucket_cap_mb

// The first line of an exception's message, without libtorch's source location ("[/path/pair.cc:553] ").
std::string first_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string m = c10 ? c10->what_without_backtrace() : e.what();
  m = m.substr(0, m.find('\n'));
  const auto advice = m.find(" This is typically caused by");  // gloo's generic advice: the error we throw is specific
  if (advice != std::string::npos) m = m.substr(0, advice);
  if (!m.empty() && m[0] == '[') {
    const auto close = m.find("] ");
    if (close != std::string::npos) m = m.substr(close + 2);
  }
  return m;
}

// Tensors split into buckets of at most kBucketBytes (one dtype and device each), in order: the same on every rank.
std::vector<std::vector<torch::Tensor>> buckets(const std::vector<torch::Tensor>& tensors) {
  std::vector<std::vector<torch::Tensor>> out;
  int64_t bytes = 0;
  for (const auto& t : tensors) {
    const int64_t b = t.numel() * static_cast<int64_t>(t.element_size());
    const auto& first = out.empty() ? t : out.back().front();
    if (out.empty() || bytes + b > kBucketBytes || first.scalar_type() != t.scalar_type() || first.device() != t.device()) {
      out.emplace_back();
      bytes = 0;
    }
    out.back().push_back(t);
    bytes += b;
  }
  return out;
}

torch::Tensor flatten_all(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> flat;
  flat.reserve(ts.size());
  for (const auto& t : ts) flat.push_back(t.reshape(-1));
  return torch::cat(flat);
}

void unflatten(const torch::Tensor& flat, const std::vector<torch::Tensor>& ts) {
  int64_t offset = 0;
  for (const auto& t : ts) {
    t.copy_(flat.narrow(0, offset, t.numel()).view_as(t));
    offset += t.numel();
  }
}

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

}  // namespace

struct DistGroup::Impl {
  explicit Impl(const DistConfig& c) : config(c) {}
  const DistConfig& config;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;  // CPU tensors (and CUDA ones under 'gloo'); every control message
#if TRAINLARGE_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;  // CUDA tensors under 'nccl' and 'auto', made at their first collective
#endif
  std::vector<c10::intrusive_ptr<c10d::Work>> pending;  // gradient buckets in flight
  bool broken = false;

  std::string who() const { return "distributed: rank " + std::to_string(config.rank) + " of " + std::to_string(config.world_size); }

  // Liveness beside the collectives: each rank bumps its counter in the store every 0.5 s from its own
  // thread. (c10d's monitoredBarrier would name silent ranks too, but on a mesh with a dead peer gloo threw
  // from a place nothing catches and the process aborted.)
  std::thread heart;
  std::mutex heart_mutex;
  std::condition_variable heart_cv;
  bool stopping = false;
  std::atomic<bool> store_lost{false};

  static std::string alive_key(int r) { return "trainlarge/alive/" + std::to_string(r); }

  void start_heartbeat() {
    heart = std::thread([this] {
      std::unique_lock<std::mutex> lock(heart_mutex);
      while (!stopping) {
        lock.unlock();
        try {
          store->add(alive_key(config.rank), 1);
        } catch (...) {
          store_lost = true;  // rank 0 (which serves the store) is gone: the next collective says so
          return;
        }
        lock.lock();
        heart_cv.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping; });
      }
    });
  }

  void stop_heartbeat() {
    {
      std::lock_guard<std::mutex> lock(heart_mutex);
      stopping = true;
    }
    heart_cv.notify_all();
    if (heart.joinable()) heart.join();
  }

  // The ranks whose heartbeat stood still for 2 s ("0" when the store, which rank 0 serves, is gone); empty
  // when every rank is alive (then a collective timed out on a rank that is busy, or the error is another).
  std::string culprit() {
    if (store_lost) return config.rank == 0 ? "" : "0";
    try {
      const auto beats = [&] {
        std::vector<int64_t> v;
        for (int r = 0; r < config.world_size; ++r) v.push_back(store->add(alive_key(r), 0));
        return v;
      };
      const auto before = beats();
      std::this_thread::sleep_for(std::chrono::seconds(2));
      const auto after = beats();
      std::string silent;
      for (int r = 0; r < config.world_size; ++r)
        if (r != config.rank && after[r] == before[r]) silent += (silent.empty() ? "" : ", ") + std::to_string(r);
      return silent;
    } catch (...) {
      return config.rank == 0 ? "" : "0";
    }
  }

  [[noreturn]] void fail(const std::string& what, const std::exception& e) {
    broken = true;
    const std::string error = first_line(e);
    const std::string ranks = culprit();
    if (ranks.empty()) throw std::runtime_error(who() + ": " + what + " failed: " + error);
    const bool many = ranks.find(',') != std::string::npos;
    throw std::runtime_error(who() + ": " + what + " failed because rank" + (many ? "s " : " ") + ranks + (many ? " have" : " has") +
                             " died or hung (timeout " + std::to_string(static_cast<int64_t>(config.timeout_seconds)) + " s): " + error);
  }

  void wait(const std::string& what, const c10::intrusive_ptr<c10d::Work>& work) {
    try {
      work->wait();
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }

  // The backend that carries `t`, as torch.distributed's default group with "cpu:gloo,cuda:nccl": a CUDA
  // tensor goes through NCCL unless the backend is 'gloo'. Every rank reaches its first CUDA collective at
  // the same point, so the NCCL communicator is made there, together (its id travels through the store).
  c10d::Backend& backend_for(const at::Tensor& t) {
#if TRAINLARGE_NCCL
    if (t.is_cuda() && config.backend != "gloo") {
      if (!nccl) {
        auto options = c10d::ProcessGroupNCCL::Options::create();
        options->timeout = std::chrono::milliseconds(static_cast<int64_t>(config.timeout_seconds * 1000));
        nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", store), config.rank,
                                                           config.world_size, options);
      }
      return *nccl;
    }
#endif
    return *pg;
  }

  template <typename F>
  auto launch(const std::string& what, F&& f) {
    if (broken) throw std::runtime_error(who() + ": the process group failed earlier; it cannot run " + what);
    try {
      return f();
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }
};

DistGroup::DistGroup(DistConfig config) : config_(std::move(config)), impl_(new Impl(config_)) {}

DistGroup::~DistGroup() {
  impl_->stop_heartbeat();
  // The meshes first (their threads use the store), then the store (rank 0's serves the others).
#if TRAINLARGE_NCCL
  impl_->nccl.reset();
#endif
  impl_->pg.reset();
  impl_->store.reset();
}

// Every rank says its WORLD_SIZE; all wait for all, then compare.
void exchange(DistGroup::Impl& im, const std::string& where, const std::string& secs) {
  const DistConfig& c = im.config;
  const auto key = [](int r) { return "trainlarge/world/" + std::to_string(r); };
  const auto read_key = [](int r) { return "trainlarge/compared/" + std::to_string(r); };
  im.store->set(key(c.rank), std::to_string(c.world_size));
  const auto start = DistClock::now();
  std::vector<bool> seen(static_cast<size_t>(c.world_size), false);
  for (;;) {
    std::vector<int> missing;
    for (int r = 0; r < c.world_size; ++r) {
      if (seen[r]) continue;
      if (!im.store->check({key(r)})) {
        missing.push_back(r);
        continue;
      }
      seen[r] = true;
      const auto v = im.store->get(key(r));
      const std::string theirs(v.begin(), v.end());
      if (theirs != std::to_string(c.world_size)) {
        im.store->set(read_key(c.rank), "1");
        // Rank 0 serves the store: it stays until the ranks that joined have read its WORLD_SIZE too, so that
        // each says the mismatch rather than that rank 0 went away (bounded, in case one has hung).
        if (c.rank == 0) {
          const auto since = DistClock::now();
          for (int o = 1; o < c.world_size; ++o) {
            while (im.store->check({key(o)}) && !im.store->check({read_key(o)}) &&
                   seconds_since(since) < std::min(10.0, c.timeout_seconds)) {
              std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
          }
        }
        throw std::runtime_error(im.who() + ": WORLD_SIZE differs between ranks: rank " + std::to_string(r) + " has " + theirs + ", rank " +
                                 std::to_string(c.rank) + " has " + std::to_string(c.world_size));
      }
    }
    if (missing.empty()) break;
    if (seconds_since(start) > c.timeout_seconds) {
      std::string list;
      for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + std::to_string(missing[i]);
      if (missing.size() > 8) list += ", ...";
      throw std::runtime_error(im.who() + ": waited " + secs + " at " + where + " for rank" + (missing.size() > 1 ? "s " : " ") + list +
                               " to join (WORLD_SIZE=" + std::to_string(c.world_size) +
                               "); did every rank start, with the same WORLD_SIZE?");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Extra ranks (two processes given the same RANK, or RANK beyond another's WORLD_SIZE) show up here.
  if (im.store->add("trainlarge/joined", 1) > c.world_size) {
    throw std::runtime_error(im.who() + ": more processes joined than WORLD_SIZE=" + std::to_string(c.world_size) +
                             "; was one RANK given twice?");
  }
}

std::shared_ptr<DistGroup> DistGroup::join(const DistConfig& c) {
  if (c.world_size < 1) throw std::invalid_argument("distributed: WORLD_SIZE must be >= 1, got " + std::to_string(c.world_size));
  if (c.rank < 0 || c.rank >= c.world_size) {
    throw std::invalid_argument("distributed: RANK must be in [0, WORLD_SIZE=" + std::to_string(c.world_size) + "), got " +
                                std::to_string(c.rank));
  }
  if (c.master_addr.empty()) throw std::invalid_argument("distributed: MASTER_ADDR is empty");
  if (c.master_port <= 0 || c.master_port > 65535) {
    throw std::invalid_argument("distributed: MASTER_PORT must be in 1..65535, got " + std::to_string(c.master_port));
  }
  check_backend(c.backend);
  if (!(c.timeout_seconds > 0)) throw std::invalid_argument("distributed: timeoutSeconds must be > 0");
  auto group = std::shared_ptr<DistGroup>(new DistGroup(c));
  auto& im = *group->impl_;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(c.timeout_seconds * 1000));
  const std::string where = c.master_addr + ":" + std::to_string(c.master_port);
  const std::string secs = std::to_string(static_cast<int64_t>(c.timeout_seconds)) + " s";

  // c10d logs every failed store operation as a warning with a C++ backtrace; the error we throw says it
  // once, in words. TORCH_CPP_LOG_LEVEL, when set, decides instead.
  if (!std::getenv("TORCH_CPP_LOG_LEVEL")) FLAGS_caffe2_log_level = std::max(FLAGS_caffe2_log_level, 2);

  // The rendezvous: rank 0 serves a TCPStore at MASTER_ADDR:MASTER_PORT, the others connect to it.
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(c.master_port);
  o.isServer = c.rank == 0;
  o.numWorkers = c.world_size;
  o.waitWorkers = false;  // we wait ourselves, to say which ranks are missing
  o.timeout = timeout;
  try {
    im.store = c10::make_intrusive<c10d::TCPStore>(c.master_addr, o);
  } catch (const std::exception& e) {
    if (c.rank == 0) {
      throw std::runtime_error(im.who() + ": cannot serve the rendezvous on port " + std::to_string(c.master_port) + " (MASTER_PORT): " +
                               first_line(e) + "; is another job using it? Choose another port (launch --master HOST:PORT)");
    }
    throw std::runtime_error(im.who() + ": cannot reach rank 0's rendezvous at " + where + " (MASTER_ADDR:MASTER_PORT) within " + secs +
                             ": " + first_line(e) + "; is rank 0 running, with the same MASTER_ADDR and MASTER_PORT?");
  }

  try {
    exchange(im, where, secs);
  } catch (const c10::DistError& e) {
    throw std::runtime_error(im.who() + ": lost the rendezvous at " + where +
                             " while the ranks joined (rank 0, which serves it, stopped: " + "see its error): " + first_line(e));
  }

  // The Gloo mesh
  // The Gloo mesh: every rank connects to every other. On one host, loopback; GLOO_SOCKET_IFNAME picks the
  // interface elsewhere (as in PyTorch), else the address this host's name resolves to.
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  try {
    if (ifname && *ifname) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (is_loopback(c.master_addr)) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("gloo", im.store);
    im.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, c.rank, c.world_size, options);
  } catch (const std::exception& e) {
    throw std::runtime_error(im.who() + ": could not connect to every other rank within " + secs + ": " + first_line(e));
  }
  im.start_heartbeat();
  return group;
}

void DistGroup::broadcast(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  for (const auto& bucket : buckets(tensors)) {
    auto flat = flatten_all(bucket);
    std::vector<at::Tensor> io{flat};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    impl_->wait("broadcast from rank 0", impl_->launch("broadcast from rank 0", [&] { return impl_->backend_for(flat).broadcast(io, o); }));
    unflatten(io[0], bucket);
  }
}

void DistGroup::start_average(const torch::Tensor& flat) {
  flat.div_(config_.world_size);
  comm_bytes_ += flat.numel() * static_cast<int64_t>(flat.element_size());
  std::vector<at::Tensor> io{flat};
  impl_->pending.push_back(impl_->launch("gradient all-reduce", [&] { return impl_->backend_for(flat).allreduce(io); }));
}

void DistGroup::finish_averages() {
  // The time backward did not hide: from the end of backward until the last bucket is done.
  const auto start = DistClock::now();
  for (auto& work : impl_->pending) impl_->wait("gradient all-reduce", work);
  impl_->pending.clear();
  comm_seconds_ += seconds_since(start);
}

torch::Tensor DistGroup::gather(const torch::Tensor& row) {
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < config_.world_size; ++r) out[0].push_back(torch::empty_like(row));
  std::vector<at::Tensor> in{row.contiguous()};
  impl_->wait("step statistics gather", impl_->launch("step statistics gather", [&] { return impl_->pg->allgather(out, in); }));
  return torch::stack(out[0]);
}

bool DistGroup::any(bool local) {
  std::vector<at::Tensor> io{torch::full({1}, local ? 1 : 0, torch::kInt64)};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  impl_->wait("stop agreement", impl_->launch("stop agreement", [&] { return impl_->pg->allreduce(io, o); }));
  return io[0].item<int64_t>() != 0;
}

void DistGroup::barrier() {
  impl_->wait("barrier", impl_->launch("barrier", [&] { return impl_->pg->barrier(); }));
}

std::string DistGroup::broadcast_text(const std::string& text) {
  // The length first, then the bytes (as int64 and uint8 tensors; gloo broadcasts any dtype).
  auto length = torch::full({1}, config_.rank == 0 ? static_cast<int64_t>(text.size()) : 0, torch::kInt64);
  c10d::BroadcastOptions o;
  o.rootRank = 0;
  std::vector<at::Tensor> n{length};
  impl_->wait("decision broadcast", impl_->launch("decision broadcast", [&] { return impl_->pg->broadcast(n, o); }));
  const int64_t size = n[0].item<int64_t>();
  if (size == 0) return "";
  auto bytes = torch::empty({size}, torch::kUInt8);
  if (config_.rank == 0) std::memcpy(bytes.data_ptr<uint8_t>(), text.data(), static_cast<size_t>(size));
  std::vector<at::Tensor> b{bytes};
  impl_->wait("decision broadcast", impl_->launch("decision broadcast", [&] { return impl_->pg->broadcast(b, o); }));
  return std::string(reinterpret_cast<const char*>(b[0].data_ptr<uint8_t>()), static_cast<size_t>(size));
}

std::vector<std::string> DistGroup::gather_text(const std::string& text) {
  // The lengths first, then every rank's bytes padded to the longest (allgather needs equal shapes).
  auto lengths = torch::full({1}, static_cast<int64_t>(text.size()), torch::kInt64);
  std::vector<std::vector<at::Tensor>> n_out(1);
  for (int r = 0; r < config_.world_size; ++r) n_out[0].push_back(torch::empty_like(lengths));
  std::vector<at::Tensor> n_in{lengths};
  impl_->wait("text gather", impl_->launch("text gather", [&] { return impl_->pg->allgather(n_out, n_in); }));
  int64_t longest = 0;
  for (const auto& n : n_out[0]) longest = std::max(longest, n.item<int64_t>());
  std::vector<std::string> texts(static_cast<size_t>(config_.world_size));
  if (longest == 0) return texts;
  auto bytes = torch::zeros({longest}, torch::kUInt8);
  std::memcpy(bytes.data_ptr<uint8_t>(), text.data(), text.size());
  std::vector<std::vector<at::Tensor>> b_out(1);
  for (int r = 0; r < config_.world_size; ++r) b_out[0].push_back(torch::empty_like(bytes));
  std::vector<at::Tensor> b_in{bytes};
  impl_->wait("text gather", impl_->launch("text gather", [&] { return impl_->pg->allgather(b_out, b_in); }));
  for (int r = 0; r < config_.world_size; ++r)
    texts[static_cast<size_t>(r)].assign(reinterpret_cast<const char*>(b_out[0][static_cast<size_t>(r)].data_ptr<uint8_t>()),
                                         static_cast<size_t>(n_out[0][static_cast<size_t>(r)].item<int64_t>()));
  return texts;
}

bool DistGroup::broken() const { return impl_->broken; }

#else  // built without gloo's headers

struct DistGroup::Impl {};
DistGroup::DistGroup(DistConfig config) : config_(std::move(config)) {}
DistGroup::~DistGroup() = default;
std::shared_ptr<DistGroup> DistGroup::join(const DistConfig&) {
  throw std::runtime_error(
      "distributed: this trainlarge addon was built without gloo's headers, so it cannot join a process group; "
      "install them (Debian: apt-get install libgloo-dev) and rebuild (npm run build -- --force)");
}
void DistGroup::broadcast(const std::vector<torch::Tensor>&) {}
void DistGroup::start_average(const torch::Tensor&) {}
void DistGroup::finish_averages() {}
torch::Tensor DistGroup::gather(const torch::Tensor& row) { return row.unsqueeze(0); }
bool DistGroup::any(bool local) { return local; }
void DistGroup::barrier() {}
std::string DistGroup::broadcast_text(const std::string& text) { return text; }
std::vector<std::string> DistGroup::gather_text(const std::string& text) { return {text}; }
bool DistGroup::broken() const { return false; }

#endif

std::shared_ptr<DistGroup> DistGroup::shared(const DistConfig& c) {
  // Never destroyed: a process ends with its group (as one whose rank 0 serves the store must, for the others).
  static auto* mutex = new std::mutex();
  static auto* group = new std::shared_ptr<DistGroup>();
  std::lock_guard<std::mutex> lock(*mutex);
  const auto& g = *group;
  const bool same = g && g->config_.rank == c.rank && g->config_.world_size == c.world_size && g->config_.master_addr == c.master_addr &&
                    g->config_.master_port == c.master_port && g->config_.backend == c.backend &&
                    g->config_.timeout_seconds == c.timeout_seconds;
  if (same && !g->broken()) return g;
  group->reset();  // the old one's store and mesh go first: a new group may take its port
  *group = join(c);
  return *group;
}

std::pair<double, int64_t> DistGroup::take_comm_stats() {
  std::pair<double, int64_t> out{comm_seconds_, comm_bytes_};
  comm_seconds_ = 0;
  comm_bytes_ = 0;
  return out;
}

namespace {
// DistributedDataParallel's sizes: a small first bucket (the last layers' gradients, which backward produces
// first), so communication starts early, then bucket_cap_mb.
constexpr int64_t kFirstBucketBytes = 1 << 20;
constexpr int64_t kReducerBucketBytes = 25 << 20;
}  // namespace

GradReducer::GradReducer(std::shared_ptr<DistGroup> group, std::vector<torch::Tensor> params)
    : group_(std::move(group)), params_(std::move(params)) {
  const size_t n = params_.size();
  bucket_of_.assign(n, 0);
  offset_.assign(n, 0);
  seen_.assign(n, false);
  // Reverse order, one dtype, the first bucket at most kFirstBucketBytes and the others kReducerBucketBytes (a
  // larger parameter is a bucket alone).
  int64_t bytes = 0, numel = 0;
  for (size_t k = n; k-- > 0;) {
    const auto& p = params_[k];
    const int64_t b = p.numel() * static_cast<int64_t>(p.element_size());
    const int64_t cap = buckets_.size() <= 1 ? kFirstBucketBytes : kReducerBucketBytes;
    if (buckets_.empty() || bytes + b > cap || params_[buckets_.back().params.front()].scalar_type() != p.scalar_type()) {
      if (!buckets_.empty()) buckets_.back().flat = torch::zeros({numel}, params_[buckets_.back().params.front()].options());
      buckets_.emplace_back();
      bytes = 0;
      numel = 0;
    }
    bucket_of_[k] = buckets_.size() - 1;
    offset_[k] = static_cast<size_t>(numel);
    buckets_.back().params.push_back(k);
    bytes += b;
    numel += p.numel();
  }
  if (!buckets_.empty()) buckets_.back().flat = torch::zeros({numel}, params_[buckets_.back().params.front()].options());
  // Frozen parameters get no hook: finish() counts them as gradient-less.
  for (size_t k = 0; k < n; ++k) {
    if (!params_[k].requires_grad()) continue;
    hooks_.emplace_back(k, params_[k].register_hook([this, k](torch::Tensor grad) {
      if (armed_) on_grad(k, grad);
      return grad;
    }));
  }
}

GradReducer::~GradReducer() {
  for (const auto& [k, hook] : hooks_) params_[k].remove_hook(hook);
}

void GradReducer::arm() { armed_ = true; }

void GradReducer::on_grad(size_t i, const torch::Tensor& grad) {
  torch::NoGradGuard no_grad;
  if (seen_[i]) return;
  seen_[i] = true;
  auto& b = buckets_[bucket_of_[i]];
  const auto& p = params_[i];
  auto view = b.flat.narrow(0, static_cast<int64_t>(offset_[i]), p.numel()).view_as(p);
  view.copy_(grad);
  if (p.grad().defined()) view.add_(p.grad());  // earlier micro-batches' share
  if (++b.ready == b.params.size()) launch_ready();
}

void GradReducer::launch_ready() {
  while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].params.size()) group_->start_average(buckets_[next_++].flat);
}

void GradReducer::finish() {
  torch::NoGradGuard no_grad;
  armed_ = false;
  // Parameters without a gradient this time: what .grad holds (earlier micro-batches), else zeros.
  for (size_t i = 0; i < params_.size(); ++i) {
    if (seen_[i]) continue;
    seen_[i] = true;
    auto& b = buckets_[bucket_of_[i]];
    const auto& p = params_[i];
    auto view = b.flat.narrow(0, static_cast<int64_t>(offset_[i]), p.numel()).view_as(p);
    if (p.grad().defined())
      view.copy_(p.grad());
    else
      view.zero_();
    ++b.ready;
  }
  launch_ready();
  group_->finish_averages();
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    auto view = buckets_[bucket_of_[i]].flat.narrow(0, static_cast<int64_t>(offset_[i]), p.numel()).view_as(p);
    if (!p.grad().defined()) p.mutable_grad() = torch::empty_like(p);
    p.mutable_grad().copy_(view);
  }
  for (auto& b : buckets_) b.ready = 0;
  seen_.assign(params_.size(), false);
  next_ = 0;
}

}  // namespace trainlarge
