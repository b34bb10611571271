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

bool has_engine(at::QEngine e) {
  const auto& supported = at::globalContext().supportedQEngines();
  return std::find(supported.begin(), supported.end(), e) != supported.end();
}

// The engine's name as toInt8 takes and reports it: libtorch's, lower-cased ("onednn", "x86", ...).
std::string engine_name_of(at::QEngine e) {
  std::string n = c10::toString(e);
  std::transform(n.begin(), n.end(), n.begin(), ::tolower);
  return n;
}

at::QEngine engine_named(const std::string& name) {
  const auto& supported = at::globalContext().supportedQEngines();
  std::string available;
  for (auto e : supported) available += (available.empty() ? "" : ", ") + c10::toString(e);
  if (name == "auto") {
    for (auto e : kAutoOrder) {
      if (has_engine(e)) return e;
    }
  } else {
    for (auto e : supported) {
      if (engine_name_of(e) == name) return e;
    }
  }
  throw std::invalid_argument("engine: '" + name + "' is not a quantized engine of this libtorch; available: " + available +
                              " (or 'auto')");
}

// 'auto' where both fbgemm and oneDNN are there and fbgemm keeps 8-bit activations (VNNI): fbgemm for calls of
// up to this many rows, oneDNN above. Measured with libtorch 2.13 on an AMD EPYC (AVX-512 VNNI), whole predict
// calls, the medium and large classifiers, 1 and 2 threads: fbgemm 1.2-1.4x faster at 16 to 256 rows (1 x 16,
// 4 x 16, 1 x 128, 2 x 128), oneDNN 1.1-1.2x faster from 512 rows (4 x 128, 8 x 128); per Linear layer fbgemm
// took 1.9x oneDNN's time at 4,096 rows (768 x 256).
constexpr int64_t kFbgemmMaxRows = 256;

// libtorch 2.13 warns once per process, from quantize_per_channel, that its quantized tensor types are
// deprecated: true, and nothing a trainlarge user can act on (docs/compression.md says it), so packing
// passes every other warning on and drops that one.
class DropQuantizedDeprecation : public c10::WarningHandler {
 public:
  explicit DropQuantizedDeprecation(c10::WarningHandler* next) : next_(next) {}
  void process(const c10::Warning& w) override {
    if (w.msg().find("quantized tensor creation functions") == std::string::npos) next_->process(w);
  }

 private:
  c10::WarningHandler* next_;
};

}  // namespace

std::shared_ptr<Int8Linears> pack_int8(Model& model, const std::string& engine_name) {
  if (!model.device.is_cpu()) throw std::invalid_argument("int8: libtorch's quantized kernels run on CPU only; load the model on 'cpu'");
  const auto engine = engine_named(engine_name);
  static auto prepack = c10::Dispatcher::singleton()
                            .findSchemaOrThrow("quantized::linear_prepack", "")
                            .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, c10::optional<at::Tensor>)>();
  auto out = std::make_shared<Int8Linears>();
  out->engine = engine_name_of(engine);
  out->reduce_range = (engine == at::QEngine::FBGEMM || engine == at::QEngine::X86) && fbgemm_needs_reduced_range();
  const bool both =
      engine_name == "auto" && engine == at::QEngine::ONEDNN && has_engine(at::QEngine::FBGEMM) && !fbgemm_needs_reduced_range();
  const auto targets = compressible(model, Targets{/*attention=*/true, /*ffn=*/true, /*embeddings=*/false});
  torch::NoGradGuard no_grad;
  DropQuantizedDeprecation quiet(c10::WarningUtils::get_warning_handler());
  c10::WarningUtils::WarningHandlerGuard quiet_guard(&quiet);
  // Packs every target layer with the engine (prepack reads the global engine); the packed object then runs on
  // that engine's kernel whatever the global engine is later.
  auto pack_all = [&](at::QEngine e, Int8Linears::Packs& into) {
    at::globalContext().setQEngine(e);
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
      into[linear] = prepack.call(qw, c10::optional<at::Tensor>(linear->bias.detach().contiguous()));
      out->weight_bytes += w.numel() + q.scale.numel() * 4;
      if (&into == &out->packed) out->exact += exact ? 1 : 0;
    }
  };
  if (both) {
    pack_all(at::QEngine::FBGEMM, out->small);
    out->small_rows = kFbgemmMaxRows;
    out->engine = "fbgemm+onednn";
  }
  pack_all(engine, out->packed);
  if (out->packed.empty()) throw std::invalid_argument("int8: the model has no attention or feed-forward Linear layers to pack");
  return out;
}

torch::Tensor Int8Linears::forward(const torch::nn::LinearImpl* layer, const torch::Tensor& x) const {
  const auto rows = x.dim() == 0 ? 0 : x.numel() / x.size(-1);
  const auto& use = !small.empty() && rows <= small_rows ? small : packed;
  auto it = use.find(layer);
  if (it == use.end()) return {};
  // Every engine's apply_dynamic takes (..., in) and returns (..., out), making its input contiguous itself;
  // only a non-float input (bf16 under autocast) needs converting.
  return it->second->apply_dynamic(x.scalar_type() == torch::kFloat ? x : x.to(torch::kFloat), reduce_range);
}

torch::Tensor Int8Linears::forward_gelu(const torch::nn::LinearImpl* layer, const torch::Tensor& x) const {
  auto y = forward(layer, x);
  // An int8 model only predicts (Trainer refuses it), so nothing keeps the pre-activation for a backward pass.
  return y.defined() ? at::gelu_(y) : y;
}

}  // namespace trainlarge
