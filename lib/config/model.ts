import { z } from 'zod';
import { parseConfig } from './parse';

const positiveInt = z.number().int().positive();
const probability = z.number().min(0).lt(1);

/**
 * A RoBERTa-style encoder. Defaults are stated here once; `ffn` defaults to 4 x dModel.
 * Names follow the field: dModel (hidden size), layers, heads, headDim, ffn (feed-forward width).
 */
export const ModelConfigSchema = z
  .object({
    task: z.enum(['mlm', 'classify']).default('mlm'),
    vocabSize: positiveInt,
    maxLen: positiveInt.default(128),
    dModel: positiveInt.default(256),
    layers: positiveInt.default(4),
    heads: positiveInt.default(4),
    /**
     * Width of one attention head; dModel / heads unless given. Only a model whose heads were pruned
     * (prune structure 'heads') has heads x headDim < dModel: its config says so here.
     */
    headDim: positiveInt.optional(),
    ffn: positiveInt.optional(),
    dropout: probability.default(0.1),
    attentionDropout: probability.default(0.1),
    norm: z.enum(['post', 'pre']).default('post'),
    layerNormEps: z.number().positive().default(1e-5),
    padId: z.number().int().min(0).default(0),
    numLabels: z.number().int().min(2).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.headDim === undefined && c.dModel % c.heads !== 0) {
      ctx.addIssue({ code: 'custom', path: ['heads'], message: `must divide dModel (${c.dModel}), got ${c.heads}` });
    }
    if (c.padId >= c.vocabSize) {
      ctx.addIssue({ code: 'custom', path: ['padId'], message: `must be < vocabSize (${c.vocabSize})` });
    }
    if (c.task === 'classify' && c.numLabels === undefined) {
      ctx.addIssue({ code: 'custom', path: ['numLabels'], message: "is required when task is 'classify'" });
    }
    if (c.task === 'mlm' && c.numLabels !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['numLabels'], message: "only applies when task is 'classify'" });
    }
  })
  // headDim is kept only where it is not dModel / heads, so every config without pruned heads reads as before.
  .transform(({ headDim, ...c }) => ({
    ...c,
    ...(headDim !== undefined && headDim * c.heads !== c.dModel ? { headDim } : {}),
    ffn: c.ffn ?? 4 * c.dModel,
  }));

export type ModelConfigInput = z.input<typeof ModelConfigSchema>;
export type ModelConfig = z.output<typeof ModelConfigSchema>;

export function parseModelConfig(input: unknown): ModelConfig {
  return parseConfig(ModelConfigSchema, input, 'model config');
}

export const DeviceSchema = z.union([z.enum(['cpu', 'cuda', 'auto']), z.string().regex(/^cuda:\d+$/)]);
export type Device = z.infer<typeof DeviceSchema>;
