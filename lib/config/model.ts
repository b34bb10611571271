import { z } from 'zod';
import { parseConfig } from './parse';

const positiveInt = z.number().int().positive();
const probability = z.number().min(0).lt(1);

/** Tokens per sequence of a model, a dataset or a sweep when not given. */
export const DEFAULT_MAX_LEN = 128;
/** Encoder layers of an 'mlm' or 'classify' model when not given. */
export const DEFAULT_LAYERS = 4;

/** What a model does: masked-LM pretraining, sequence classification, or translation (encoder-decoder). */
export const TASKS = ['mlm', 'classify', 'translate'] as const;
export type Task = (typeof TASKS)[number];

const TRANSLATE_FIELDS = ['encoderLayers', 'decoderLayers', 'tieEmbeddings', 'bosId', 'eosId'] as const;
/** The translate model's architecture options beyond Vaswani et al.'s: what Marian (MarianMT) needs. */
const ARCHITECTURE_OPTIONS = ['positions', 'activation', 'scaleEmbeddings', 'embeddingNorm', 'finalLogitsBias'] as const;

/**
 * A RoBERTa-style encoder, or with task 'translate' an encoder-decoder Transformer (Vaswani et al. 2017,
 * fairseq's transformer). Defaults are stated here once; `ffn` defaults to 4 x dModel.
 * Names follow the field: dModel (hidden size), layers, heads, headDim, ffn (feed-forward width);
 * translate: encoderLayers, decoderLayers, tieEmbeddings, bosId, eosId, and the architecture options
 * positions, activation, scaleEmbeddings, embeddingNorm, finalLogitsBias (Marian's: 'sinusoidal', 'swish',
 * true, false, true; lib/marian.ts).
 */
export const ModelConfigSchema = z
  .object({
    task: z.enum(TASKS).default('mlm'),
    vocabSize: positiveInt,
    maxLen: positiveInt.default(DEFAULT_MAX_LEN),
    dModel: positiveInt.default(256),
    /** Encoder depth of an 'mlm' or 'classify' model (default DEFAULT_LAYERS); a 'translate' model has encoderLayers and decoderLayers. */
    layers: positiveInt.optional(),
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
    /** Translate only: the encoder's and the decoder's depth (both required). */
    encoderLayers: positiveInt.optional(),
    decoderLayers: positiveInt.optional(),
    /**
     * Translate only: which matrices share the one (source = target) vocabulary's weights. 'all': encoder
     * embedding = decoder embedding = output projection (fairseq --share-all-embeddings); 'decoder': decoder
     * embedding = output projection; 'none': three matrices.
     */
    tieEmbeddings: z.enum(['all', 'decoder', 'none']).optional(),
    /** Translate only: the id the decoder starts from (default 1, SentencePiece's <s>) and the one it ends on (default 2, </s>). */
    bosId: z.number().int().min(0).optional(),
    eosId: z.number().int().min(0).optional(),
    /**
     * Translate only: the position embeddings, 'learned' (default: a row per position, trained) or 'sinusoidal'
     * (fixed, as Marian and transformers' MarianMT lay them out: sin in the first half of a row, cos in the second).
     */
    positions: z.enum(['learned', 'sinusoidal']).optional(),
    /** Translate only: the feed-forward's non-linearity, 'gelu' (default, exact), 'relu', or 'swish' (SiLU, Marian's). */
    activation: z.enum(['gelu', 'relu', 'swish']).optional(),
    /** Translate only: multiply the token embeddings by sqrt(dModel) before adding the positions (default false; Marian: true). */
    scaleEmbeddings: z.boolean().optional(),
    /** Translate, post-LN only: a LayerNorm on the embeddings (default true, RoBERTa's; Marian has none). */
    embeddingNorm: z.boolean().optional(),
    /** Translate only: a trained bias on the output logits (default false; Marian's final_logits_bias). */
    finalLogitsBias: z.boolean().optional(),
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
    if (c.task !== 'classify' && c.numLabels !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['numLabels'], message: "only applies when task is 'classify'" });
    }
    if (c.task === 'translate') {
      for (const f of ['encoderLayers', 'decoderLayers'] as const) {
        if (c[f] === undefined) ctx.addIssue({ code: 'custom', path: [f], message: "is required when task is 'translate'" });
      }
      // A saved translate config carries layers = encoderLayers (the transform below writes it).
      if (c.layers !== undefined && c.layers !== c.encoderLayers) {
        ctx.addIssue({
          code: 'custom',
          path: ['layers'],
          message: "does not apply when task is 'translate': give encoderLayers and decoderLayers",
        });
      }
      for (const f of ['bosId', 'eosId'] as const) {
        const v = c[f];
        if (v !== undefined && v >= c.vocabSize)
          ctx.addIssue({ code: 'custom', path: [f], message: `must be < vocabSize (${c.vocabSize})` });
      }
      if ((c.eosId ?? 2) === c.padId) ctx.addIssue({ code: 'custom', path: ['eosId'], message: `must differ from padId (${c.padId})` });
      if (c.maxLen < 2) ctx.addIssue({ code: 'custom', path: ['maxLen'], message: "must be >= 2 when task is 'translate'" });
      if (c.norm === 'pre' && c.embeddingNorm !== undefined)
        ctx.addIssue({ code: 'custom', path: ['embeddingNorm'], message: "only applies when norm is 'post' (a pre-LN model has none)" });
    } else {
      for (const f of [...TRANSLATE_FIELDS, ...ARCHITECTURE_OPTIONS] as const) {
        if (c[f] !== undefined)
          ctx.addIssue({ code: 'custom', path: [f], message: `only applies when task is 'translate', got task '${c.task}'` });
      }
    }
  })
  // headDim is kept only where it is not dModel / heads, so every config without pruned heads reads as before;
  // the translate fields only on translate models, so MLM and classify configs read as before.
  .transform(({ headDim, layers, encoderLayers, decoderLayers, tieEmbeddings, bosId, eosId, ...all }) => {
    // The architecture options are kept only where they differ from their defaults, so every config written
    // before them reads (and compares) as before, and one that sets them round-trips through a file.
    const { positions, activation, scaleEmbeddings, embeddingNorm, finalLogitsBias, ...c } = all;
    const options = {
      ...(positions === 'sinusoidal' ? { positions } : {}),
      ...(activation !== undefined && activation !== 'gelu' ? { activation } : {}),
      ...(scaleEmbeddings ? { scaleEmbeddings } : {}),
      ...(embeddingNorm === false ? { embeddingNorm } : {}),
      ...(finalLogitsBias ? { finalLogitsBias } : {}),
    };
    return {
      ...c,
      // A translate model's `layers` is its encoder's depth (the engine reads encoderLayers).
      layers: layers ?? encoderLayers ?? DEFAULT_LAYERS,
      ...(headDim !== undefined && headDim * c.heads !== c.dModel ? { headDim } : {}),
      ffn: c.ffn ?? 4 * c.dModel,
      ...(c.task === 'translate'
        ? {
            encoderLayers: encoderLayers!,
            decoderLayers: decoderLayers!,
            tieEmbeddings: tieEmbeddings ?? 'all',
            bosId: bosId ?? 1,
            eosId: eosId ?? 2,
            ...options,
          }
        : {}),
    };
  });

export type ModelConfigInput = z.input<typeof ModelConfigSchema>;
export type ModelConfig = z.output<typeof ModelConfigSchema>;

export function parseModelConfig(input: unknown): ModelConfig {
  return parseConfig(ModelConfigSchema, input, 'model config');
}

export const DeviceSchema = z.union([z.enum(['cpu', 'cuda', 'auto']), z.string().regex(/^cuda:\d+$/)]);
export type Device = z.infer<typeof DeviceSchema>;

/** Transformer.create's options. */
export const CreateOptionsSchema = z
  .object({
    /** Seeds the initialisation (N(0, 0.02)). */
    seed: z.number().int().min(0).default(1),
    device: DeviceSchema.default('cpu'),
  })
  .strict();
export type CreateOptions = z.input<typeof CreateOptionsSchema>;

/** Transformer.load's options. */
export const LoadOptionsSchema = z.object({ device: DeviceSchema.default('cpu') }).strict();
export type LoadOptions = z.input<typeof LoadOptionsSchema>;

/** Transformer.fromPretrained's and fromHF's options: a body under a head for `task` (default: the saved model's). */
export const PretrainedOptionsSchema = z
  .object({
    task: z.enum(['mlm', 'classify']).optional(),
    /** The new classification head's classes. */
    numLabels: z.number().int().min(2).optional(),
    /** Seeds the new head (and any weight the file lacks). */
    seed: z.number().int().min(0).default(1),
    device: DeviceSchema.default('cpu'),
  })
  .strict();
export type PretrainedOptions = z.input<typeof PretrainedOptionsSchema>;
