import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { ParallelDataset } from '../data/dataset';
import { Transformer } from '../model';
import { CompressionGrid, CompressionRow, forEachVariant, variantRow } from './study';

/** How a translation compression study scores each variant: BLEU on the first `samples` pairs, loss on the first `lossSamples`. */
export const TranslationScoringSchema = z
  .object({
    /** Test pairs translated for BLEU and chrF (the first ones, a fixed subset). */
    samples: z.number().int().positive().default(100),
    /** Search beam (1: greedy). */
    beam: z.number().int().positive().default(2),
    lengthPenalty: z.number().default(1),
    /** Test pairs of the teacher-forced loss (default: all of them). */
    lossSamples: z.number().int().positive().optional(),
  })
  .strict();
export type TranslationScoring = z.input<typeof TranslationScoringSchema>;

/** One compressed variant of one translator: its packed bytes, and what it loses in BLEU and loss. */
export interface TranslationCompressionRow {
  model: string;
  parameters: number;
  method: CompressionRow['method'];
  /** Sparsity (prune) or bits (quantize); 0 for the uncompressed model. */
  setting: number;
  /** Size of the saved (packed) model file: compressedSize. */
  bytes: number;
  /** Of which the encoder's and decoder's layers (layerBytes). */
  layerBytes: number;
  /** sacreBLEU's corpus BLEU and chrF of the beam-search translations of the scored test pairs. */
  bleu: number;
  chrf: number;
  /** The uncompressed model's BLEU minus this one's. */
  bleuDrop: number;
  /** Teacher-forced cross-entropy per target token on the test pairs. */
  loss: number;
  /** This one's loss minus the uncompressed model's. */
  lossRise: number;
  meanWeightError: number;
  weightErrors: Record<string, number>;
}

export interface TranslationStudyOptions extends CompressionGrid {
  /** Trained translators of different sizes. */
  models: { name: string; model: Transformer }[];
  /** Held-out pairs with their texts (a ParallelTask's test split). */
  data: ParallelDataset;
  scoring?: TranslationScoring;
  /** Called after each row. */
  onRow?: (row: TranslationCompressionRow) => void;
}

/** BLEU (with its sacreBLEU signature), chrF and loss of one translator on the study's pairs. */
export async function scoreTranslator(
  model: Transformer,
  data: ParallelDataset,
  scoring: TranslationScoring = {},
): Promise<{ bleu: number; chrf: number; loss: number; signature: string }> {
  const o = parseConfig(TranslationScoringSchema, scoring, 'scoring');
  const t = await model.evaluate(data, { metric: 'bleu', beam: o.beam, lengthPenalty: o.lengthPenalty, maxSamples: o.samples });
  const { loss } = await model.evaluate(data, { metric: 'loss', ...(o.lossSamples !== undefined ? { maxSamples: o.lossSamples } : {}) });
  return { bleu: t.bleu, chrf: t.chrf, loss, signature: t.bleuSignature };
}

/**
 * compressionStudy for translators, one-shot: each model pruned to each sparsity and quantized to each bit
 * width (and, with `structured`, without a share of its heads / FFN units in encoder and decoder), and for every variant the packed file's bytes, BLEU and chrF of beam search on the first
 * `scoring.samples` test pairs, and the teacher-forced test loss.
 */
export async function translationCompressionStudy(opts: TranslationStudyOptions): Promise<TranslationCompressionRow[]> {
  if (opts.models.length === 0) throw new RangeError('models: give at least one model');
  if (!(opts.data instanceof ParallelDataset) || opts.data.source.length === 0)
    throw new TypeError('data: expected translation pairs with their texts (a ParallelTask split)');
  const scoring = parseConfig(TranslationScoringSchema, opts.scoring ?? {}, 'scoring');
  const rows: TranslationCompressionRow[] = [];
  for (const { name, model } of opts.models) {
    if (model.config.task !== 'translate') throw new TypeError(`models: '${name}' is not a translator (task '${model.config.task}')`);
    const base = await scoreTranslator(model, opts.data, scoring);
    await forEachVariant(model, opts, async (method, setting, c) => {
      const s = c === model ? base : await scoreTranslator(c, opts.data, scoring);
      const row: TranslationCompressionRow = await variantRow(name, model, method, setting, c, {
        bleu: s.bleu,
        chrf: s.chrf,
        bleuDrop: base.bleu - s.bleu,
        loss: s.loss,
        lossRise: s.loss - base.loss,
      });
      rows.push(row);
      opts.onRow?.(row);
    });
  }
  return rows;
}
