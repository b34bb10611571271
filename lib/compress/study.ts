import { TrainingData } from '../data/dataset';
import { Transformer } from '../model';
import { compressedSize, prune, quantize, weightErrors } from './ops';

/**
 * The default grid of the compression study and of the compression experiment (lib/experiment/compression.ts):
 * the sparsities to prune to, the bit widths to quantize to, and the pruning scope.
 */
export const DEFAULT_COMPRESSION_GRID = {
  sparsities: [0.3, 0.5, 0.7, 0.9],
  bits: [8, 6, 4, 3, 2],
  scope: 'layer',
} as const satisfies { sparsities: readonly number[]; bits: readonly number[]; scope: 'layer' | 'global' };

/** One compressed variant of one model: what it costs and what it loses. */
export interface CompressionRow {
  model: string;
  parameters: number;
  method: 'none' | 'prune' | 'quantize';
  /** Sparsity (prune) or bits (quantize); 0 / 32 for the uncompressed model. */
  setting: number;
  /** Size of the saved model file (compressedSize). */
  bytes: number;
  accuracy: number;
  /** Accuracy of the uncompressed model minus this one's. */
  accuracyDrop: number;
  /** Mean over the compressed matrices of ||W - C(W)|| / ||W||. */
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
  scope?: 'layer' | 'global';
  /** Called after each row. */
  onRow?: (row: CompressionRow) => void;
}

/**
 * The paper's compression analysis, one-shot (no fine-tuning after compression): for every model, prune
 * to each sparsity and quantize to each bit width, then measure accuracy, file bytes and how far the
 * weights moved. Larger models being "more robust to compression" shows as a smaller accuracy drop and
 * a smaller relative weight error at the same setting.
 */
export async function compressionStudy(opts: CompressionStudyOptions): Promise<CompressionRow[]> {
  if (opts.models.length === 0) throw new RangeError('models: give at least one model');
  const rows: CompressionRow[] = [];
  for (const { name, model } of opts.models) {
    if (model.config.task !== 'classify') throw new TypeError(`models: '${name}' is not a classifier (task '${model.config.task}')`);
    const baseAccuracy = (await model.evaluate(opts.data)).accuracy!;
    const add = async (method: CompressionRow['method'], setting: number, c: Transformer): Promise<void> => {
      const accuracy = c === model ? baseAccuracy : (await c.evaluate(opts.data)).accuracy!;
      const errors = c === model ? {} : await weightErrors(c, model);
      const state = c.compression;
      const compressed = Object.keys({ ...state.pruned, ...state.quantized });
      const row: CompressionRow = {
        model: name,
        parameters: model.parameterCount,
        method,
        setting,
        bytes: (await compressedSize(c)).bytes,
        accuracy,
        accuracyDrop: baseAccuracy - accuracy,
        meanWeightError: compressed.length ? compressed.reduce((n, k) => n + errors[k], 0) / compressed.length : 0,
        weightErrors: Object.fromEntries(compressed.map((k) => [k, errors[k]])),
      };
      rows.push(row);
      opts.onRow?.(row);
    };
    await add('none', 0, model);
    for (const s of opts.sparsities ?? DEFAULT_COMPRESSION_GRID.sparsities) {
      const c = await prune(model, { sparsity: s, scope: opts.scope ?? DEFAULT_COMPRESSION_GRID.scope });
      await add('prune', s, c);
      c.dispose();
    }
    for (const b of opts.bits ?? DEFAULT_COMPRESSION_GRID.bits) {
      const c = await quantize(model, { bits: b });
      await add('quantize', b, c);
      c.dispose();
    }
  }
  return rows;
}
