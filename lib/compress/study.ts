import { PruneScope, PruneStructure } from '../config/compress';
import { plannedWarmup } from '../config/train';
import { TrainingData } from '../data/dataset';
import { Transformer } from '../model';
import { compressedSize, layerBytes, prune, quantize, weightErrors } from './ops';

/** Structured pruning in the study: whole heads and/or feed-forward units (prune's `structure`). */
export type StructuredPruning = Exclude<PruneStructure, 'unstructured'>;

/**
 * The default grid of the compression study and of the compression experiment (its spec, lib/experiment/compression-spec.ts):
 * the sparsities to prune to, the bit widths to quantize to, and the pruning scope.
 */
export const DEFAULT_COMPRESSION_GRID = {
  sparsities: [0.3, 0.5, 0.7, 0.9],
  bits: [8, 6, 4, 3, 2],
  scope: 'layer',
} as const satisfies { sparsities: readonly number[]; bits: readonly number[]; scope: PruneScope };

/** What a study's pruning and quantization touch (the default targets of prune and quantize), as its reports state it. */
export const WHAT_WAS_COMPRESSED =
  'Compressed: the whole model by default, as Q8BERT and Q-BERT do: the token embedding (the output projection tied to it follows), ' +
  'the attention and the FFN weight matrices; structured pruning removes whole heads / FFN units instead. Left as they were: ' +
  'position embeddings, LayerNorms, biases and the task head. "file bytes" is the whole packed file; "layer bytes" the ' +
  "Transformer layers' tensors alone (LayerNorms and biases included).";

/** One compressed variant of one model: what it costs and what it loses. */
export interface CompressionRow {
  model: string;
  parameters: number;
  /**
   * 'prune': unstructured, one-shot; 'prune-heads', 'prune-ffn', 'prune-heads+ffn': structured (a smaller dense
   * model); 'quantize': one-shot (round to nearest). With the study's `recover`: 'gradual', unstructured pruning
   * reached gradually during fine-tuning (Zhu & Gupta), and 'qat', quantization-aware fine-tuning.
   */
  method: 'none' | 'prune' | 'quantize' | 'gradual' | 'qat' | `prune-${StructuredPruning}`;
  /** Sparsity (prune; structured: the fraction of heads / units removed) or bits (quantize); 0 / 32 for the uncompressed model. */
  setting: number;
  /** Size of the saved model file (compressedSize). */
  bytes: number;
  /** Of which the Transformer layers' tensors (layerBytes): what compression of the layers alone would be measured by. */
  layerBytes: number;
  accuracy: number;
  /** Accuracy of the uncompressed model minus this one's. */
  accuracyDrop: number;
  /**
   * Mean over the compressed matrices of ||W - C(W)|| / ||W||. Structured: C(W) is W with the removed
   * heads' / units' entries zeroed (what the smaller model computes), per qkv, proj, fc1, fc2 it shrank
   * (a translator's decoder: self_attn qkv and proj, cross_attn q, kv and proj, fc1, fc2).
   */
  meanWeightError: number;
  /** Per matrix. */
  weightErrors: Record<string, number>;
}

export interface CompressionStudyOptions {
  /** Fine-tuned classifiers of different sizes. */
  models: { name: string; model: Transformer }[];
  /** Labelled evaluation data (the test split). */
  data: TrainingData;
  /** Sparsities, bit widths and pruning scope; DEFAULT_COMPRESSION_GRID's by default. */
  sparsities?: number[];
  bits?: number[];
  scope?: PruneScope;
  /** Structured pruning to add (none by default): each structure at each of its sparsities, e.g. { heads: [0.25, 0.5] }. */
  structured?: Partial<Record<StructuredPruning, number[]>>;
  /**
   * Compression during fine-tuning, beside the one-shot grid: each sparsity is also reached by gradual pruning
   * (Zhu & Gupta's cubic schedule over the first 3/4 of `steps`, the rest at the final sparsity) and each bit
   * width also trained with QAT, `steps` fine-tuning steps on `data` each (rows 'gradual' and 'qat').
   */
  recover?: CompressionRecovery;
  /** Called after each row. */
  onRow?: (row: CompressionRow) => void;
}

/** How the study fine-tunes while it compresses (CompressionStudyOptions.recover). */
export interface CompressionRecovery {
  /** Labelled training data (the task's train split). */
  data: TrainingData;
  steps: number;
  lr: number;
  batchSize: number;
  seed?: number;
}

/**
 * The paper's compression analysis, one-shot (no fine-tuning after compression): for every model, prune
 * to each sparsity and quantize to each bit width (and, when asked, remove heads / feed-forward units:
 * `structured`), then measure accuracy, file bytes and how far the weights moved. Larger models being "more robust to compression" shows as a smaller accuracy drop and
 * a smaller relative weight error at the same setting.
 */
export async function compressionStudy(opts: CompressionStudyOptions): Promise<CompressionRow[]> {
  if (opts.models.length === 0) throw new RangeError('models: give at least one model');
  const rows: CompressionRow[] = [];
  for (const { name, model } of opts.models) {
    if (model.config.task !== 'classify') throw new TypeError(`models: '${name}' is not a classifier (task '${model.config.task}')`);
    const baseAccuracy = (await model.evaluate(opts.data)).accuracy!;
    await forEachVariant(model, opts, async (method, setting, c) => {
      const accuracy = c === model ? baseAccuracy : (await c.evaluate(opts.data)).accuracy!;
      const row: CompressionRow = await variantRow(name, model, method, setting, c, { accuracy, accuracyDrop: baseAccuracy - accuracy });
      rows.push(row);
      opts.onRow?.(row);
    });
  }
  return rows;
}

/** The grid a study walks: pruning sparsities and scope, bit widths, structured pruning. */
export type CompressionGrid = Pick<CompressionStudyOptions, 'sparsities' | 'bits' | 'scope' | 'structured' | 'recover'>;

/**
 * Calls `fn` on the model itself ('none', 0), then on each compressed variant of the grid in order
 * (pruned, quantized, structurally pruned), disposing each variant after its call.
 */
export async function forEachVariant(
  model: Transformer,
  grid: CompressionGrid,
  fn: (method: CompressionRow['method'], setting: number, c: Transformer) => Promise<void>,
): Promise<void> {
  const run = async (method: CompressionRow['method'], setting: number, make: () => Promise<Transformer>): Promise<void> => {
    const c = await make();
    try {
      await fn(method, setting, c);
    } finally {
      c.dispose();
    }
  };
  await fn('none', 0, model);
  for (const s of grid.sparsities ?? DEFAULT_COMPRESSION_GRID.sparsities)
    await run('prune', s, () => prune(model, { sparsity: s, scope: grid.scope ?? DEFAULT_COMPRESSION_GRID.scope }));
  for (const b of grid.bits ?? DEFAULT_COMPRESSION_GRID.bits) await run('quantize', b, () => quantize(model, { bits: b }));
  for (const [structure, sparsities] of Object.entries(grid.structured ?? {}) as [StructuredPruning, number[]][])
    for (const s of sparsities) await run(`prune-${structure}`, s, () => prune(model, { structure, sparsity: s }));
  const r = grid.recover;
  if (!r) return;
  const train = {
    data: r.data,
    config: { lr: r.lr, batchSize: r.batchSize, maxSteps: r.steps, warmupSteps: plannedWarmup(r.steps), seed: r.seed ?? 1 },
  };
  const endStep = Math.max(1, Math.round(r.steps * 0.75));
  for (const s of grid.sparsities ?? DEFAULT_COMPRESSION_GRID.sparsities)
    await run('gradual', s, () =>
      prune(model, {
        sparsity: s,
        scope: grid.scope ?? DEFAULT_COMPRESSION_GRID.scope,
        schedule: 'gradual',
        endStep,
        every: Math.max(1, Math.round(endStep / 20)),
        train,
      }),
    );
  for (const b of grid.bits ?? DEFAULT_COMPRESSION_GRID.bits) await run('qat', b, () => quantize(model, { bits: b, method: 'qat', train }));
}

/** The fields every study's row has (a translation study's too), whatever it scores the variants by. */
export type VariantFields = Pick<
  CompressionRow,
  'model' | 'parameters' | 'method' | 'setting' | 'bytes' | 'layerBytes' | 'meanWeightError' | 'weightErrors'
>;

/**
 * The row of variant `c` (`method` at `setting`) of `model`, named `name`: its packed file's bytes and how far
 * its weights moved, around the study's own `scores` (in the order the rows list their fields).
 */
export async function variantRow<S extends object>(
  name: string,
  model: Transformer,
  method: CompressionRow['method'],
  setting: number,
  c: Transformer,
  scores: S,
): Promise<VariantFields & S> {
  const size = await compressedSize(c);
  return {
    model: name,
    parameters: model.parameterCount,
    method,
    setting,
    bytes: size.bytes,
    layerBytes: layerBytes(size),
    ...scores,
    ...(await variantErrors(method, c, model)),
  };
}

/**
 * Study rows as a CSV table (header, rows): the columns every row has, with the study's `scores` (column, cell)
 * between the bytes and the weight error.
 */
export function variantTable<R extends VariantFields>(
  rows: R[],
  scores: [string, (r: R) => string | number][],
): [string[], (string | number)[][]] {
  return [
    ['model', 'parameters', 'method', 'setting', 'bytes', 'layer_bytes', ...scores.map(([column]) => column), 'mean_weight_error'],
    rows.map((r) => [
      r.model,
      r.parameters,
      r.method,
      r.setting,
      r.bytes,
      r.layerBytes,
      ...scores.map(([, cell]) => cell(r)),
      r.meanWeightError.toFixed(5),
    ]),
  ];
}

/** meanWeightError and weightErrors of a variant against its model (none for the model itself). */
async function variantErrors(
  method: CompressionRow['method'],
  c: Transformer,
  model: Transformer,
): Promise<Pick<CompressionRow, 'meanWeightError' | 'weightErrors'>> {
  const structured = method.startsWith('prune-');
  const errors = c === model ? {} : structured ? await removedWeightErrors(c, model) : await weightErrors(c, model);
  const state = c.compression;
  const compressed = c === model ? [] : structured ? Object.keys(errors) : Object.keys({ ...state.pruned, ...state.quantized });
  return {
    meanWeightError: compressed.length ? compressed.reduce((n, k) => n + errors[k], 0) / compressed.length : 0,
    weightErrors: Object.fromEntries(compressed.map((k) => [k, errors[k]])),
  };
}

const SHRUNK = ['attn.qkv.weight', 'attn.proj.weight', 'ffn.fc1.weight', 'ffn.fc2.weight'];
/** A translator's decoder layer: its self-attention, cross-attention and FFN matrices. */
const DECODER_SHRUNK = [
  'self_attn.qkv.weight',
  'self_attn.proj.weight',
  'cross_attn.q.weight',
  'cross_attn.kv.weight',
  'cross_attn.proj.weight',
  'ffn.fc1.weight',
  'ffn.fc2.weight',
];

/**
 * ||W - C(W)|| / ||W|| of a structurally pruned model's matrices against the model it came from. The
 * kept rows and columns are the original's, unchanged, so the removed part's norm is what the norms lack:
 * sqrt(1 - ||C(W)||² / ||W||²). Matrices that kept their shape are left out.
 */
async function removedWeightErrors(pruned: Transformer, reference: Transformer): Promise<Record<string, number>> {
  const squares = (a: Float32Array) => a.reduce((n, x) => n + x * x, 0);
  const names: string[] = [];
  for (let l = 0; l < reference.config.layers; l++) names.push(...SHRUNK.map((m) => `layers.${l}.${m}`));
  for (let l = 0; l < (reference.config.decoderLayers ?? 0); l++) names.push(...DECODER_SHRUNK.map((m) => `decoder.layers.${l}.${m}`));
  const out: Record<string, number> = {};
  for (const name of names) {
    const [w, c] = [await reference.weight(name), await pruned.weight(name)];
    if (c.data.length === w.data.length) continue;
    out[name] = Math.sqrt(Math.max(0, 1 - squares(c.data) / squares(w.data)));
  }
  return out;
}
