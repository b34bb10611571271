#include "train/trainer.h"

#include <torch/cuda.h>

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "data/dataset.h"
#include "engine/compression.h"
#include "engine/int8.h"

namespace trainlarge {

namespace {

// The training loss of a batch: label-smoothed for a translate model, the task's loss otherwise.
LossResult batch_loss(Model& model, const Batch& batch, double label_smoothing, bool count_correct = false) {
  if (auto s2s = model.seq2seq()) return s2s->translation_loss(batch, label_smoothing, count_correct);
  return model.module->loss(batch, count_correct);
}

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr double kInitialLossScale = 65536.0;
constexpr int64_t kLossScaleGrowthInterval = 2000;  // torch.cuda.amp.GradScaler's default

}  // namespace

void TrainConfig::validate() const {
  if (batch_size <= 0) throw std::invalid_argument("train config: batchSize must be > 0");
  if (accum_steps <= 0) throw std::invalid_argument("train config: accumSteps must be > 0");
  if (schedule.max_steps <= 0) throw std::invalid_argument("train config: maxSteps must be > 0");
  if (schedule.warmup_steps < 0) throw std::invalid_argument("train config: warmupSteps must be >= 0");
  if (batch_tokens < 0) throw std::invalid_argument("train config: batchTokens must be >= 0 (0: batches of batchSize sequences)");
  if (label_smoothing < 0 || label_smoothing >= 1) throw std::invalid_argument("train config: labelSmoothing must be in [0, 1)");
}

Trainer::Trainer(std::shared_ptr<Model> model, TrainConfig config)
    : model_(std::move(model)), config_(std::move(config)), optimizer_(model_->named_parameters(), config_.adamw) {
  config_.validate();
  if (model_->int8) {
    throw std::invalid_argument("model: an int8 model is for inference; fine-tune the model it was made from (toInt8 returns a copy)");
  }
  if (config_.label_smoothing > 0 && !model_->seq2seq()) {
    throw std::invalid_argument("labelSmoothing: only applies to 'translate' models");
  }
  if (config_.precision == Precision::FP16) {
    if (!model_->device.is_cuda()) {
      throw std::invalid_argument("precision: 'fp16' needs a CUDA device; on CPU use 'bf16' (CPU autocast is bf16 only)");
    }
    loss_scale_ = kInitialLossScale;
  }
}

StepStats Trainer::step(const std::shared_ptr<const Dataset>& data_ptr) {
  const Dataset& data = *data_ptr;
  auto& module = model_->module;
  if (data.max_token_id() >= module->config.vocab_size) {
    throw std::invalid_argument("data: token id " + std::to_string(data.max_token_id()) + " is >= the model's vocabSize (" +
                                std::to_string(module->config.vocab_size) + ")");
  }
  const bool by_tokens = dynamic_cast<const ParallelPairs*>(&data) != nullptr;
  if (by_tokens && config_.batch_tokens == 0)
    throw std::invalid_argument("batchTokens: translation data is batched by token count; set batchTokens");
  if (!by_tokens && config_.batch_tokens > 0) throw std::invalid_argument("batchTokens: only applies to translation (parallel) data");
  const int world = group_ ? group_->size() : 1;
  const int rank = group_ ? group_->rank() : 0;
  const auto start = Clock::now();
  StepStats s;
  s.lr = config_.schedule.at(optimizer_.steps());
  prune_on_schedule(*model_, optimizer_.steps());  // gradual pruning (Zhu & Gupta), when the model has a schedule
  module->train();
  optimizer_.zero_grad();
  const bool fp16 = config_.precision == Precision::FP16;
  for (int64_t m = 0; m < config_.accum_steps; ++m) {
    const int64_t index = optimizer_.steps() * config_.accum_steps + m;
    double waited = 0;
    const int64_t size = config_.batch_tokens > 0 ? config_.batch_tokens : config_.batch_size;
    // Data-parallel: every rank builds the step's whole batch (world x size rows, or for translation the
    // batch of world x batchTokens tokens: a pure function of seed and index) and trains on its own rows, so
    // the ranks together see exactly one process's batch.
    Batch batch = prefetch_.get(data_ptr, index, size * world, config_.seed, &waited);
    const auto t = Clock::now();
    // The task's loss is a mean over the batch's targets (masked tokens, labels, non-pad target tokens); a
    // rank's mean is weighted by its share of them, so the ranks' averaged gradients are the whole batch's.
    double weight = 1.0;
    if (world > 1) {
      const int64_t pad = module->config.pad_id;
      auto targets_of = [&](const Batch& b) {
        return by_tokens ? b.targets.ne(pad).sum().item<double>() : static_cast<double>(b.targets.size(0));
      };
      const double all_targets = targets_of(batch);
      if (by_tokens) {
        // A token-count batch has as many rows as fit: rank r takes the r-th of `world` near-equal slices.
        const int64_t rows = batch.ids.size(0);
        batch = batch.rows(rows * rank / world, rows * (rank + 1) / world - rows * rank / world);
      } else {
        batch = batch.rows(rank * size, size);
      }
      weight = all_targets > 0 ? static_cast<double>(world) * targets_of(batch) / all_targets : 0.0;
    }
    batch = batch.to(model_->device);
    s.data_seconds += waited + since(t);
    uint64_t dropout_seed = mix_seed(config_.seed ^ 0xd1b54a32d192ed03ULL, static_cast<uint64_t>(index));
    if (rank > 0) dropout_seed = mix_seed(dropout_seed, static_cast<uint64_t>(rank));  // each rank's own masks
    module->reseed_dropout(dropout_seed);
    LossResult r;
    if (weight > 0) {  // a rank's share of a small translation batch may hold no rows at all
      AutocastScope autocast(config_.precision, model_->device.type());
      r = batch_loss(*model_, batch, config_.label_smoothing);
    }
    // A share without targets (a rare MLM batch) adds nothing; its missing gradients count as zeros in the
    // all-reduce below.
    // The last micro-batch's backward all-reduces the gradients as they come (earlier ones only accumulate).
    if (reducer_ && m == config_.accum_steps - 1) reducer_->arm();
    if (weight > 0) {
      auto scaled =
          world == 1 ? r.loss / static_cast<double>(config_.accum_steps) : r.loss * (weight / static_cast<double>(config_.accum_steps));
      if (fp16) scaled = scaled * loss_scale_;
      scaled.backward();
      s.loss += r.loss.item<double>() * weight / static_cast<double>(config_.accum_steps);
    }
    s.tokens += batch.tokens;
    s.targets += r.count;
  }

  // Data-parallel: the mean of the ranks' gradients, once per update, started bucket by bucket during the
  // last micro-batch's backward and completed here, before the norm: clipping then sees the whole batch's
  // gradient on every rank.
  torch::NoGradGuard no_grad;
  if (reducer_) reducer_->finish();
  // Global gradient norm (as torch.nn.utils.clip_grad_norm_: one norm per tensor, then their norm); under
  // fp16 the gradients still carry the loss scale, so the norm is divided by it.
  std::vector<torch::Tensor> grads;
  for (const auto& [name, p] : optimizer_.params())
    if (p.grad().defined()) grads.push_back(p.grad());
  const double unscale = fp16 ? loss_scale_ : 1.0;
  s.grad_norm = grads.empty() ? 0.0 : torch::stack(at::_foreach_norm(grads, 2)).to(torch::kFloat).norm(2).item<double>() / unscale;
  const bool finite = std::isfinite(s.grad_norm);
  if (!finite) {
    // Never apply a NaN/inf update: it would corrupt every weight silently. Under fp16 this is an
    // overflow (halve the scale, GradScaler's policy); otherwise the step is reported as skipped and
    // the loss/grad norm tell the caller the run diverged.
    if (fp16) loss_scale_ /= 2.0;
    good_steps_ = 0;
    s.skipped = true;
    optimizer_.zero_grad();
  } else {
    // Clipping and the loss scale's removal are one division inside the optimizer's kernel.
    double grad_scale = unscale;
    if (config_.clip_norm > 0 && s.grad_norm > config_.clip_norm) grad_scale /= config_.clip_norm / (s.grad_norm + 1e-6);
    begin_update(*model_);  // quantized weights: the update goes to the full-precision latent weights
    optimizer_.step(s.lr, grad_scale);
    end_update(*model_);  // masks re-applied, weights re-quantized
    if (fp16 && ++good_steps_ % kLossScaleGrowthInterval == 0) loss_scale_ *= 2.0;
  }
  s.step = optimizer_.steps();
  // On a GPU the optimizer's kernels are still queued here: wait for them, so a step's seconds are its own
  // (not partly the next step's, whose first .item() would wait for them) and a step ends with its update done.
  if (model_->device.is_cuda()) torch::cuda::synchronize(model_->device.index());
  s.seconds = since(start);
  if (world > 1) {
    // The step as one process would report it, the same on every rank (budgets decide alike everywhere):
    // the whole batch's loss, tokens and targets; the slowest rank's seconds.
    auto row =
        torch::tensor({s.loss, static_cast<double>(s.tokens), static_cast<double>(s.targets), s.seconds, s.data_seconds}, torch::kFloat64);
    auto all = group_->gather(row);
    s.loss = all.select(1, 0).sum().item<double>() / world;
    s.tokens = static_cast<int64_t>(all.select(1, 1).sum().item<double>());
    s.targets = static_cast<int64_t>(all.select(1, 2).sum().item<double>());
    s.seconds = all.select(1, 3).max().item<double>();
    s.data_seconds = all.select(1, 4).max().item<double>();
    std::tie(s.comm_seconds, s.comm_bytes) = group_->take_comm_stats();
  }
  return s;
}

void Trainer::set_group(std::shared_ptr<DistGroup> group) {
  reducer_.reset();  // its hooks go before another's come
  group_ = std::move(group);
  if (group_ && group_->size() > 1) {
    std::vector<torch::Tensor> params;
    for (const auto& [name, p] : optimizer_.params()) params.push_back(p);
    reducer_ = std::make_unique<GradReducer>(group_, std::move(params));
  }
}

std::vector<double> Trainer::sync_state(std::vector<double> extra) {
  if (!group_ || group_->size() == 1) return extra;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors;
  for (const auto& [name, p] : model_->named_parameters()) tensors.push_back(p);
  auto state = optimizer_.state();
  for (const auto& [name, t] : state) tensors.push_back(t);
  group_->broadcast(tensors);
  std::vector<double> head{static_cast<double>(optimizer_.steps()), loss_scale_, static_cast<double>(good_steps_)};
  head.insert(head.end(), extra.begin(), extra.end());
  auto h = torch::tensor(head, torch::kFloat64);
  group_->broadcast({h});
  std::map<std::string, torch::Tensor> by_name(state.begin(), state.end());
  optimizer_.load_state(by_name, static_cast<int64_t>(h[0].item<double>()));
  loss_scale_ = h[1].item<double>();
  good_steps_ = static_cast<int64_t>(h[2].item<double>());
  for (size_t i = 0; i < extra.size(); ++i) extra[i] = h[static_cast<int64_t>(3 + i)].item<double>();
  return extra;
}

void Trainer::save_state(const std::string& path) const {
  NamedTensors all;
  for (const auto& [name, p] : model_->named_parameters()) all.emplace_back("model/" + name, p);
  for (auto& entry : optimizer_.state()) all.push_back(std::move(entry));
  save_safetensors(path, all,
                   {{"format", "trainlarge-trainer-state"},
                    {"step", std::to_string(optimizer_.steps())},
                    {"loss_scale", std::to_string(loss_scale_)},
                    {"good_steps", std::to_string(good_steps_)}});
}

void Trainer::load_state(const std::string& path) {
  auto file = load_safetensors(path);
  if (file.metadata["format"] != "trainlarge-trainer-state") throw std::runtime_error(path + ": not a trainlarge trainer state file");
  std::map<std::string, torch::Tensor> weights;
  for (const auto& [name, t] : file.tensors)
    if (name.rfind("model/", 0) == 0) weights.emplace(name.substr(6), t);
  model_->load_weights(weights, /*strict=*/true);
  optimizer_.load_state(file.tensors, std::stoll(file.metadata["step"]));
  loss_scale_ = std::stod(file.metadata["loss_scale"]);
  good_steps_ = std::stoll(file.metadata["good_steps"]);
}

EvalResult evaluate(Model& model, const Dataset& data, int64_t batch_size, int64_t max_samples, uint64_t seed, Precision precision,
                    DistGroup* group) {
  auto& module = model.module;
  if (data.max_token_id() >= module->config.vocab_size) {
    throw std::invalid_argument("data: token id " + std::to_string(data.max_token_id()) + " is >= the model's vocabSize");
  }
  if (batch_size <= 0) throw std::invalid_argument("batchSize: must be > 0");
  const auto start = Clock::now();
  torch::NoGradGuard no_grad;
  const bool was_training = module->is_training();
  module->eval();
  const int64_t n = max_samples > 0 ? std::min(max_samples, data.size()) : data.size();
  EvalResult r;
  double loss_sum = 0, mask_loss_sum = 0;
  // Masked-LM data on an MLM model: the loss on <mask>-replaced inputs apart, and the targets counted.
  const auto* mlm = dynamic_cast<const MlmBlocks*>(&data);
  const bool split_mask = mlm != nullptr && module->mlm_head && !model.seq2seq();
  torch::Tensor targets_hist, mask_hist;
  if (split_mask) {
    targets_hist = torch::zeros({module->config.vocab_size}, torch::kFloat64);
    mask_hist = torch::zeros({module->config.vocab_size}, torch::kFloat64);
  }
  const int64_t world = group ? group->size() : 1, rank = group ? group->rank() : 0;
  for (int64_t first = batch_size * rank; first < n; first += batch_size * world) {
    const int64_t count = std::min(batch_size, n - first);
    Batch batch = data.eval_batch(first, count, seed).to(model.device);
    AutocastScope autocast(precision, model.device.type());
    LinearHookScope int8_scope(model.int8.get());
    LossResult l = split_mask ? module->loss(batch, /*count_correct=*/true, /*per_target=*/true)
                              : batch_loss(model, batch, /*label_smoothing=*/0.0, /*count_correct=*/true);
    loss_sum += l.loss.item<double>() * static_cast<double>(l.count);
    r.count += l.count;
    r.correct += l.correct;
    r.samples += count;
    if (split_mask && l.count > 0) {
      auto is_mask = batch.ids.reshape({-1}).index_select(0, batch.positions).eq(mlm->options().mask_id).cpu();
      auto targets = batch.targets.cpu();
      auto per = l.per_target.to(torch::kFloat64).cpu();
      mask_loss_sum += per.masked_select(is_mask).sum().item<double>();
      r.mask_count += is_mask.sum().item<int64_t>();
      targets_hist.index_add_(0, targets, torch::ones({targets.size(0)}, torch::kFloat64));
      auto masked_targets = targets.masked_select(is_mask);
      mask_hist.index_add_(0, masked_targets, torch::ones({masked_targets.size(0)}, torch::kFloat64));
    }
  }
  if (was_training) module->train();
  if (world > 1) {
    // The ranks' sums (and histograms), in rank order, added up: float64, so the totals are the one-process
    // totals up to the order of the additions.
    const int64_t V = split_mask ? module->config.vocab_size : 0;
    auto row = torch::zeros({6 + 2 * V}, torch::kFloat64);
    auto* v = row.data_ptr<double>();
    v[0] = loss_sum, v[1] = static_cast<double>(r.count), v[2] = static_cast<double>(r.correct);
    v[3] = static_cast<double>(r.samples), v[4] = mask_loss_sum, v[5] = static_cast<double>(r.mask_count);
    if (split_mask) {
      row.narrow(0, 6, V).copy_(targets_hist);
      row.narrow(0, 6 + V, V).copy_(mask_hist);
    }
    auto total = group->gather(row).sum(0).contiguous();
    const auto* t = total.data_ptr<double>();
    loss_sum = t[0], mask_loss_sum = t[4];
    r.count = static_cast<int64_t>(std::llround(t[1])), r.correct = static_cast<int64_t>(std::llround(t[2]));
    r.samples = static_cast<int64_t>(std::llround(t[3])), r.mask_count = static_cast<int64_t>(std::llround(t[5]));
    if (split_mask) {
      targets_hist = total.narrow(0, 6, V).clone();
      mask_hist = total.narrow(0, 6 + V, V).clone();
    }
  }
  r.loss = r.count > 0 ? loss_sum / static_cast<double>(r.count) : 0.0;
  if (split_mask) {
    r.mask_loss = r.mask_count > 0 ? mask_loss_sum / static_cast<double>(r.mask_count) : 0.0;
    r.target_counts.assign(targets_hist.data_ptr<double>(), targets_hist.data_ptr<double>() + targets_hist.numel());
    r.mask_target_counts.assign(mask_hist.data_ptr<double>(), mask_hist.data_ptr<double>() + mask_hist.numel());
  }
  r.seconds = since(start);
  return r;
}

}  // namespace trainlarge
