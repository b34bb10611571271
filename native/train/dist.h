// Data-parallel training over libtorch's own c10d: a TCPStore rendezvous, a Gloo process group, and the
// few collectives the trainer needs. Every failure is a std::runtime_error that says which rank is at
// fault when it can be known (a peer that died or stopped answering), never a bare socket error.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace trainlarge {

// torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), read and checked in TypeScript.
struct DistConfig {
  int rank = 0;
  int world_size = 1;
  std::string master_addr;
  int master_port = 0;
  std::string backend = "gloo";
  double timeout_seconds = 300;  // any one collective (and the rendezvous) fails after this long
};

class DistGroup {
 public:
  // Blocks until every rank has joined (or the timeout): the rendezvous, the WORLD_SIZE check, the mesh.
  static std::shared_ptr<DistGroup> join(const DistConfig& config);
  // This process's group for `config`, as torch.distributed's default group: joined on the first call and
  // kept for the process's life, so the trainers of a sweep (one after another) and the sweep's own
  // coordination use one group on one port. A group that failed, or one of another config, is replaced.
  static std::shared_ptr<DistGroup> shared(const DistConfig& config);
  ~DistGroup();
  DistGroup(const DistGroup&) = delete;
  DistGroup& operator=(const DistGroup&) = delete;

  int rank() const { return config_.rank; }
  int size() const { return config_.world_size; }

  // Rank 0's values into every rank's tensors, in place (flat buckets of one dtype).
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // The mean over ranks of each tensor, in place: DistributedDataParallel's gradient all-reduce (25 MiB
  // buckets, every bucket in flight before the first is awaited).
  void average(const std::vector<torch::Tensor>& tensors);
  // Every rank's `row` (1-D, float64), as a (world, n) tensor in rank order.
  torch::Tensor gather(const torch::Tensor& row);
  // True on every rank when `local` is true on any: one rank decides, all act.
  bool any(bool local);
  void barrier();
  // Rank 0's `text` on every rank (the others' `text` is ignored): a sweep's decisions, made once.
  std::string broadcast_text(const std::string& text);
  // A collective of this group failed: the group cannot be used again.
  bool broken() const;

  // Seconds spent waiting in collectives and bytes all-reduced since the last take_comm_stats().
  std::pair<double, int64_t> take_comm_stats();

  struct Impl;  // c10d's objects (dist.cc)

 private:
  explicit DistGroup(DistConfig config);

  DistConfig config_;
  std::unique_ptr<Impl> impl_;
  double comm_seconds_ = 0;
  int64_t comm_bytes_ = 0;
};

}  // namespace trainlarge
