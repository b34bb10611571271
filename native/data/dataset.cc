#include "data/dataset.h"

#include <limits>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>

namespace trainlarge {

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

const std::vector<int64_t>& Dataset::permutation(int64_t epoch, uint64_t seed) const {
  if (epoch != cached_epoch_ || seed != cached_seed_) {
    cached_perm_.resize(size());
    std::iota(cached_perm_.begin(), cached_perm_.end(), 0);
    std::mt19937_64 rng(mix_seed(seed, static_cast<uint64_t>(epoch)));
    // Fisher-Yates written out: std::shuffle's algorithm is the library's choice, this one is ours.
    for (int64_t i = size() - 1; i > 0; --i) {
      const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
      std::swap(cached_perm_[i], cached_perm_[j]);
    }
    cached_epoch_ = epoch;
    cached_seed_ = seed;
  }
  return cached_perm_;
}

Batch Dataset::train_batch(int64_t index, int64_t batch_size, uint64_t seed) const {
  if (size() == 0) throw std::invalid_argument("dataset: it holds no samples");
  std::vector<int64_t> samples(batch_size);
  std::vector<uint64_t> seeds(batch_size);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int64_t b = 0; b < batch_size; ++b) {
      const int64_t j = index * batch_size + b;  // position in the endless stream
      samples[b] = permutation(j / size(), seed)[j % size()];
      seeds[b] = mix_seed(seed ^ 0x5bd1e995ULL, static_cast<uint64_t>(j));
    }
  }
  return build(samples, seeds);
}

Batch Dataset::eval_batch(int64_t first, int64_t count, uint64_t seed) const {
  if (first < 0 || count <= 0 || first + count > size()) throw std::out_of_range("dataset: eval range outside the dataset");
  std::vector<int64_t> samples(count);
  std::vector<uint64_t> seeds(count);
  for (int64_t i = 0; i < count; ++i) {
    samples[i] = first + i;
    seeds[i] = mix_seed(seed, static_cast<uint64_t>(first + i));
  }
  return build(samples, seeds);
}

MlmBlocks::MlmBlocks(TokenStream tokens, MlmOptions options) : tokens_(std::move(tokens)), options_(std::move(options)) {
  const auto& o = options_;
  if (o.max_len < 2) throw std::invalid_argument("maxLen: must be >= 2");
  num_blocks_ = tokens_.size() / (o.max_len - 1);
  if (num_blocks_ == 0) {
    throw std::invalid_argument("tokens: " + std::to_string(tokens_.size()) + " tokens make no block of " + std::to_string(o.max_len - 1) +
                                " (+ cls); give more text or a smaller maxLen");
  }
  max_id_ = tokens_.max_id();
  max_id_ = std::max({max_id_, o.mask_id, o.cls_id});
  special_ids_ = torch::tensor(o.special_ids, torch::kLong);
  auto all = torch::arange(o.vocab_size, torch::kLong);
  normal_ids_ = all.masked_select(torch::isin(all, special_ids_).logical_not());
  if (normal_ids_.numel() == 0) throw std::invalid_argument("specialIds: every id is special; nothing to mask");
}

Batch MlmBlocks::build(const std::vector<int64_t>& samples, const std::vector<uint64_t>& row_seeds) const {
  const int64_t B = static_cast<int64_t>(samples.size()), L = options_.max_len, n = L - 1;
  auto ids = torch::empty({B, L}, torch::kLong);
  auto dst = ids.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    dst[b * L] = options_.cls_id;
    tokens_.copy(samples[b] * n, n, dst + b * L + 1);
  }
  return mask(ids, row_seeds);
}

Batch MlmBlocks::mask(const torch::Tensor& ids, const std::vector<uint64_t>& row_seeds) const {
  const int64_t B = ids.size(0), T = ids.size(1);
  auto u = torch::empty({B, 2, T}, torch::kFloat);
  auto pick = torch::empty({B, T}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {  // one generator per row: masks do not depend on the batch size
    auto gen = at::make_generator<at::CPUGeneratorImpl>(row_seeds[b]);
    u[b].uniform_(0, 1, gen);
    pick[b].random_(0, normal_ids_.size(0), gen);
  }
  auto selectable = torch::isin(ids, special_ids_).logical_not();
  auto selected = u.select(1, 0).lt(options_.mask_prob).logical_and_(selectable);
  if (!selected.any().item<bool>()) {  // a batch must have a target: take the first selectable token
    auto first = selectable.flatten().nonzero();
    if (first.size(0) == 0) throw std::invalid_argument("tokens: a batch holds only special tokens");
    selected.view({-1})[first[0][0]] = true;
  }
  auto r = u.select(1, 1);
  auto to_mask = selected.logical_and(r.lt(options_.mask_token_prob));
  auto to_random =
      selected.logical_and(r.ge(options_.mask_token_prob)).logical_and_(r.lt(options_.mask_token_prob + options_.random_token_prob));
  Batch batch;
  batch.positions = selected.flatten().nonzero().squeeze(1);
  batch.targets = ids.flatten().index_select(0, batch.positions);
  auto inputs = ids.clone();
  inputs.masked_fill_(to_mask, options_.mask_id);
  inputs = torch::where(to_random, normal_ids_.index_select(0, pick.flatten()).view({B, T}), inputs);
  batch.ids = inputs;
  batch.tokens = B * T;
  return batch;
}

LabelledSequences::LabelledSequences(torch::Tensor tokens, torch::Tensor offsets, torch::Tensor labels, int64_t max_len, int64_t pad_id)
    : tokens_(tokens.to(torch::kLong).contiguous()),
      offsets_(offsets.to(torch::kLong).contiguous()),
      labels_(labels.to(torch::kLong).contiguous()),
      max_len_(max_len),
      pad_id_(pad_id) {
  if (tokens_.dim() != 1 || offsets_.dim() != 1 || labels_.dim() != 1)
    throw std::invalid_argument("dataset: tokens, offsets and labels must be 1-D");
  if (offsets_.size(0) != labels_.size(0) + 1) throw std::invalid_argument("offsets: need one more entry than labels");
  if (labels_.size(0) == 0) throw std::invalid_argument("labels: the dataset is empty");
  auto o = offsets_.data_ptr<int64_t>();
  if (o[0] != 0 || o[offsets_.size(0) - 1] != tokens_.size(0))
    throw std::invalid_argument("offsets: must start at 0 and end at the token count");
  for (int64_t i = 0; i + 1 < offsets_.size(0); ++i) {
    if (o[i + 1] <= o[i]) throw std::invalid_argument("offsets: sequence " + std::to_string(i) + " is empty or offsets decrease");
  }
  if (labels_.min().item<int64_t>() < 0) throw std::invalid_argument("labels: must be >= 0");
  num_labels_ = labels_.max().item<int64_t>() + 1;
  max_id_ = std::max(tokens_.max().item<int64_t>(), pad_id_);
}

Batch LabelledSequences::build(const std::vector<int64_t>& samples, const std::vector<uint64_t>&) const {
  const int64_t B = static_cast<int64_t>(samples.size());
  auto o = offsets_.data_ptr<int64_t>();
  int64_t T = 1;
  for (auto s : samples) T = std::max(T, std::min(o[s + 1] - o[s], max_len_));
  auto ids = torch::full({B, T}, pad_id_, torch::kLong);
  auto mask = torch::zeros({B, T}, torch::kBool);
  auto labels = torch::empty({B}, torch::kLong);
  auto lab = labels.data_ptr<int64_t>();
  auto all_labels = labels_.data_ptr<int64_t>();
  auto src = tokens_.data_ptr<int64_t>();
  auto dst = ids.data_ptr<int64_t>();
  auto m = mask.data_ptr<bool>();
  Batch batch;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = samples[b], len = std::min(o[s + 1] - o[s], max_len_);
    std::copy_n(src + o[s], len, dst + b * T);
    std::fill_n(m + b * T, len, true);
    lab[b] = all_labels[s];
    batch.tokens += len;
  }
  batch.ids = ids;
  batch.attention_mask = mask;
  batch.targets = labels;
  return batch;
}

namespace {

std::vector<int64_t> to_vector(const torch::Tensor& t, const char* field) {
  if (t.dim() != 1) throw std::invalid_argument(std::string(field) + ": must be 1-D");
  auto c = t.to(torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

void check_offsets(const std::vector<int64_t>& o, size_t tokens, const char* field) {
  if (o.empty() || o.front() != 0 || o.back() != static_cast<int64_t>(tokens))
    throw std::invalid_argument(std::string(field) + ": must start at 0 and end at the token count");
  for (size_t i = 0; i + 1 < o.size(); ++i) {
    if (o[i + 1] < o[i]) throw std::invalid_argument(std::string(field) + ": offsets decrease at pair " + std::to_string(i));
  }
}

}  // namespace

namespace {

int32_t clamp32(int64_t n) { return static_cast<int32_t>(std::min<int64_t>(n, std::numeric_limits<int32_t>::max())); }

// A side given as a concatenation of sentences and their offsets (sentences + 1).
ParallelPairs::Side side_of(const torch::Tensor& tokens, const torch::Tensor& offsets_tensor, const char* field) {
  const auto offsets = to_vector(offsets_tensor, field);
  auto stream = TokenStream::from_tensor(tokens);
  check_offsets(offsets, static_cast<size_t>(stream.size()), field);
  ParallelPairs::Side side{std::move(stream), std::vector<int64_t>(offsets.begin(), offsets.end() - 1),
                           std::vector<int32_t>(offsets.size() - 1)};
  for (size_t i = 0; i + 1 < offsets.size(); ++i) side.length[i] = clamp32(offsets[i + 1] - offsets[i]);
  return side;
}

// A side given as shards where each sentence ends with EOS.
ParallelPairs::Side side_of_shards(const std::vector<std::string>& paths, int64_t eos, const char* which) {
  ParallelPairs::Side side{TokenStream::map_shards(paths), {}, {}};
  const auto& s = side.stream;
  std::vector<int64_t> buf(int64_t{1} << 20);
  int64_t first = 0;
  for (int64_t at = 0; at < s.size(); at += static_cast<int64_t>(buf.size())) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(buf.size()), s.size() - at);
    s.copy(at, n, buf.data());
    for (int64_t k = 0; k < n; ++k) {
      if (buf[k] != eos) continue;
      side.start.push_back(first);
      side.length.push_back(clamp32(at + k - first));
      first = at + k + 1;
    }
  }
  if (first != s.size())
    throw std::invalid_argument(std::string(which) + " shards: the last sentence does not end with EOS (a truncated shard?)");
  return side;
}

}  // namespace

ParallelPairs::ParallelPairs(torch::Tensor source, torch::Tensor source_offsets, torch::Tensor target, torch::Tensor target_offsets,
                             ParallelOptions options)
    : ParallelPairs(side_of(source, source_offsets, "sourceOffsets"), side_of(target, target_offsets, "targetOffsets"), options) {}

ParallelPairs::ParallelPairs(Side source, Side target, ParallelOptions options)
    : src_(std::move(source.stream)),
      tgt_(std::move(target.stream)),
      src_start_(std::move(source.start)),
      tgt_start_(std::move(target.start)),
      options_(options) {
  if (options_.max_len < 2) throw std::invalid_argument("maxLen: must be >= 2 (one token and EOS)");
  if (src_start_.size() != tgt_start_.size())
    throw std::invalid_argument("pairs: " + std::to_string(src_start_.size()) + " source sentences but " +
                                std::to_string(tgt_start_.size()) + " target sentences");
  if (src_start_.empty()) throw std::invalid_argument("pairs: the dataset is empty");
  const auto n = src_start_.size();
  src_len_.reserve(n);
  tgt_len_.reserve(n);
  for (size_t i = 0; i < n; ++i) {  // each side truncated to max_len - 1 tokens, then EOS
    src_len_.push_back(static_cast<int32_t>(std::min<int64_t>(source.length[i], options_.max_len - 1) + 1));
    tgt_len_.push_back(static_cast<int32_t>(std::min<int64_t>(target.length[i], options_.max_len - 1) + 1));
  }
  max_id_ = std::max({options_.pad_id, options_.eos_id, src_.max_id(), tgt_.max_id()});
}

std::shared_ptr<ParallelPairs> ParallelPairs::from_shards(const std::vector<std::string>& source, const std::vector<std::string>& target,
                                                          ParallelOptions options) {
  return std::shared_ptr<ParallelPairs>(
      new ParallelPairs(side_of_shards(source, options.eos_id, "source"), side_of_shards(target, options.eos_id, "target"), options));
}

const std::vector<std::vector<int64_t>>& ParallelPairs::plan(int64_t batch_tokens, uint64_t seed) const {
  if (batch_tokens < options_.max_len) {
    throw std::invalid_argument("batchTokens: must be >= maxLen (" + std::to_string(options_.max_len) + ") so the longest pair fits, got " +
                                std::to_string(batch_tokens));
  }
  if (batch_tokens == plan_tokens_ && seed == plan_seed_) return plan_;
  // fairseq's ordered_indices: a seeded shuffle, then a stable sort by length, so pairs of one length
  // land in batches in a seeded order.
  std::vector<int64_t> order(size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(mix_seed(seed, 0x7f4a7c15ULL));
  for (int64_t i = size() - 1; i > 0; --i) std::swap(order[i], order[static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1))]);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return length(a) < length(b); });
  // fairseq's batch_by_size: add pairs while (pairs + 1) x longest <= batch_tokens.
  plan_.clear();
  std::vector<int64_t> current;
  int64_t longest = 0;
  for (auto i : order) {
    const int64_t l = std::max(longest, length(i));
    if (!current.empty() && l * static_cast<int64_t>(current.size() + 1) > batch_tokens) {
      plan_.push_back(std::move(current));
      current.clear();
      longest = 0;
    }
    current.push_back(i);
    longest = std::max(longest, length(i));
  }
  if (!current.empty()) plan_.push_back(std::move(current));
  plan_tokens_ = batch_tokens;
  plan_seed_ = seed;
  order_epoch_ = -1;
  return plan_;
}

Batch ParallelPairs::train_batch(int64_t index, int64_t batch_tokens, uint64_t seed) const {
  if (index < 0) throw std::invalid_argument("index: must be >= 0");
  std::vector<int64_t> samples;
  {
    std::lock_guard<std::mutex> lock(plan_mutex_);
    const auto& batches = plan(batch_tokens, seed);
    const auto count = static_cast<int64_t>(batches.size());
    const int64_t epoch = index / count;
    if (epoch != order_epoch_) {  // this epoch's order of the batches
      order_.resize(count);
      std::iota(order_.begin(), order_.end(), 0);
      std::mt19937_64 rng(mix_seed(seed, static_cast<uint64_t>(epoch)));
      for (int64_t i = count - 1; i > 0; --i) std::swap(order_[i], order_[static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1))]);
      order_epoch_ = epoch;
    }
    samples = batches[order_[index % count]];
  }
  return build(samples, {});
}

BatchPlanStats ParallelPairs::plan_stats(int64_t batch_tokens, uint64_t seed) const {
  std::lock_guard<std::mutex> lock(plan_mutex_);
  BatchPlanStats s;
  for (const auto& b : plan(batch_tokens, seed)) {
    int64_t S = 0, T = 0;
    for (auto i : b) {
      S = std::max<int64_t>(S, src_len_[i]);
      T = std::max<int64_t>(T, tgt_len_[i]);
      s.source_tokens += src_len_[i];
      s.target_tokens += tgt_len_[i];
    }
    const auto B = static_cast<int64_t>(b.size());
    s.source_padded += B * S;
    s.target_padded += B * T;
    s.max_batch_tokens = std::max(s.max_batch_tokens, B * std::max(S, T));
    s.pairs += B;
    ++s.batches;
  }
  return s;
}

Batch ParallelPairs::build(const std::vector<int64_t>& samples, const std::vector<uint64_t>&) const {
  const auto B = static_cast<int64_t>(samples.size());
  int64_t S = 1, T = 1;
  for (auto i : samples) {
    S = std::max<int64_t>(S, src_len_[i]);
    T = std::max<int64_t>(T, tgt_len_[i]);
  }
  auto ids = torch::full({B, S}, options_.pad_id, torch::kLong);
  auto mask = torch::zeros({B, S}, torch::kBool);
  auto targets = torch::full({B, T}, options_.pad_id, torch::kLong);
  auto src = ids.data_ptr<int64_t>();
  auto m = mask.data_ptr<bool>();
  auto tgt = targets.data_ptr<int64_t>();
  Batch batch;
  bool padded = false;
  for (int64_t b = 0; b < B; ++b) {
    const auto i = samples[b];
    const int64_t ls = src_len_[i], lt = tgt_len_[i];
    src_.copy(src_start_[i], ls - 1, src + b * S);
    src[b * S + ls - 1] = options_.eos_id;
    std::fill_n(m + b * S, ls, true);
    tgt_.copy(tgt_start_[i], lt - 1, tgt + b * T);
    tgt[b * T + lt - 1] = options_.eos_id;
    padded = padded || ls < S;
    batch.tokens += ls + lt;
  }
  batch.ids = ids;
  if (padded) batch.attention_mask = mask;
  batch.targets = targets;
  return batch;
}

}  // namespace trainlarge
