// A size sweep's spec: the JSON file's schema (models, corpus, budget, cadence, fair-comparison options), the
// run names, reading a sweep directory's spec back, and the model config each model of a sweep trains.
import * as path from 'path';
import { z } from 'zod';
import { DEFAULT_MAX_LEN, DeviceSchema, ModelConfigInput } from '../config/model';
import { parseConfig } from '../config/parse';
import { SCHEDULES, WARMUP_FRACTION } from '../config/train';
import { PARALLEL_SOURCES } from '../data/builtin/parallel';
import { ParallelFilesSpecSchema } from '../data/parallel-files';
import { readJson } from '../io';
import { LrSearchSchema } from './lr-search';

const positive = z.number().positive();

const ModelSchema = z
  .object({
    dModel: z.number().int().positive(),
    /** Encoder depth of an 'mlm' sweep's models. */
    layers: z.number().int().positive().optional(),
    /** A 'translate' sweep's models: the encoder's and the decoder's depth, and which embeddings are shared. */
    encoderLayers: z.number().int().positive().optional(),
    decoderLayers: z.number().int().positive().optional(),
    tieEmbeddings: z.enum(['all', 'decoder', 'none']).optional(),
    heads: z.number().int().positive(),
    ffn: z.number().int().positive().optional(),
    dropout: z.number().min(0).lt(1).optional(),
    norm: z.enum(['post', 'pre']).optional(),
    /** Per-model training overrides (a batch-size or learning-rate grid). */
    lr: positive.optional(),
    batchSize: z.number().int().positive().optional(),
    /** Run name; default from the shape, e.g. d256-l4-h4 (translate: d256-enc4-dec4-h4). */
    label: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/)
      .optional(),
  })
  .strict();

/** A translate sweep's parallel corpus: what Dataset.parallel reads, and the shared tokenizer's size. */
const ParallelDataSchema = z
  .object({
    /** The shared SentencePiece vocabulary, trained once on both sides of train and kept in the sweep directory. */
    vocabSize: z.number().int().min(16).default(8000),
    /** At most this many pairs per split (the first, after the length filter). */
    maxPairs: z.number().int().positive().optional(),
    minChars: z.number().int().min(0).optional(),
    maxChars: z.number().int().positive().optional(),
    /** Swap the direction (bible-en-es read as Spanish -> English). */
    reverse: z.boolean().optional(),
  })
  .strict();

const BleuSchema = z
  .object({
    /** Validation pairs translated at each evaluation (the first ones: a fixed subset). */
    samples: z.number().int().positive().default(100),
    /** Search beam; 1 is greedy. */
    beam: z.number().int().positive().default(1),
  })
  .strict();

const TASK_ONLY = {
  translate: ['data', 'bleu', 'labelSmoothing', 'batchTokens'],
} as const;

export const SweepSpecSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, . _ - only'),
    /** 'mlm' (default): masked-LM pretraining on a corpus; 'translate': encoder-decoder models on a parallel corpus. */
    task: z.enum(['mlm', 'translate']).default('mlm'),
    /**
     * mlm: a built-in corpus name (prepared into data/NAME) or the directory of a prepared corpus.
     * translate: a built-in parallel corpus ('bible-en-es', ...) or your files { name, train: { files, format }, valid, test }.
     */
    corpus: z.union([z.string().min(1), ParallelFilesSpecSchema]),
    /** translate: how the parallel corpus is read and tokenized. */
    data: ParallelDataSchema.optional(),
    models: z.array(ModelSchema).min(1),
    /** Tokens per sequence (translate: per side, eos included). */
    maxLen: z.number().int().min(2).default(DEFAULT_MAX_LEN),
    budget: z.union([
      z.object({ seconds: positive }).strict(),
      z.object({ steps: z.number().int().positive() }).strict(),
      z.object({ tokens: z.number().int().positive() }).strict(),
    ]),
    evalEvery: z.union([z.object({ seconds: positive }).strict(), z.object({ steps: z.number().int().positive() }).strict()]),
    /** Validation blocks (translate: pairs) per loss evaluation (default: all). */
    evalSamples: z.number().int().positive().optional(),
    /**
     * translate: BLEU at every evaluation on the first `samples` validation pairs, search beam `beam` (1: greedy);
     * its time, like the loss's, is not charged to training.
     */
    bleu: BleuSchema.optional(),
    lr: positive.default(1e-3),
    /**
     * A learning rate per model, searched: each of `rates` trains a throwaway copy for `fraction` of the model's
     * planned steps and the lowest validation loss wins (models with their own lr keep it). Its time is reported.
     */
    lrSearch: LrSearchSchema.optional(),
    /**
     * LayerNorm placement of every model that does not set its own: 'post' (the models' default, BERT/RoBERTa)
     * or 'pre', which trains deep models stably at higher learning rates where post-LN plateaus or diverges.
     */
    norm: z.enum(['post', 'pre']).optional(),
    /** Dropout and attention dropout of every model that does not set its own dropout (the models' default 0.1 each). */
    dropout: z.number().min(0).lt(1).optional(),
    /** Sequences per step (mlm); a translate sweep batches by batchTokens. */
    batchSize: z.number().int().positive().default(16),
    /** translate: tokens per batch (fairseq's --max-tokens; the trainer's default DEFAULT_BATCH_TOKENS). */
    batchTokens: z.number().int().positive().optional(),
    /** translate: label smoothing epsilon (0.1 is usual; default 0). */
    labelSmoothing: z.number().min(0).lt(1).optional(),
    /** The LR schedule; default 'linear' (mlm) or 'inverse-sqrt' (translate, run open-ended under a seconds budget). */
    schedule: z.enum(SCHEDULES).optional(),
    /** Warmup as a fraction of the steps the budget allows. */
    warmup: z.number().min(0).max(1).default(WARMUP_FRACTION),
    seed: z.number().int().min(0).default(1),
    /** 'auto': CUDA when this libtorch and machine have it. */
    device: DeviceSchema.default('cpu'),
    precision: z.enum(['auto', 'fp32', 'bf16', 'fp16']).default('auto'),
    /** Gradient accumulation: batchSize x accumSteps sequences per optimizer step. */
    accumSteps: z.number().int().positive().default(1),
  })
  .strict()
  .superRefine((s, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const translate = s.task === 'translate';
    if (!translate) {
      for (const f of TASK_ONLY.translate) if (s[f] !== undefined) issue([f], "only applies when task is 'translate'");
      if (typeof s.corpus !== 'string')
        issue(['corpus'], "pair files apply when task is 'translate'; an mlm sweep names a corpus or its directory");
    } else if (typeof s.corpus === 'string' && !Object.prototype.hasOwnProperty.call(PARALLEL_SOURCES, s.corpus)) {
      issue(
        ['corpus'],
        `'${s.corpus}' is not a built-in parallel corpus (${Object.keys(PARALLEL_SOURCES).join(', ')}); give your files as { name, train: { files, format } }`,
      );
    }
    s.models.forEach((m, i) => {
      if (translate) {
        if (m.layers !== undefined)
          issue(['models', i, 'layers'], "does not apply when task is 'translate': give encoderLayers and decoderLayers");
        for (const f of ['encoderLayers', 'decoderLayers'] as const)
          if (m[f] === undefined) issue(['models', i, f], "is required when task is 'translate'");
        if (m.batchSize !== undefined)
          issue(['models', i, 'batchSize'], "does not apply when task is 'translate' (batches are made by batchTokens)");
      } else {
        if (m.layers === undefined) issue(['models', i, 'layers'], 'is required');
        for (const f of ['encoderLayers', 'decoderLayers', 'tieEmbeddings'] as const)
          if (m[f] !== undefined) issue(['models', i, f], "only applies when task is 'translate'");
      }
    });
  })
  .transform((s) => ({
    ...s,
    schedule: s.schedule ?? (s.task === 'translate' ? ('inverse-sqrt' as const) : ('linear' as const)),
    ...(s.task === 'translate' ? { data: s.data ?? ParallelDataSchema.parse({}), bleu: s.bleu ?? BleuSchema.parse({}) } : {}),
  }));
export type SweepSpec = z.input<typeof SweepSpecSchema>;
/** A sweep spec after the schema: every default filled in. */
export type Spec = z.output<typeof SweepSpecSchema>;

/** One model of a sweep, as its spec gives it. */
export type SweepModel = z.output<typeof ModelSchema>;

/** A run's name (its directory in the sweep's): the model's label, or d256-l4-h4 from its shape (translate: d256-enc4-dec4-h4). */
export function labelOf(m: SweepModel): string {
  const depth = m.layers !== undefined ? `l${m.layers}` : `enc${m.encoderLayers}-dec${m.decoderLayers}`;
  return m.label ?? `d${m.dModel}-${depth}-h${m.heads}${m.lr ? `-lr${m.lr}` : ''}${m.batchSize ? `-b${m.batchSize}` : ''}`;
}

/** A spec read back from a sweep directory, through the schema again (so one written before a field existed compares equal). */
export async function readSweepSpec(dir: string): Promise<Spec> {
  return parseConfig(SweepSpecSchema, await readJson<SweepSpec>(path.join(dir, 'sweep.json'), 'sweep'), path.join(dir, 'sweep.json'));
}

/** The model config a sweep trains for one of its models (what Transformer.create gets). */
export function sweepModelConfig(s: Spec, m: SweepModel, vocabSize: number): ModelConfigInput {
  return {
    vocabSize,
    maxLen: s.maxLen,
    dModel: m.dModel,
    heads: m.heads,
    ...(s.task === 'translate'
      ? {
          task: 'translate' as const,
          encoderLayers: m.encoderLayers,
          decoderLayers: m.decoderLayers,
          ...(m.tieEmbeddings ? { tieEmbeddings: m.tieEmbeddings } : {}),
        }
      : { layers: m.layers }),
    ...(m.ffn ? { ffn: m.ffn } : {}),
    ...(m.dropout !== undefined
      ? { dropout: m.dropout }
      : s.dropout !== undefined
        ? { dropout: s.dropout, attentionDropout: s.dropout }
        : {}),
    ...((m.norm ?? s.norm) ? { norm: m.norm ?? s.norm } : {}),
  };
}
