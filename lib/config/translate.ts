import { z } from 'zod';
import { PrecisionSchema } from './train';

// Options of Transformer.translate and of Transformer.evaluate on translation data; bind/options.cc reads
// the search fields (read_generate_options).

const searchFields = {
  /** Beam width; 1 is greedy search. */
  beam: z.number().int().min(1).default(5),
  /** Hypotheses per sentence, best first (<= beam); more than 1 needs `scores: true`. */
  nbest: z.number().int().min(1).default(1),
  /** fairseq's lenpen: a hypothesis scores sum(log p) / length^lengthPenalty (1: the mean log-probability). */
  lengthPenalty: z.number().default(1.0),
  /** At most floor(maxLenA x source tokens + maxLenB) generated tokens (and maxLen - 1), as fairseq's --max-len-a/b. */
  maxLenA: z.number().min(0).default(0),
  maxLenB: z.number().min(0).default(200),
  /** Sentences per native search call (sorted by length, so a call holds sentences of about one length). */
  batchSize: z.number().int().positive().default(32),
  precision: PrecisionSchema,
};

/**
 * The rule between nbest and beam, for every caller (these schemas, the service's request bodies): what is
 * wrong with nbest, or undefined. A beam below 1 is reported by its own field's check; comparing nbest with it
 * would only add noise.
 */
export function nbestProblem(beam: number, nbest: number): string | undefined {
  return beam >= 1 && nbest > beam ? `must be <= beam (${beam})` : undefined;
}

function checkNbest(o: { beam: number; nbest: number }, ctx: z.RefinementCtx): void {
  const problem = nbestProblem(o.beam, o.nbest);
  if (problem) ctx.addIssue({ code: 'custom', path: ['nbest'], message: problem });
}

export const TranslateOptionsSchema = z
  .object({
    ...searchFields,
    /** Return { text, score, nbest } per sentence instead of strings. */
    scores: z.boolean().default(false),
  })
  .strict()
  .superRefine((o, ctx) => {
    checkNbest(o, ctx);
    if (o.nbest > 1 && !o.scores) ctx.addIssue({ code: 'custom', path: ['nbest'], message: 'more than 1 needs scores: true' });
  });
export type TranslateOptions = z.input<typeof TranslateOptionsSchema>;

export const TranslationEvalSchema = z
  .object({
    ...searchFields,
    /** 'bleu' or 'chrf': translate the split and score it (sacreBLEU's corpus scores); 'loss': the validation loss. */
    metric: z.enum(['bleu', 'chrf', 'loss']).default('bleu'),
    beam: searchFields.beam.default(4),
    /** The first N pairs only (default: all). */
    maxSamples: z.number().int().positive().optional(),
  })
  .strict()
  .superRefine(checkNbest);
export type TranslationEvalOptions = z.input<typeof TranslationEvalSchema>;
