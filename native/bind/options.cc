#include "bind/options.h"

#include "bind/convert.h"

#include <cmath>
#include <stdexcept>

namespace trainlarge::bind {

OptionReader::OptionReader(const Napi::Value& value, std::string what) : what_(std::move(what)) {
  if (!value.IsObject() || value.IsArray()) throw std::invalid_argument(what_ + ": expected an object");
  object_ = value.As<Napi::Object>();
}

bool OptionReader::has(const char* key) const {
  const auto v = object_.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

Napi::Value OptionReader::get(const char* key) const {
  auto v = object_.Get(key);
  if (v.IsUndefined()) throw std::invalid_argument(field(key) + ": missing");
  return v;
}

double OptionReader::number(const char* key) const {
  const auto v = get(key);
  if (!v.IsNumber()) throw std::invalid_argument(field(key) + ": expected a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t OptionReader::integer(const char* key) const {
  const double d = number(key);
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0) {
    throw std::invalid_argument(field(key) + ": expected an integer");
  }
  return static_cast<int64_t>(d);
}

bool OptionReader::boolean(const char* key) const {
  const auto v = get(key);
  if (!v.IsBoolean()) throw std::invalid_argument(field(key) + ": expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string OptionReader::string(const char* key) const {
  const auto v = get(key);
  if (!v.IsString()) throw std::invalid_argument(field(key) + ": expected a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<double> OptionReader::numbers(const char* key) const {
  const auto v = get(key);
  if (!v.IsArray()) throw std::invalid_argument(field(key) + ": expected an array of numbers");
  auto a = v.As<Napi::Array>();
  std::vector<double> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const auto e = a.Get(i);
    if (!e.IsNumber()) throw std::invalid_argument(field(key) + "[" + std::to_string(i) + "]: expected a number");
    out.push_back(e.As<Napi::Number>().DoubleValue());
  }
  return out;
}

std::vector<int64_t> OptionReader::integers(const char* key) const {
  std::vector<int64_t> out;
  for (const double d : numbers(key)) {
    if (!std::isfinite(d) || std::floor(d) != d) {
      throw std::invalid_argument(field(key) + "[" + std::to_string(out.size()) + "]: expected an integer");
    }
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

std::vector<std::string> OptionReader::strings(const char* key) const {
  const auto v = get(key);
  if (!v.IsArray()) throw std::invalid_argument(field(key) + ": expected an array of strings");
  auto a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const auto e = a.Get(i);
    if (!e.IsString()) throw std::invalid_argument(field(key) + "[" + std::to_string(i) + "]: expected a string");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

ModelConfig read_model_config(const Napi::Value& value) {
  const OptionReader r(value, "model config");
  ModelConfig c;
  c.task = r.choice<Task>("task", {{"mlm", Task::MLM}, {"classify", Task::Classify}, {"translate", Task::Translate}});
  c.vocab_size = r.integer("vocabSize");
  c.max_len = r.integer("maxLen");
  c.d_model = r.integer("dModel");
  if (c.task == Task::Translate) {
    c.encoder_layers = r.integer("encoderLayers");
    c.decoder_layers = r.integer("decoderLayers");
    c.tie = r.choice<Tie>("tieEmbeddings", {{"all", Tie::All}, {"decoder", Tie::Decoder}, {"none", Tie::None}});  // `tie` here
    c.bos_id = r.integer("bosId");
    c.eos_id = r.integer("eosId");
    // Absent: the defaults every translate model had before these options (lib/config/model.ts writes them only when set).
    if (r.has("positions"))
      c.positions = r.choice<Positions>("positions", {{"learned", Positions::Learned}, {"sinusoidal", Positions::Sinusoidal}});
    if (r.has("activation"))
      c.activation =
          r.choice<Activation>("activation", {{"gelu", Activation::Gelu}, {"relu", Activation::Relu}, {"swish", Activation::Swish}});
    if (r.has("scaleEmbeddings")) c.scale_embeddings = r.boolean("scaleEmbeddings");
    if (r.has("embeddingNorm")) c.embedding_norm = r.boolean("embeddingNorm");
    if (r.has("finalLogitsBias")) c.final_logits_bias = r.boolean("finalLogitsBias");
  } else {
    c.layers = r.integer("layers");
  }
  c.heads = r.integer("heads");
  if (r.has("headDim")) c.head_dim = r.integer("headDim");  // absent: d_model / heads (every file before head pruning)
  c.ffn = r.integer("ffn");
  c.dropout = r.number("dropout");
  c.attention_dropout = r.number("attentionDropout");
  c.norm = r.choice<NormPlacement>("norm", {{"post", NormPlacement::Post}, {"pre", NormPlacement::Pre}});
  c.layer_norm_eps = r.number("layerNormEps");
  c.pad_id = r.integer("padId");
  if (c.task == Task::Classify) c.num_labels = r.integer("numLabels");
  c.validate();
  return c;
}

Precision read_precision(const Napi::Value& value, const char* field) {
  return read_choice<Precision>(value, field, {{"fp32", Precision::FP32}, {"bf16", Precision::BF16}, {"fp16", Precision::FP16}});
}

PruneScope read_scope(const Napi::Value& value, const char* field) {
  return read_choice<PruneScope>(value, field, {{"layer", PruneScope::Layer}, {"global", PruneScope::Global}});
}

// 'auto' or a quantized engine's name; whether this libtorch has it is the engine's check (engine/int8.cc).
std::string read_int8_engine(const Napi::Value& value, const char* field) {
  return read_choice<std::string>(value, field,
                                  {{"auto", "auto"}, {"x86", "x86"}, {"onednn", "onednn"}, {"fbgemm", "fbgemm"}, {"qnnpack", "qnnpack"}});
}

DistConfig read_dist_config(const Napi::Value& value) {
  const OptionReader r(value, "distributed");
  DistConfig c;
  c.rank = static_cast<int>(r.integer("rank"));
  c.world_size = static_cast<int>(r.integer("worldSize"));
  c.master_addr = r.string("masterAddr");
  c.master_port = static_cast<int>(r.integer("masterPort"));
  c.backend = r.choice<std::string>("backend", {{"auto", "auto"}, {"gloo", "gloo"}, {"nccl", "nccl"}});
  c.timeout_seconds = r.number("timeoutSeconds");
  return c;
}

TrainConfig read_train_config(const Napi::Value& value) {
  const OptionReader r(value, "train config");
  TrainConfig c;
  // The schedule's own fields: `schedule` names its kind; lr is the peak rate.
  c.schedule.kind = r.choice<ScheduleKind>("schedule", {{"linear", ScheduleKind::Linear},
                                                        {"polynomial", ScheduleKind::Polynomial},
                                                        {"cosine", ScheduleKind::Cosine},
                                                        {"constant", ScheduleKind::Constant},
                                                        {"inverse-sqrt", ScheduleKind::InverseSqrt}});
  c.schedule.lr = r.number("lr");
  c.schedule.end_lr = r.number("endLr");
  c.schedule.power = r.number("power");
  c.schedule.warmup_steps = r.integer("warmupSteps");
  c.schedule.max_steps = r.integer("maxSteps");
  const auto betas = r.numbers("betas");
  if (betas.size() != 2) throw std::invalid_argument("train config.betas: expected [beta1, beta2]");
  c.adamw.beta1 = betas[0];
  c.adamw.beta2 = betas[1];
  c.adamw.eps = r.number("eps");
  c.adamw.weight_decay = r.number("weightDecay");
  c.clip_norm = r.number("clipNorm");
  c.batch_size = r.integer("batchSize");
  c.accum_steps = r.integer("accumSteps");
  if (r.has("batchTokens")) c.batch_tokens = r.integer("batchTokens");  // absent: batches counted in samples
  if (r.has("labelSmoothing")) c.label_smoothing = r.number("labelSmoothing");
  c.precision = read_precision(r.value("precision"), "train config.precision");
  c.seed = static_cast<uint64_t>(r.integer("seed"));
  c.threads = static_cast<int>(r.integer("threads"));  // counts: lib resolves 'auto' before it calls
  c.blas_threads = static_cast<int>(r.integer("blasThreads"));
  c.validate();
  return c;
}

MlmOptions read_mlm_options(const Napi::Value& value) {
  const OptionReader r(value, "MLM data options");
  MlmOptions o;
  o.max_len = r.integer("maxLen");
  o.mask_prob = r.number("maskProb");
  o.mask_token_prob = r.number("maskTokenProb");
  o.random_token_prob = r.number("randomTokenProb");
  // The tokenizer's ids (lib takes them from the tokenizer, not from the user).
  o.mask_id = r.integer("maskId");
  o.cls_id = r.integer("clsId");
  o.vocab_size = r.integer("vocabSize");
  o.special_ids = r.integers("specialIds");
  return o;
}

ParallelOptions read_parallel_options(const Napi::Value& value) {
  const OptionReader r(value, "parallel data options");
  ParallelOptions o;
  o.max_len = r.integer("maxLen");
  o.pad_id = r.integer("padId");  // the tokenizer's ids
  o.eos_id = r.integer("eosId");
  return o;
}

GenerateOptions read_generate_options(const Napi::Value& value) {
  const OptionReader r(value, "translate options");
  GenerateOptions o;
  o.beam = r.integer("beam");
  o.nbest = r.integer("nbest");
  o.length_penalty = r.number("lengthPenalty");
  o.max_len_a = r.number("maxLenA");
  o.max_len_b = r.number("maxLenB");
  return o;
}

EvaluateOptions read_evaluate_options(const Napi::Value& value) {
  const OptionReader r(value, "evaluate options");
  EvaluateOptions o;
  o.batch_size = r.integer("batchSize");
  o.max_samples = r.integer("maxSamples");
  o.seed = static_cast<uint64_t>(r.integer("seed"));
  o.precision = read_precision(r.value("precision"), "evaluate options.precision");
  return o;
}

TopKOptions read_top_k_options(const Napi::Value& value) {
  const OptionReader r(value, "fillMask options");
  TopKOptions o;
  o.positions = ids_from_js(r.value("positions"), "fillMask options.positions");
  o.k = r.integer("topK");
  o.precision = read_precision(r.value("precision"), "fillMask options.precision");
  return o;
}

namespace {

// `targets`: the user's list of 'attention', 'ffn', 'embeddings'.
Targets read_targets(const OptionReader& r) {
  Targets t;
  for (const auto& name : r.strings("targets")) {
    if (name == "attention")
      t.attention = true;
    else if (name == "ffn")
      t.ffn = true;
    else if (name == "embeddings")
      t.embeddings = true;
    else
      throw std::invalid_argument("targets: must name 'attention', 'ffn' or 'embeddings', got '" + name + "'");
  }
  return t;
}

}  // namespace

PruneOptions read_prune_options(const Napi::Value& value) {
  const OptionReader r(value, "prune options");
  PruneOptions o;
  o.structure = r.choice<PruneStructure>("structure", {{"unstructured", PruneStructure::Unstructured},
                                                       {"heads", PruneStructure::Heads},
                                                       {"ffn", PruneStructure::Ffn},
                                                       {"heads+ffn", PruneStructure::HeadsFfn}});
  o.sparsity = r.number("sparsity");
  o.scope = read_scope(r.value("scope"), "prune options.scope");
  o.schedule = r.choice<PruneSchedule>("schedule", {{"oneshot", PruneSchedule::OneShot}, {"gradual", PruneSchedule::Gradual}});
  if (o.schedule == PruneSchedule::Gradual) {
    o.initial_sparsity = r.number("initialSparsity");
    o.start_step = r.integer("startStep");
    o.end_step = r.integer("endStep");
    o.every = r.integer("every");
  }
  if (o.structure == PruneStructure::Unstructured) o.targets = read_targets(r);  // structured pruning picks its units itself
  return o;
}

QuantizeOptions read_quantize_options(const Napi::Value& value) {
  const OptionReader r(value, "quantize options");
  QuantizeOptions o;
  o.bits = static_cast<int>(r.integer("bits"));
  o.symmetric = r.boolean("symmetric");
  o.granularity = r.choice<Granularity>("granularity", {{"channel", Granularity::Channel}, {"tensor", Granularity::Tensor}});
  o.targets = read_targets(r);
  return o;
}

TokenizerTrainOptions read_tokenizer_options(const Napi::Value& value) {
  const OptionReader r(value, "tokenizer options");
  TokenizerTrainOptions o;
  o.vocab_size = r.integer("vocabSize");
  o.model_type = r.choice<std::string>("model", {{"bpe", "bpe"}, {"unigram", "unigram"}});  // SentencePiece's model_type
  o.character_coverage = r.number("characterCoverage");
  o.byte_fallback = r.boolean("byteFallback");
  o.max_sentences = r.integer("maxSentences");
  o.threads = static_cast<int>(r.integer("threads"));
  o.seed = static_cast<uint32_t>(r.integer("seed"));
  return o;
}

std::map<std::string, std::string> read_metadata(const Napi::Value& value, const char* field) {
  std::map<std::string, std::string> out;
  if (value.IsUndefined() || value.IsNull()) return out;
  if (!value.IsObject() || value.IsArray()) throw std::invalid_argument(std::string(field) + ": expected an object of strings");
  const auto o = value.As<Napi::Object>();
  const auto keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const auto key = keys.Get(i).ToString().Utf8Value();
    const auto v = o.Get(key);
    if (!v.IsString()) throw std::invalid_argument(std::string(field) + "." + key + ": expected a string");
    out[key] = v.As<Napi::String>().Utf8Value();
  }
  return out;
}

}  // namespace trainlarge::bind
