export { ConfigError } from './config/parse';
export { ModelConfig, ModelConfigInput, ModelConfigSchema, Device } from './config/model';
export { TrainConfig, TrainConfigInput, TrainConfigSchema, resolveThreads } from './config/train';
export { Transformer, Logits, TokenInput, EvalResult, EvaluateOptions, Precision } from './model';
export { Trainer, FitOptions, FitResult, Progress, StepRecord, EvalRecord, MetricRecord, AbortError } from './train';
export { MlmDataset, LabelledDataset, MlmOptions, TrainingData } from './data/dataset';
export { ByteTokenizer, SpecialTokens, TokenizerLike, unigramEntropy } from './data/tokens';
export { loadSpeeches, splitSpeeches, Speech } from './data/sotu';
export { engineInfo, setThreads } from './engine';
