#include "engine/int8.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <stdexcept>

#include "compress/compress.h"
#include "engine/compression.h"
#include "engine/model.h"

namespace trainlarge {

namespace {

// 'auto': the first of these this libtorch has. Order measured with bench/int8.ts (BENCHMARKS.md, "Int8
// inference": the engines side by side). For Linear layers libtorch's X86 engine packs with fbgemm
// (PackedLinearWeight; its oneDNN dispatch is for convolutions only), so 'x86' and 'fbgemm' run the same kernel.
constexpr at::QEngine kAutoOrder[] = {at::QEngine::ONEDNN, at::QEngine::X86, at::QEngine::FBGEMM, at::QEngine::QNNPACK};

// fbgemm multiplies u8 activations by s8 weights in 16-bit pairs on CPUs without VNNI (vpmaddubsw), which
// saturates with 8-bit activations: PyTorch's x86/fbgemm configs quantize activations to 7 bits there
// (reduce_range). With AVX-512 VNNI the products accumulate in 32 bits and the full range is safe.
bool fbgemm_needs_reduced_range() {
#if defined(__x86_64__) || defined(__i386__)
  return !__builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

at::QEngine engine_named(const std::string& name) {
  const auto& supported = at::globalContext().supportedQEngines();
  auto has = [&](at::QEngine e) { return std::find(supported.begin(), supported.end(), e) != supported.end(); };
  std::string available;
  for (auto e : supported) available += (available.empty() ? "" : ", ") + c10::toString(e);
  if (name == "auto") {
    for (auto e : kAutoOrder) {
      if (has(e)) return e;
    }
  } else {
    for (auto e : supported) {
      std::string n = c10::toString(e);
      std::transform(n.begin(), n.end(), n.begin(), ::tolower);
      if (n == name) return e;
    }
  }
  throw std::invalid_argument("engine: '" + name + "' is not a quantized engine of this libtorch; available: " + available +
                              " (or 'auto')");
}

}  // namespace

std::shared_ptr<Int8Linears> pack_int8(Model& model, const std::string& engine_name) {
  if (!model.device.is_cpu()) throw std::invalid_argument("int8: libtorch's quantized kernels run on CPU only; load the model on 'cpu'");
  const auto engine = engine_named(engine_name);
  at::globalContext().setQEngine(engine);
  static auto prepack = c10::Dispatcher::singleton()
                            .findSchemaOrThrow("quantized::linear_prepack", "")
                            .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, c10::optional<at::Tensor>)>();
  auto out = std::make_shared<Int8Linears>();
  std::string n = c10::toString(engine);
  std::transform(n.begin(), n.end(), n.begin(), ::tolower);
  out->engine = n;
  out->reduce_range = (engine == at::QEngine::FBGEMM || engine == at::QEngine::X86) && fbgemm_needs_reduced_range();
  const auto targets = compressible(model, Targets{/*attention=*/true, /*ffn=*/true, /*embeddings=*/false});
  torch::NoGradGuard no_grad;
  for (const auto& item : model.module->named_modules()) {
    const std::string weight = item.key() + ".weight";
    if (std::find(targets.begin(), targets.end(), weight) == targets.end()) continue;
    auto* linear = dynamic_cast<torch::nn::LinearImpl*>(item.value().get());
    if (linear == nullptr) continue;
    const auto w = linear->weight.detach().contiguous();
    auto it = model.compression.quant.find(weight);
    const bool exact = it != model.compression.quant.end() && it->second.symmetric;
    const QuantSpec q = exact ? it->second : calibrate(w, 8, /*symmetric=*/true, Granularity::Channel);
    at::Tensor qw = q.granularity == Granularity::Channel
                        ? at::quantize_per_channel(w, q.scale.to(torch::kDouble), q.zero_point.to(torch::kLong), 0, at::kQInt8)
                        : at::quantize_per_tensor(w, q.scale.item<double>(), 0, at::kQInt8);
    out->packed[linear] = prepack.call(qw, c10::optional<at::Tensor>(linear->bias.detach().contiguous()));
    out->weight_bytes += w.numel() + q.scale.numel() * 4;
    out->exact += exact ? 1 : 0;
  }
  if (out->packed.empty()) throw std::invalid_argument("int8: the model has no attention or feed-forward Linear layers to pack");
  return out;
}

torch::Tensor Int8Linears::forward(const torch::nn::LinearImpl* layer, const torch::Tensor& x) const {
  auto it = packed.find(layer);
  if (it == packed.end()) return {};
  // Every engine's apply_dynamic takes (..., in) and returns (..., out), making its input contiguous itself;
  // only a non-float input (bf16 under autocast) needs converting.
  return it->second->apply_dynamic(x.scalar_type() == torch::kFloat ? x : x.to(torch::kFloat), reduce_range);
}

}  // namespace trainlarge
