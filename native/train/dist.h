// Data-parallel training over libtorch's own c10d: a TCPStore rendezvous, a Gloo process group (and, in CUDA
// builds with NCCL's headers, a ProcessGroupNCCL for CUDA tensors), and the few collectives the trainer needs. Every failure is a
// std::runtime_error that says which rank is at fault when it can be known (a peer that died or stopped answering), never a bare socket
// error.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trainlarge {

// torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), read and checked in TypeScript.
struct DistConfig {
  int rank = 0;
  int world_size = 1;
  std::string master_addr;
  int master_port = 0;
  std::string backend = "auto";  // "auto", "gloo" or "nccl" (DistGroup::backend)
  double timeout_seconds = 300;  // any one collective (and the rendezvous) fails after this long
};

// Throws std::invalid_argument unless `backend` (one of 'auto', 'gloo', 'nccl': bind/options.cc refuses any other
// name) is in this build and, given a model's `device`, can carry it ('nccl' needs a CUDA model). Checked before
// joining: a wrong choice costs no rendezvous.
void check_backend(const std::string& backend, std::optional<c10::Device> device = std::nullopt);

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
  // 'auto' (CUDA tensors through NCCL where this build has it, the rest through Gloo), 'gloo' or 'nccl'.
  const std::string& backend() const { return config_.backend; }

  // Rank 0's values into every rank's tensors, in place (flat buckets of one dtype).
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // Starts the mean over ranks of `flat`, in place (a gradient bucket); every rank must start the same
  // buckets in the same order. finish_averages() waits for all started ones.
  void start_average(const torch::Tensor& flat);
  void finish_averages();
  // Every rank's `row` (1-D, float64), as a (world, n) tensor in rank order.
  torch::Tensor gather(const torch::Tensor& row);
  // True on every rank when `local` is true on any: one rank decides, all act.
  bool any(bool local);
  void barrier();
  // Rank 0's `text` on every rank (the others' `text` is ignored): a sweep's decisions, made once.
  std::string broadcast_text(const std::string& text);
  // Every rank's `text`, in rank order, on every rank (BLEU's hypotheses, decoded a share per rank).
  std::vector<std::string> gather_text(const std::string& text);
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

// The gradient all-reduce overlapped with backward, as DistributedDataParallel's Reducer: the parameters are
// cut into buckets of at most 25 MiB in reverse order (about the order backward produces their gradients).
// While armed, a hook on each parameter copies its gradient (plus what earlier micro-batches accumulated in
// .grad) into its bucket, and buckets start their all-reduce in index order as soon as they are complete,
// while backward still runs. finish() completes the buckets whose parameters got no gradient (zeros: a rank
// whose share of the batch was empty, an unused parameter), waits, and writes the means into .grad. The
// order of the all-reduces is the buckets' order on every rank, whatever order the gradients came in.
class GradReducer {
 public:
  GradReducer(std::shared_ptr<DistGroup> group, std::vector<torch::Tensor> params);
  ~GradReducer();  // removes the hooks
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // The next backward is the last micro-batch's: reduce its gradients as they come.
  void arm();
  // After that backward (or instead of it): every parameter's .grad holds the mean over ranks.
  void finish();
  const std::shared_ptr<DistGroup>& group() const { return group_; }

 private:
  struct Bucket {
    torch::Tensor flat;
    std::vector<size_t> params;  // indices into params_
    size_t ready = 0;
  };
  void on_grad(size_t i, const torch::Tensor& grad);
  void launch_ready();

  std::shared_ptr<DistGroup> group_;
  std::vector<torch::Tensor> params_;
  std::vector<std::pair<size_t, unsigned>> hooks_;  // (parameter, hook)
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_, offset_;
  std::vector<bool> seen_;
  size_t next_ = 0;  // the next bucket to start
  bool armed_ = false;
};

}  // namespace trainlarge
