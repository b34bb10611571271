// The engine on its own, without Node: trains a small masked-LM Transformer on the bytes of a real text
// file, evaluates it, removes half its heads and FFN units (structured), prunes and quantizes it, saves
// the files and loads them back. Links only the engine library (trainlarge_engine) and libtorch;
// test/engine.test.ts runs it and reads its report.
//
//   trainlarge_engine_test TEXT_FILE OUT_DIR     prints one JSON line; exit 1 on a failed check
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/runtime.h"
#include "data/dataset.h"
#include "engine/compression.h"
#include "engine/model.h"
#include "engine/packed.h"
#include "io/safetensors.h"
#include "models/dropout.h"
#include "train/trainer.h"

namespace tl = trainlarge;

namespace {

// Byte-level ids as lib/data/tokens.ts's ByteTokenizer lays them out: 5 special ids, then byte + 5.
constexpr int64_t kSpecial = 5, kVocab = 256 + kSpecial, kPad = 0, kCls = 1, kMask = 4;

torch::Tensor byte_ids(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto ids = torch::empty({static_cast<int64_t>(text.size())}, torch::kLong);
  auto* p = ids.data_ptr<int64_t>();
  for (size_t i = 0; i < text.size(); ++i) p[i] = static_cast<unsigned char>(text[i]) + kSpecial;
  return ids;
}

void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("check failed: " + what);
}

// tl::AdamW (libtorch's fused kernel, the decayed and the other parameters in two calls, clipping through
// grad_scale) against torch.optim.AdamW's arithmetic written out op by op, over three steps with one
// parameter left without a gradient. Returns the largest absolute difference.
double adamw_difference() {
  torch::NoGradGuard no_grad;
  const tl::AdamWOptions o{0.9, 0.98, 1e-6, 0.01};
  const double lr = 1e-2, grad_scale = 2.5;
  tl::NamedTensors params = {{"w", torch::randn({8, 5})}, {"b", torch::randn({5})}, {"idle", torch::randn({3, 3})}};
  std::vector<torch::Tensor> ref, m, v;
  for (auto& [name, p] : params) {
    ref.push_back(p.clone());
    m.push_back(torch::zeros_like(p));
    v.push_back(torch::zeros_like(p));
  }
  tl::AdamW opt(params, o);
  double worst = 0;
  for (int step = 1; step <= 3; ++step) {
    for (size_t i = 0; i < 2; ++i) params[i].second.mutable_grad() = torch::randn_like(params[i].second);
    for (size_t i = 0; i < 2; ++i) {
      const auto g = params[i].second.grad() / grad_scale;
      if (tl::decays(ref[i])) ref[i].mul_(1.0 - lr * o.weight_decay);
      m[i].mul_(o.beta1).add_(g, 1.0 - o.beta1);
      v[i].mul_(o.beta2).addcmul_(g, g, 1.0 - o.beta2);
      const auto denom = (v[i].sqrt() / std::sqrt(1.0 - std::pow(o.beta2, step))).add_(o.eps);
      ref[i].addcdiv_(m[i], denom, -lr / (1.0 - std::pow(o.beta1, step)));
    }
    opt.step(lr, grad_scale);
    for (size_t i = 0; i < params.size(); ++i) worst = std::max(worst, (params[i].second - ref[i]).abs().max().item<double>());
  }
  check(opt.steps() == 3, "the optimizer counts its steps");
  return worst;
}

// Attention without dropout goes through libtorch's fused scaled_dot_product_attention, with dropout
// through the explicit product: both must give the same output and gradients (a padding mask included).
// p = 1e-9 takes the explicit path and drops nothing here. Returns the largest difference.
double attention_paths_difference() {
  tl::ModelConfig c;
  c.vocab_size = 16;
  c.max_len = 24;
  c.d_model = 32;
  c.heads = 4;
  c.ffn = 64;
  c.layers = 1;
  tl::SelfAttention attn(c);
  attn->train();
  const auto x = torch::randn({3, 24, 32});
  auto bias = torch::zeros({3, 1, 1, 24});
  bias.narrow(3, 20, 4).fill_(-1e9);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  auto run = [&](double p) {
    attn->attention_dropout = p;
    attn->dropout_p = 0;
    attn->zero_grad();
    auto xi = x.clone().requires_grad_(true);
    auto y = attn->forward(xi, bias, gen);
    (y * y).sum().backward();
    return std::vector<torch::Tensor>{y.detach(), xi.grad(), attn->qkv->weight.grad().clone(), attn->proj->weight.grad().clone()};
  };
  const auto fused = run(0.0), explicit_ = run(1e-9);
  double worst = 0;
  for (size_t i = 0; i < fused.size(); ++i) worst = std::max(worst, (fused[i] - explicit_[i]).abs().max().item<double>());
  return worst;
}

// The fused dropout: the kept share, the scale, a backward that is the forward's mask, and the same mask
// for the same generator state whatever the thread count. Returns the kept share.
double dropout_keep_share() {
  const double p = 0.1;
  auto x = torch::ones({64, 128, 33}, torch::requires_grad());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  auto y = tl::dropout(x, p, /*training=*/true, gen);
  y.sum().backward();
  const auto kept = y.ne(0);
  const double share = kept.to(torch::kDouble).mean().item<double>();
  check(std::abs(share - (1 - p)) < 0.005, "dropout keeps 1 - p of the elements");
  check(torch::allclose(y.masked_select(kept), torch::full({}, 1 / (1 - p))), "dropout scales the kept elements by 1 / (1 - p)");
  check(torch::equal(x.grad(), y.detach()), "dropout's gradient is its mask times the scale");
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  gen.set_current_seed(7);
  const auto again = tl::dropout(x.detach(), p, true, gen);
  at::set_num_threads(threads);
  check(torch::equal(again, y.detach()), "dropout's mask depends on the generator only, not on the thread count");
  check(!torch::equal(tl::dropout(x.detach(), p, true, gen), y.detach()), "the next call draws another mask");
  return share;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: trainlarge_engine_test TEXT_FILE OUT_DIR\n";
    return 2;
  }
  try {
    torch::manual_seed(0);
    const auto ids = byte_ids(argv[1]);
    const auto n = ids.numel();
    const auto split = n * 9 / 10;
    tl::MlmOptions mlm;
    mlm.max_len = 32;
    mlm.mask_prob = 0.15;
    mlm.mask_token_prob = 0.8;
    mlm.random_token_prob = 0.1;
    mlm.mask_id = kMask;
    mlm.cls_id = kCls;
    mlm.vocab_size = kVocab;
    mlm.special_ids = {0, 1, 2, 3, 4};
    auto train = std::make_shared<tl::MlmBlocks>(tl::TokenStream::from_tensor(ids.narrow(0, 0, split)), mlm);
    const auto valid = std::make_shared<tl::MlmBlocks>(tl::TokenStream::from_tensor(ids.narrow(0, split, n - split)), mlm);

    tl::ModelConfig config;
    config.vocab_size = kVocab;
    config.max_len = mlm.max_len;
    config.d_model = 64;
    config.layers = 2;
    config.heads = 4;
    config.ffn = 128;
    config.dropout = 0.1;
    config.attention_dropout = 0.1;
    config.layer_norm_eps = 1e-5;
    config.pad_id = kPad;
    auto model = std::make_shared<tl::Model>(config, /*seed=*/1, torch::Device(torch::kCPU));

    tl::TrainConfig tc;
    tc.schedule.lr = 2e-3;
    tc.schedule.warmup_steps = 10;
    tc.schedule.max_steps = 60;
    tc.adamw = {0.9, 0.98, 1e-6, 0.01};
    tc.clip_norm = 1.0;
    tc.batch_size = 16;
    tc.seed = 1;
    const auto eval = [&](tl::Model& m) { return tl::evaluate(m, *valid, 32, 256, /*seed=*/1234, tl::Precision::FP32).loss; };
    const double before = eval(*model);
    tl::Trainer trainer(model, tc);
    double first = 0, last = 0;
    for (int64_t s = 0; s < tc.schedule.max_steps; ++s) {
      const auto stats = trainer.step(train);
      check(std::isfinite(stats.loss) && !stats.skipped, "finite training loss");
      if (s == 0) first = stats.loss;
      last = stats.loss;
    }
    trainer.release_data();
    const double after = eval(*model);
    check(after < before - 0.5, "validation loss falls by more than 0.5 nats");

    std::filesystem::create_directories(argv[2]);
    // Structured pruning: half the heads and half the feed-forward units go; the matrices shrink.
    tl::PruneOptions structured;
    structured.structure = tl::PruneStructure::HeadsFfn;
    structured.sparsity = 0.5;
    const auto smaller = tl::prune_structured(*model, structured);
    const auto& sc = smaller->config();
    check(sc.heads == 2 && sc.head_size() == 16 && sc.ffn == 64, "structured pruning keeps 2 heads of width 16 and 64 units");
    const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {{"layers.1.attn.qkv.weight", {96, 64}},
                                                                              {"layers.1.attn.proj.weight", {64, 32}},
                                                                              {"layers.1.ffn.fc1.weight", {64, 64}},
                                                                              {"layers.1.ffn.fc2.weight", {64, 64}}};
    for (const auto& [name, shape] : shapes) check(smaller->parameter(name).sizes() == torch::IntArrayRef(shape), name + " shrank");
    const double structured_loss = eval(*smaller);
    check(std::isfinite(structured_loss), "the smaller model evaluates");
    const std::string small_file = std::string(argv[2]) + "/smaller.safetensors";
    smaller->save(small_file, {{"trainlarge_config", "engine test"}});
    auto small_loaded = std::make_shared<tl::Model>(sc, /*seed=*/7, torch::Device(torch::kCPU));
    small_loaded->load_file(tl::load_safetensors(small_file), /*strict=*/true);
    const auto sample = ids.narrow(0, split, 2 * mlm.max_len).view({2, mlm.max_len});
    check(torch::equal(smaller->predict(sample, {}, tl::Precision::FP32), small_loaded->predict(sample, {}, tl::Precision::FP32)),
          "the smaller model reloads to identical logits");
    const auto small_bytes = static_cast<int64_t>(std::filesystem::file_size(small_file));

    // Compress as the paper does: half the weights pruned, the rest on a 4-bit grid.
    tl::PruneOptions prune;
    prune.sparsity = 0.5;
    prune.targets = {/*attention=*/true, /*ffn=*/true, /*embeddings=*/false};
    tl::prune(*model, prune);
    tl::QuantizeOptions quantize;
    quantize.bits = 4;
    quantize.targets = prune.targets;
    tl::quantize(*model, quantize);
    const auto summary = tl::summarize(*model);
    check(summary.pruned.size() == 8 && summary.quantized.size() == 8, "8 weight matrices pruned and quantized");
    const double compressed = eval(*model);

    const std::string file = std::string(argv[2]) + "/model.safetensors";
    model->save(file, {{"trainlarge_config", "engine test"}});
    const auto size = tl::file_size(*model, {{"trainlarge_config", "engine test"}});
    const auto on_disk = static_cast<int64_t>(std::filesystem::file_size(file));
    check(size.file_bytes == on_disk, "file_size() equals the saved file's size");
    auto loaded = std::make_shared<tl::Model>(config, /*seed=*/7, torch::Device(torch::kCPU));
    loaded->load_file(tl::load_safetensors(file), /*strict=*/true);
    const auto probe = ids.narrow(0, split, 2 * mlm.max_len).view({2, mlm.max_len});
    const auto a = model->predict(probe, {}, tl::Precision::FP32), b = loaded->predict(probe, {}, tl::Precision::FP32);
    check(torch::equal(a, b), "the packed file reloads to identical logits");
    check(tl::summarize(*loaded).quantized.size() == 8, "the packed file carries its quantization");

    const double adamw = adamw_difference();
    check(adamw < 1e-6, "fused AdamW matches torch.optim.AdamW's arithmetic");
    const double keep = dropout_keep_share();
    const double attention = attention_paths_difference();
    check(attention < 1e-4, "fused and explicit attention agree");

    std::ostringstream out;
    out << "{\"adamwMaxDifference\":" << adamw << ",\"dropoutKeep\":" << keep << ",\"attentionPathsDifference\":" << attention
        << ",\"tokens\":" << n << ",\"parameters\":" << model->parameter_count() << ",\"firstTrainLoss\":" << first
        << ",\"lastTrainLoss\":" << last << ",\"validBefore\":" << before << ",\"validAfter\":" << after
        << ",\"validCompressed\":" << compressed << ",\"packedBytes\":" << on_disk << ",\"denseBytes\":" << model->parameter_bytes()
        << ",\"validStructured\":" << structured_loss << ",\"structuredBytes\":" << small_bytes << "}";
    std::cout << out.str() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "trainlarge_engine_test: " << e.what() << std::endl;
    return 1;
  }
}
