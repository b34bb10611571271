import { z } from 'zod';

// The options of prune and quantize (lib/compress/ops.ts); bind/options.cc reads their output.

const TargetList = z.array(z.enum(['attention', 'ffn', 'embeddings'])).min(1, 'select at least one of attention, ffn, embeddings');
// The whole model by default, as Q8BERT and Q-BERT (the quantization line the paper follows) compress it: the
// token embedding is most of a small model's bytes (46-82% in the paper-small experiments), and a tied output
// projection is the same tensor, so it follows. LayerNorm, biases and position embeddings stay as they are.
const DEFAULT_TARGETS: z.output<typeof TargetList> = ['attention', 'ffn', 'embeddings'];
const TargetsSchema = TargetList.default(DEFAULT_TARGETS);

/** What prune removes: single weights, or whole attention heads and/or feed-forward hidden units. */
export const PRUNE_STRUCTURES = ['unstructured', 'heads', 'ffn', 'heads+ffn'] as const;
export type PruneStructure = (typeof PRUNE_STRUCTURES)[number];
/** Where unstructured pruning's threshold applies: per matrix ('layer') or over all of them ('global'). */
export const PRUNE_SCOPES = ['layer', 'global'] as const;
export type PruneScope = (typeof PRUNE_SCOPES)[number];

export const PruneSchema = z
  .object({
    /**
     * 'unstructured' (default): single weights, smallest |w| first; the matrices keep their shapes and the
     * packed file stores a mask. 'heads', 'ffn', 'heads+ffn': whole attention heads and/or feed-forward
     * hidden units, the same number from every layer, least L2 norm first; the result is a smaller dense
     * model (fewer heads, a narrower ffn), so it also runs faster.
     */
    structure: z.enum(PRUNE_STRUCTURES).default('unstructured'),
    /** Fraction of the selected weights set to zero, in [0, 1); structured: of each layer's heads / units removed. */
    sparsity: z.number().min(0).lt(1),
    /** 'layer': each matrix loses `sparsity` of its entries; 'global': one threshold over all of them. */
    scope: z.enum(PRUNE_SCOPES).default('layer'),
    /** 'oneshot' now; 'gradual': Zhu & Gupta's cubic schedule over fine-tuning steps [startStep, endStep]. */
    schedule: z.enum(['oneshot', 'gradual']).default('oneshot'),
    initialSparsity: z.number().min(0).lt(1).default(0),
    startStep: z.number().int().min(0).default(0),
    endStep: z.number().int().positive().optional(),
    every: z.number().int().positive().default(10),
    /** Which weight matrices: attention (qkv, proj), ffn (fc1, fc2), embeddings (the token embedding); default all three. Unstructured only. */
    targets: TargetList.optional(),
    /** Prune this model instead of a copy (unstructured only: structured pruning makes a new, smaller model). */
    inPlace: z.boolean().default(false),
  })
  .strict()
  .refine((o) => o.schedule === 'oneshot' || o.endStep !== undefined, { path: ['endStep'], message: "is required for schedule 'gradual'" })
  .refine((o) => o.endStep === undefined || o.endStep > o.startStep, { path: ['endStep'], message: 'must be > startStep' })
  .refine((o) => o.initialSparsity <= o.sparsity, { path: ['initialSparsity'], message: 'must be <= sparsity' })
  .superRefine((o, ctx) => {
    if (o.structure === 'unstructured') return;
    const what = `structure '${o.structure}'`;
    const refuse = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (o.scope !== 'layer')
      refuse('scope', `${what} removes the same number of units from every layer: only 'layer' applies, got '${o.scope}'`);
    if (o.schedule !== 'oneshot')
      refuse('schedule', `${what} is one-shot: only 'oneshot' applies, got '${o.schedule}' (gradual pruning is unstructured)`);
    if (o.targets !== undefined)
      refuse(
        'targets',
        `does not apply to ${what}, which removes whole heads / feed-forward units (targets select matrices for unstructured pruning)`,
      );
    if (o.inPlace) refuse('inPlace', `${what} makes a new, smaller model: only false applies`);
  })
  .transform((o) => (o.structure === 'unstructured' ? { ...o, targets: o.targets ?? DEFAULT_TARGETS } : o));
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

/**
 * The quantized engines toInt8 accepts. 'x86' is PyTorch 2.x's default engine on x86 CPUs; for Linear
 * layers it packs with fbgemm, so 'x86' and 'fbgemm' run the same kernel. libtorch 1.x has no 'x86' engine.
 */
export const INT8_ENGINES = ['auto', 'x86', 'onednn', 'fbgemm', 'qnnpack'] as const;
export type Int8Engine = (typeof INT8_ENGINES)[number];

/** toInt8's options. */
export const Int8OptionsSchema = z
  .object({
    /**
     * One of INT8_ENGINES; 'auto' takes the first this libtorch has of onednn, x86, fbgemm, qnnpack
     * (native/engine/int8.cc's order, from BENCHMARKS.md, "Int8 inference"), and where the CPU has AVX-512
     * VNNI and the libtorch fbgemm, packs fbgemm too for calls of up to 256 rows (batch x tokens): the
     * model's `compression.int8.engine` then reads 'fbgemm+onednn'.
     */
    engine: z
      .enum(INT8_ENGINES, {
        error: (iss) => `must be one of ${INT8_ENGINES.map((e) => `'${e}'`).join(', ')}; got '${String(iss.input)}'`,
      })
      .default('auto'),
  })
  .strict();
export type Int8Options = z.input<typeof Int8OptionsSchema>;
