// The one place that loads the addon and declares its exact TypeScript surface (see native/bind/).
// Nothing else in lib/ touches the raw native API.
import * as fs from 'fs';
import * as path from 'path';
import type { CompressionState, EngineInfo, Tensor, TokenArray } from './types';
import type { Device, ModelConfig } from './config/model';
import type { DistBackend, Precision, TrainConfig } from './config/train';
import type { Int8Engine, PruneScope, PruneSettings, QuantizeSettings } from './config/compress';
import type { TokenizerSettings } from './config/tokenizer';

/** The configs cross as their schemas output them (bind/options.cc reads these fields); the trainer's
 * thread counts and precision are resolved first. Every enum-like string is its union from lib/config/, and the
 * addon refuses a name outside it with an error naming the field and the allowed names. */
export type NativeTrainConfig = Omit<TrainConfig, 'threads' | 'blasThreads' | 'precision'> & {
  threads: number;
  blasThreads: number;
  precision: Precision;
};

export interface NativeEval {
  loss: number;
  count: number;
  correct: number;
  samples: number;
  seconds: number;
  /** MLM data on an MLM model: the loss on <mask>-replaced inputs and the targets counted per id. */
  maskLoss?: number;
  maskCount?: number;
  targetCounts?: Float64Array;
  maskTargetCounts?: Float64Array;
}

export interface NativeStepStats {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  targets: number;
  seconds: number;
  dataSeconds: number;
  skipped: boolean;
  /** Data-parallel: seconds in the gradient all-reduce and bytes all-reduced this step (0 in one process). */
  commSeconds: number;
  commBytes: number;
}

export interface NativeBatch {
  ids: Int32Array;
  dims: [number, number];
  targets: Int32Array;
  positions?: Int32Array;
  mask?: Uint8Array;
}

/** lib/data's MlmOptions with the tokenizer's ids. */
export interface NativeMlmOptions {
  maxLen: number;
  maskProb: number;
  maskTokenProb: number;
  randomTokenProb: number;
  maskId: number;
  clsId: number;
  vocabSize: number;
  specialIds: number[];
}

/** File metadata: string values only. */
export type NativeMetadata = Record<string, string>;

/** One epoch of token-count batches of a ParallelDataset (ParallelDataset.batchPlan). */
export interface NativeBatchPlan {
  batches: number;
  pairs: number;
  /** The largest batch x longest side over the batches (<= batchTokens). */
  maxBatchTokens: number;
  /** Real tokens of each side (eos included), and the padded B x S / B x T cells they fill. */
  sourceTokens: number;
  targetTokens: number;
  sourcePadded: number;
  targetPadded: number;
  /** Share of padding cells over both sides: 1 - real tokens / padded cells. */
  paddingShare: number;
}

/** bind/options.cc's read_generate_options. */
export interface NativeGenerateOptions {
  beam: number;
  nbest: number;
  lengthPenalty: number;
  maxLenA: number;
  maxLenB: number;
}

/** Hypothesis j of sentence i is row i * nbest + j: lengths[row] ids (no bos, no eos) in `tokens`, in row order. */
export interface NativeTranslations {
  tokens: Int32Array;
  lengths: Int32Array;
  scores: Float64Array;
  nbest: number;
}

export interface NativeModel {
  readonly parameterCount: number;
  readonly parameterBytes: number;
  readonly device: string;
  readonly disposed: boolean;
  /** With `targets` (B, targetLength) a translate model's teacher-forced logits (B, targetLength, V). */
  predict(
    ids: TokenArray,
    batch: number,
    length: number,
    mask: Uint8Array | null,
    precision: Precision,
    targets?: Int32Array,
    targetLength?: number,
  ): Promise<Tensor>;
  /** MLM: top-k (softmax probabilities, token ids), each (N, k) row-major, at flat positions b * length + t. */
  predictTopK(
    ids: TokenArray,
    batch: number,
    length: number,
    mask: Uint8Array | null,
    options: { positions: Int32Array; topK: number; precision: Precision },
  ): Promise<{ probs: Float32Array; ids: Int32Array; k: number }>;
  /** Translate models: sources (B, S) ending in eos; beam or greedy search in C++. */
  translate(
    ids: TokenArray,
    batch: number,
    length: number,
    mask: Uint8Array | null,
    options: NativeGenerateOptions,
    precision: Precision,
  ): Promise<NativeTranslations>;
  /** With `group` (a trainer in a process group): each rank evaluates its share of the batches, all get the sums. */
  /** maxSamples 0: all. */
  evaluate(
    data: NativeDataset,
    options: { batchSize: number; maxSamples: number; seed: number; precision: Precision },
    group?: NativeTrainer,
  ): Promise<NativeEval>;
  save(path: string, metadata: NativeMetadata): Promise<void>;
  loadWeights(path: string, strict: boolean): Promise<string[]>;
  /** transformers' RoBERTa layout (native/engine/roberta.h). */
  saveRoberta(path: string, paddingIdx: number, metadata: NativeMetadata): Promise<void>;
  loadRoberta(path: string, paddingIdx: number, strict: boolean): Promise<string[]>;
  prune(options: Omit<PruneSettings, 'inPlace'>): Promise<void>;
  /** A new, smaller model without the least important heads / feed-forward units; its config's new sizes. */
  pruneStructured(options: Omit<PruneSettings, 'inPlace'>): Promise<{ model: NativeModel; heads: number; headDim: number; ffn: number }>;
  quantize(options: Omit<QuantizeSettings, 'inPlace' | 'method'>): Promise<void>;
  clone(): Promise<NativeModel>;
  toInt8(engine: Int8Engine): Promise<NativeModel>;
  compression(): CompressionState;
  packedSize(metadata: NativeMetadata): Promise<{ fileBytes: number; headerBytes: number; tensors: Record<string, number> }>;
  weightErrors(reference: NativeModel): Promise<Record<string, number>>;
  parameter(name: string): Promise<Tensor>;
  dispose(): void;
}

export interface NativeDataset {
  readonly size: number;
  trainBatch(index: number, batchSize: number, seed: number): NativeBatch;
  evalBatch(first: number, count: number, seed: number): NativeBatch;
  /** Parallel data only: one epoch of token-count batches. */
  batchPlan(batchTokens: number, seed: number): NativeBatchPlan;
  dispose(): void;
}

export interface NativeDistConfig {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  backend: DistBackend;
  timeoutSeconds: number;
}

export interface NativeTrainer {
  readonly step: number;
  readonly lossScale: number;
  steps(
    data: NativeDataset,
    maxSteps: number,
    maxSeconds: number,
    aborted: boolean,
  ): Promise<{ stats: NativeStepStats[]; aborted: boolean }>;
  joinGroup(config: NativeDistConfig): Promise<void>;
  syncState(values: number[]): Promise<number[]>;
  agree(local: boolean): Promise<boolean>;
  barrier(): Promise<void>;
  leaveGroup(): Promise<void>;
  abort(): void;
  saveState(path: string): Promise<void>;
  loadState(path: string): Promise<void>;
  dispose(): void;
}

export interface NativeTokenizer {
  readonly vocabSize: number;
  modelBytes(): Uint8Array;
  encode(text: string): Int32Array;
  encodeUncached(text: string): Int32Array;
  encodeBatch(texts: string[], threads: number): Promise<{ ids: Int32Array; offsets: Float64Array }>;
  decode(ids: TokenArray): string;
  piece(id: number): string;
  pieces(ids: Int32Array): string[];
  pieceToId(piece: string): number;
  /** SentencePiece's pieces of the whole text (a character outside the model is its own piece). */
  encodePieces(text: string): string[];
  /** SentencePiece's detokenization of pieces (one outside the model is kept as written). */
  decodePieces(pieces: string[]): string;
}

export interface NativeShardInfo {
  tokens: number;
  tokenBytes: number;
  vocabSize: number;
}

/**
 * The engine's compression kernels alone (native/compress/), under the addon's `testing`: the tests check them
 * against PyTorch's and by round trips; the library reaches them only through a model (prune, quantize, save).
 */
export interface NativeTestingOps {
  magnitudeMasks(weights: Float32Array[], dims: number[][], sparsity: number, scope: PruneScope): Uint8Array[];
  fakeQuantize(
    weight: Float32Array,
    dims: number[],
    bits: number,
    symmetric: boolean,
    perChannel: boolean,
  ): {
    values: Float32Array;
    codes: Int32Array;
    scale: Float32Array;
    zeroPoint: Int32Array;
    qmin: number;
    qmax: number;
  };
  packBits(values: Int32Array, bits: number): Uint8Array;
  unpackBits(packed: Uint8Array, count: number, bits: number): Int32Array;
}

export interface NativeAddon {
  abiVersion: number;
  createModel(config: ModelConfig, seed: number, device: Device): Promise<NativeModel>;
  loadModel(config: ModelConfig, weightsPath: string, device: Device): Promise<NativeModel>;
  createMlmData(tokens: TokenArray, options: NativeMlmOptions): NativeDataset;
  createMlmShards(paths: string[], options: NativeMlmOptions): NativeDataset;
  writeTokenShard(path: string, tokens: TokenArray, vocabSize: number): Promise<NativeShardInfo>;
  readTokenShard(path: string): { ids: Int32Array; tokenBytes: number; vocabSize: number };
  trainTokenizer(lines: string[], options: TokenizerSettings): Promise<NativeTokenizer>;
  loadTokenizer(modelBytes: Uint8Array): NativeTokenizer;
  /** Any SentencePiece model, its ids its own (use encodePieces/decodePieces under another vocabulary's ids). */
  loadForeignTokenizer(modelBytes: Uint8Array): NativeTokenizer;
  createLabelledData(tokens: TokenArray, offsets: Int32Array, labels: Int32Array, maxLen: number, padId: number): NativeDataset;
  createParallelData(
    source: Int32Array,
    sourceOffsets: Int32Array,
    target: Int32Array,
    targetOffsets: Int32Array,
    options: { maxLen: number; padId: number; eosId: number },
  ): NativeDataset;
  createParallelShards(
    sourceShards: string[],
    targetShards: string[],
    options: { maxLen: number; padId: number; eosId: number },
  ): NativeDataset;
  Trainer: new (model: NativeModel, config: NativeTrainConfig) => NativeTrainer;
  /** The engine's compression kernels alone, for the tests (no library code calls them). */
  testing: NativeTestingOps;
  /** Rank 0's `text` on every rank of this process's group for `config` (joined on first use, shared with trainers). */
  distShare(config: NativeDistConfig, text: string | null): Promise<string>;
  /** Every rank's `text`, in rank order, on every rank of the same group. */
  distGather(config: NativeDistConfig, text: string): Promise<string[]>;
  engineInfo(): EngineInfo;
  setThreads(threads: number, blasThreads: number): void;
  /** Temporary name, fsync, rename, fsync of the folder (native/io/atomic_file.h). */
  writeFileAtomic(path: string, data: string | Uint8Array): Promise<void>;
  /** A torch.save state dict (zip format: pytorch_model.bin) rewritten as safetensors, floats as float32; the tensors' names. */
  convertTorchCheckpoint(binPath: string, safetensorsPath: string): Promise<string[]>;
}

const ABI_VERSION = 11;
const root = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

let addon: NativeAddon | undefined;

/** The part of build/trainlarge.json (written by scripts/build.js) that a load failure reports. */
interface BuildStamp {
  node?: { version?: string; modules?: string };
  torch?: { version?: string; prefix?: string };
}

/** The addon, loaded once. Throws an Error that says how to build it when it is missing or stale. */
export function native(): NativeAddon {
  if (addon) return addon;
  const file = process.env.TRAINLARGE_ADDON ?? path.join(root, 'build', 'trainlarge.node');
  if (!fs.existsSync(file)) {
    // Installed as a dependency: npm ran no install script (the project's package.json denies it in
    // allowScripts, or npm ran with --ignore-scripts), or the build failed during the install.
    const asDependency = root.split(path.sep).includes('node_modules');
    throw new Error(
      asDependency
        ? `trainlarge: the native addon is not built (${file} is missing): npm did not run trainlarge's install script ` +
            `or it failed. Approve it in your package.json ("allowScripts": { "trainlarge": true }, or 'npm approve-scripts ` +
            `trainlarge'), then run 'npm rebuild trainlarge' (it builds against TORCH_DIR, else python3's torch, else ` +
            `pip's torch, which it installs).`
        : `trainlarge: the native addon is not built (${file} is missing). Run 'npm run build' ` +
            `(or 'bash scripts/setup' on a new machine, which also installs libtorch).`,
    );
  }
  let loaded: NativeAddon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the addon's path is known only at run time
    loaded = require(file) as NativeAddon;
  } catch (e) {
    const stampFile = path.join(path.dirname(file), 'trainlarge.json');
    let built = '';
    if (fs.existsSync(stampFile)) {
      const s = JSON.parse(fs.readFileSync(stampFile, 'utf8')) as BuildStamp;
      built =
        ` It was built for Node ${s.node?.version} (ABI ${s.node?.modules}) against libtorch ${s.torch?.version} at ` +
        `${s.torch?.prefix}; this is Node ${process.versions.node} (ABI ${process.versions.modules}).`;
    }
    throw new Error(
      `trainlarge: cannot load the native addon ${file}: ${(e as Error).message}.${built} ` + `Rebuild it with 'npm run build -- --force'.`,
    );
  }
  if (loaded.abiVersion !== ABI_VERSION) {
    throw new Error(
      `trainlarge: the native addon at ${file} has interface version ${loaded.abiVersion}, ` +
        `this library needs ${ABI_VERSION}: rebuild it with 'npm run build -- --force'.`,
    );
  }
  addon = loaded;
  return addon;
}
