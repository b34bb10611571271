// The compression experiment's spec: which sweep's models, the grid, and (mlm sweeps) the task they are
// fine-tuned on or (translate sweeps) how translations are scored. The runners are compression.ts (classifiers)
// and compression-translate.ts (translators).
import { z } from 'zod';
import { DEFAULT_COMPRESSION_GRID } from '../compress/study';
import { TranslationScoringSchema } from '../compress/study-translate';
import { CLASSIFICATION_SOURCES } from '../data/builtin/sources';

const sparsities = z.array(z.number().min(0).lt(1));

export const CompressionSpecSchema = z
  .object({
    kind: z.literal('compression'),
    name: z.string().regex(/^[A-Za-z0-9._-]+$/),
    /**
     * The directory of a finished sweep: its runs are the models, one per size. An mlm sweep's encoders are
     * fine-tuned on `task` first; a translate sweep's translators are compressed as trained and scored by BLEU.
     */
    sweep: z.string().min(1),
    /** mlm sweeps: the prepared corpus the sweep trained on (its tokenizer encodes the task). */
    corpus: z.string().min(1).optional(),
    /** mlm sweeps: the labelled task to fine-tune on. */
    task: z.enum(Object.keys(CLASSIFICATION_SOURCES) as [string, ...string[]]).optional(),
    /** mlm sweeps: tokens per fine-tuning example. */
    maxLen: z.number().int().min(4).optional(),
    finetune: z
      .object({
        steps: z.number().int().positive(),
        lr: z.number().positive().default(5e-4),
        batchSize: z.number().int().positive().default(32),
      })
      .strict()
      .optional(),
    /**
     * mlm sweeps: compression during fine-tuning too, beside the one-shot grid: each sparsity also reached by
     * gradual pruning and each bit width also trained with QAT, `steps` more fine-tuning steps on the task from the
     * fine-tuned classifier (lr default: finetune's). The report compares them with one-shot.
     */
    recover: z.object({ steps: z.number().int().positive(), lr: z.number().positive().optional() }).strict().optional(),
    /** translate sweeps: how each variant is scored (BLEU on the first `samples` test pairs, beam `beam`; loss). */
    scoring: TranslationScoringSchema.optional(),
    /** translate sweeps: a model whose uncompressed BLEU is below this has learned too little to lose any, and is left out of the claim. */
    minBleu: z.number().min(0).max(100).optional(),
    sparsities: sparsities.default([...DEFAULT_COMPRESSION_GRID.sparsities]),
    bits: z.array(z.number().int().min(2).max(8)).default([...DEFAULT_COMPRESSION_GRID.bits]),
    scope: z.enum(['layer', 'global']).default(DEFAULT_COMPRESSION_GRID.scope),
    /** Structured pruning too (none by default): sparsities per structure, e.g. { "heads": [0.5], "ffn": [0.5] }. */
    structured: z
      .object({ heads: sparsities.optional(), ffn: sparsities.optional(), 'heads+ffn': sparsities.optional() })
      .strict()
      .default({}),
    seed: z.number().int().min(0).default(1),
  })
  .strict();
export type CompressionSpec = z.input<typeof CompressionSpecSchema>;
export type ParsedCompressionSpec = z.output<typeof CompressionSpecSchema>;

/** Which fields each kind of sweep needs, and which it must not be given. */
export const SWEEP_FIELDS = {
  mlm: { required: ['corpus', 'task', 'finetune'], other: ['scoring', 'minBleu'] },
  translate: { required: [], other: ['corpus', 'task', 'maxLen', 'finetune', 'recover'] },
} as const;

/** Tokens per fine-tuning example when the spec gives no maxLen. */
export const DEFAULT_TASK_MAX_LEN = 64;
