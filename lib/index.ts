// parseConfig: validate an application's own zod schema with the same errors (ConfigError naming every field) as trainlarge's configs.
export { ConfigError, parseConfig } from './config/parse';
export { ModelConfig, ModelConfigInput, ModelConfigSchema, Device } from './config/model';
// cpuHasNativeBf16: what precision 'auto' decides on CPU (bf16 only where the CPU computes it natively).
export { TrainConfig, TrainConfigInput, TrainConfigSchema, Precision, resolveThreads, cpuHasNativeBf16 } from './config/train';
export { Transformer, Logits, Tensor, MaskPrediction, EvalResult, EvaluateOptions, CompressionState, SaveOptions } from './model';
export { TokenInput } from './data/batch';
export { Translation, TranslationScore } from './translate';
export { TranslateOptions, TranslationEvalOptions } from './config/translate';
export { hfLabels, RobertaConfigJson } from './hf';
// ONNX export of encoders for ONNX Runtime (onnxruntime-node): model.onnx, config.json and the tokenizer.
export { exportOnnx, OnnxExportOptions, OnnxExportResult, OnnxConfigJson, OnnxTokenizer, ONNX_FILES } from './onnx/export';
export { compressionStudy, CompressionRow, CompressionStudyOptions, DEFAULT_COMPRESSION_GRID, StructuredPruning } from './compress/study';
export {
  translationCompressionStudy,
  scoreTranslator,
  TranslationCompressionRow,
  TranslationStudyOptions,
  TranslationScoring,
} from './compress/study-translate';
export {
  prune,
  quantize,
  compressedSize,
  bytesByPart,
  partOf,
  ModelPart,
  weightErrors,
  toInt8,
  INT8_ENGINES,
  Int8Engine,
  PruneOptions,
  PruneStructure,
  QuantizeOptions,
  CompressedSize,
  CompressionTraining,
} from './compress/ops';
export { Trainer, FitOptions, FitResult, Progress, StepRecord, EvalRecord, MetricRecord, AbortError } from './train/trainer';
export { MlmDataset, LabelledDataset, ParallelDataset, BatchPlan, MlmOptions, TrainingData, TrainingBatch } from './data/dataset';
export { ParallelOptions, ParallelTask } from './data/translation';
export { ByteTokenizer, SpecialTokens, TokenizerLike, TokenArray, Unigram, unigramEntropy } from './data/tokens';
export { loadSpeeches, splitSpeeches, Speech } from './data/builtin/sotu';
export { Tokenizer, TokenizerKind, TokenizerOptions, TokenizerTrainInput } from './data/tokenizer';
export { Corpus, CorpusPrepareOptions, CORPUS_SOURCES } from './data/corpus';
export { CorpusManifest } from './data/corpus-manifest';
export { CustomCorpus, CorpusFiles } from './data/corpus-sources';
export { PrepareEvent } from './data/corpus-progress';
export { Dataset, ClassificationTask, ClassificationOptions, CustomTask, ExampleFiles, classificationLayout } from './data/task';
// The built-in corpus and tasks as plain documents and labelled examples (before tokenizing), for your own pipeline or a look at the data.
export { CLASSIFICATION_SOURCES, englishProseDocuments, classificationExamples } from './data/builtin/sources';
// The seeded generator behind the tokenizer's reservoir sample, for sampling of your own that must repeat for a seed.
export { seededRandom } from './random';
export { Document, Example } from './data/documents';
export { readDocuments, readExamples } from './data/files';
// Parallel (source, target) pairs for translation: the built-in corpora (Debian packages, prepared into the cache) and your TSV/JSONL files.
export { loadParallelCorpus, ParallelCorpus, ParallelLoadOptions } from './data/parallel';
export { prepareParallelCorpus, PARALLEL_SOURCES } from './data/builtin/parallel';
export { ParallelSplit, ParallelManifest } from './data/pairs';
export { ParallelFiles, ParallelFilesSpec } from './data/parallel-files';
export { DEBIAN_PACKAGES } from './data/builtin/debian';
export { fetchPackage, SOURCE_PACKAGES, cacheDir } from './data/builtin/fetch';
export { engineInfo, setThreads, EngineInfo } from './engine';
// BLEU and chrF equal to sacreBLEU 2.6.0's (scores, statistics and signatures), for evaluating generated text.
export { corpusBleu, sentenceBleu, BleuOptions, BleuScore, SmoothMethod, SMOOTH_METHODS } from './metrics/bleu';
export { corpusChrf, sentenceChrf, ChrfOptions, ChrfScore } from './metrics/chrf';
export { tokenize13a, BLEU_TOKENIZERS, BleuTokenizer } from './metrics/tokenize13a';
export { SACREBLEU_VERSION } from './metrics/inputs';
export { Sweep, SweepSpec, SweepSpecSchema, SweepResults, SweepProgress, RunResult } from './experiment/sweep';
export { lossCurveSpec, renderSvg, svgToPng, checkFirstToReach, writeSweepReport, VegaLiteSpec, ClaimCheck } from './experiment/report';
export {
  LadderSpec,
  LadderSpecSchema,
  LadderResults,
  LadderRung,
  Budget,
  runLadder,
  writeLadderReport,
  ladderSpec,
  budgetLabel,
} from './experiment/ladder';
export {
  runCompression,
  paretoFront,
  accuracyVsBytesSpec,
  checkCompressedLargeBeatsSmall,
  CompressionResults,
} from './experiment/compression';
export { CompressionSpec, CompressionSpecSchema } from './experiment/compression-spec';
export { largerBeatsSmaller } from './experiment/compression-claims';
export { scoreVsBytesSpec } from './experiment/compression-plots';
export {
  bleuParetoFront,
  checkTranslatorsLargeBeatsSmall,
  TranslationCompressionResults,
  DEFAULT_MIN_BLEU,
} from './experiment/compression-translate';
export { recommend, PlannerEvidence, Recommendation } from './experiment/planner';
// measureStepSeconds: the step time a wall-clock budget turns into maxSteps; progressReporter: an onProgress for terminals and logs.
export { measureStepSeconds } from './train/budget';
export { progressReporter } from './train/progress';
// The HTTP inference service over saved model directories (`trainlarge serve`); fastify loads on the first createService.
export { createService, Service, ServiceConfig, ModelSpec } from './serve';
// The trainlarge command line as a function (examples/service/main.ts runs `trainlarge serve` through it).
export { runCli } from './cli/main';
// Types that the signatures above name, exported for the API reference (TypeDoc) and for annotations in your code.
export type { PredictOptions, FillMaskOptions } from './config/inference';
export type { FitOptionsInput } from './config/train';
export type { SavableTokenizer } from './model';
export type { DistSetup } from './config/dist';
export type { CompressionRecovery } from './compress/study';
export type { Split } from './data/documents';
export type { SplitManifest, ShardEntry } from './data/corpus-manifest';
export type { TextSplit, Position } from './data/stream';
export type { InputFormat } from './data/inputs';
export type { DocumentSpec, ExampleSpec, Field } from './data/files';
export type { ParallelSource } from './data/builtin/parallel';
export type { ParallelSplitManifest } from './data/pairs';
export type { DebianPackage } from './data/builtin/debian';
export type { SourcePackage } from './data/builtin/fetch';
export type { NativeBatchPlan } from './native';
export type { CurvePoint } from './experiment/sweep-results';
export type { LrChoice, LrTrial } from './experiment/lr-search';
export type { PlottedRow } from './experiment/compression-plots';
