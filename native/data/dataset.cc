#include "data/dataset.h"

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

}  // namespace trainlarge
