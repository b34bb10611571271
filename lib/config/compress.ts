import { z } from 'zod';

// The options of prune and quantize (lib/compress/ops.ts); bind/options.cc reads their output.

const TargetsSchema = z
  .array(z.enum(['attention', 'ffn', 'embeddings']))
  .min(1, 'select at least one of attention, ffn, embeddings')
  .default(['attention', 'ffn']);

export const PruneSchema = z
  .object({
    /** Fraction of the selected weights set to zero, in [0, 1). */
    sparsity: z.number().min(0).lt(1),
    /** 'layer': each matrix loses `sparsity` of its entries; 'global': one threshold over all of them. */
    scope: z.enum(['layer', 'global']).default('layer'),
    /** 'oneshot' now; 'gradual': Zhu & Gupta's cubic schedule over fine-tuning steps [startStep, endStep]. */
    schedule: z.enum(['oneshot', 'gradual']).default('oneshot'),
    initialSparsity: z.number().min(0).lt(1).default(0),
    startStep: z.number().int().min(0).default(0),
    endStep: z.number().int().positive().optional(),
    every: z.number().int().positive().default(10),
    /** Which weight matrices: attention (qkv, proj), ffn (fc1, fc2), embeddings (the token embedding). */
    targets: TargetsSchema,
    /** Prune this model instead of a copy. */
    inPlace: z.boolean().default(false),
  })
  .strict()
  .refine((o) => o.schedule === 'oneshot' || o.endStep !== undefined, { path: ['endStep'], message: "is required for schedule 'gradual'" })
  .refine((o) => o.endStep === undefined || o.endStep > o.startStep, { path: ['endStep'], message: 'must be > startStep' })
  .refine((o) => o.initialSparsity <= o.sparsity, { path: ['initialSparsity'], message: 'must be <= sparsity' });
export type PruneOptions = z.input<typeof PruneSchema>;
/** PruneOptions validated, defaults filled: what the engine receives. */
export type PruneSettings = z.output<typeof PruneSchema>;

export const QuantizeSchema = z
  .object({
    /** Bits per weight, 2..8. */
    bits: z.number().int().min(2).max(8),
    granularity: z.enum(['channel', 'tensor']).default('channel'),
    symmetric: z.boolean().default(true),
    /** 'ptq': round to nearest now; 'qat': then fine-tune with fake quantization (straight-through estimator). */
    method: z.enum(['ptq', 'qat']).default('ptq'),
    targets: TargetsSchema,
    inPlace: z.boolean().default(false),
  })
  .strict();
export type QuantizeOptions = z.input<typeof QuantizeSchema>;
/** QuantizeOptions validated, defaults filled: what the engine receives. */
export type QuantizeSettings = z.output<typeof QuantizeSchema>;
