import { z } from 'zod';
import { DEFAULT_EVAL_SEED, PrecisionSchema } from './train';

// The options of Transformer.predict, fillMask and evaluate (the loss path; translation data's search and
// metric options are in translate.ts). What depends on the model or the batch (topK <= vocabSize, positions
// inside the batch, the unigram model's class) is checked in lib/model.ts.

/**
 * An attention mask beside an array of sequences: refused, so a padded batch is never run as if unpadded.
 * Ragged arrays are masked by their lengths; a mask of your own goes in the object form of the tokens.
 */
const misplacedMask = z
  .undefined({
    error:
      'goes with the ids it masks: pass tokens as { ids: Int32Array, batch, length, attentionMask }; arrays of sequences are masked by their lengths',
  })
  .optional();

export const PredictOptionsSchema = z
  .object({
    precision: PrecisionSchema,
    attentionMask: misplacedMask,
  })
  .strict();
export type PredictOptions = Omit<z.input<typeof PredictOptionsSchema>, 'attentionMask'>;

/** fillMask's options for a model of `vocabSize` tokens (topK is at most that). */
export const fillMaskOptionsSchema = (vocabSize: number) =>
  z
    .object({
      /** Candidates per masked position, most likely first. */
      topK: z
        .number()
        .refine((k) => Number.isInteger(k) && k >= 1 && k <= vocabSize, {
          error: (iss) => `must be an integer in 1..${vocabSize}, got ${String(iss.input)}`,
        })
        .default(5),
      /** The id marking the positions to fill (default: the mask id of the model's tokenizer, else 4, trainlarge's `<mask>`). */
      maskId: z.number().int().min(0).optional(),
      /** [sequence, position] pairs to fill instead of the positions holding maskId. */
      positions: z.array(z.tuple([z.number().int(), z.number().int()])).optional(),
      precision: PrecisionSchema,
      attentionMask: misplacedMask,
    })
    .strict();
export type FillMaskOptions = Omit<z.input<ReturnType<typeof fillMaskOptionsSchema>>, 'attentionMask'>;

/** Transformer.evaluate's options on masked-LM and classification data (the loss, perplexity, accuracy). */
export const EvaluateOptionsSchema = z
  .object({
    batchSize: z.number().int().positive().default(32),
    /** Evaluate on the first N samples only (default: all). */
    maxSamples: z.number().int().positive().optional(),
    /** Masking seed for MLM data (fixed so numbers compare across runs). */
    seed: z.number().int().min(0).default(DEFAULT_EVAL_SEED),
    precision: PrecisionSchema,
    /** MLM: the unigram model to compare with (default: the data's own, which Corpus.valid() sets); lib/model.ts checks its class. */
    unigram: z.unknown().optional(),
  })
  .strict();
