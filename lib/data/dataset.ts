import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { native, NativeDataset, NativeMlmOptions } from '../native';
import { checkSequences, checkTokenId, describeValue, specialIds, TokenArray, TokenizerLike } from './tokens';

const MlmOptionsSchema = z
  .object({
    maxLen: z.number().int().min(2).default(128),
    maskProb: z.number().gt(0).lt(1).default(0.15),
    maskTokenProb: z.number().min(0).max(1).default(0.8),
    randomTokenProb: z.number().min(0).max(1).default(0.1),
  })
  .strict()
  .refine((o) => o.maskTokenProb + o.randomTokenProb <= 1, {
    path: ['randomTokenProb'],
    message: 'maskTokenProb + randomTokenProb must be <= 1',
  });
export type MlmOptions = z.input<typeof MlmOptionsSchema>;

function nativeMlmOptions(o: z.output<typeof MlmOptionsSchema>, tokenizer: TokenizerLike): NativeMlmOptions {
  return {
    maxLen: o.maxLen,
    maskProb: o.maskProb,
    maskTokenProb: o.maskTokenProb,
    randomTokenProb: o.randomTokenProb,
    maskId: tokenizer.special.mask,
    clsId: tokenizer.special.cls,
    vocabSize: tokenizer.vocabSize,
    specialIds: specialIds(tokenizer.special),
  };
}

/** Anything a Trainer can draw batches from: an MlmDataset or a LabelledDataset. */
export interface TrainingData {
  readonly kind: 'mlm' | 'classify';
  readonly size: number;
  /** The tokenizer the ids come from, when the data was made with one (Trainer.fit saves it beside the weights). */
  readonly tokenizer?: TokenizerLike;
}

/** One batch as the engine draws it for training or evaluation. */
export interface TrainingBatch {
  /** Token ids (B, T), row-major. */
  ids: Int32Array;
  /** [B, T]. */
  dims: [number, number];
  /** MLM: (N) the original ids at the masked positions; classification: (B) the labels. */
  targets: Int32Array;
  /** MLM: (N) flat indices into B * T of the masked positions. */
  positions?: Int32Array;
  /** (B, T) attention mask (1 = a real token), when the batch is padded. */
  mask?: Uint8Array;
}

const handles = new WeakMap<TrainingData, NativeDataset>();

/** The native dataset behind an MlmDataset or LabelledDataset, for lib/ modules only (lib/index.ts does not export this). */
export function dataHandle(data: TrainingData): NativeDataset {
  const h = handles.get(data);
  if (!h)
    throw new TypeError(
      'expected an MlmDataset or a LabelledDataset (Corpus, MlmDataset.from*, LabelledDataset.fromSequences or Dataset.classification)',
    );
  return h;
}

/**
 * Masked-LM data as RoBERTa's FULL-SENTENCES: documents joined by eos, cut into blocks of maxLen
 * tokens (cls + maxLen - 1 text tokens) that cross document boundaries; 15% of tokens are chosen
 * each time a block is drawn (80% -> mask, 10% -> random token, 10% kept), never special tokens.
 */
export class MlmDataset implements TrainingData {
  readonly kind = 'mlm' as const;
  private constructor(
    private readonly handle: NativeDataset,
    /** Tokens in the blocks (fromShards: whole blocks only). */
    readonly tokenCount: number,
    readonly options: Required<MlmOptions>,
    readonly tokenizer: TokenizerLike,
  ) {
    handles.set(this, handle);
  }

  /** From documents already tokenized: each is followed by the tokenizer's eos. */
  static fromDocuments(docs: ArrayLike<number>[], tokenizer: TokenizerLike, options: MlmOptions = {}): MlmDataset {
    checkSequences(docs, 'docs', tokenizer.vocabSize);
    const total = docs.reduce((n, d) => n + d.length + 1, 0);
    const stream = new Int32Array(total);
    let at = 0;
    for (const d of docs) {
      stream.set(d, at);
      at += d.length;
      stream[at++] = tokenizer.special.eos;
    }
    return MlmDataset.fromStream(stream, tokenizer, options);
  }

  /** From one token stream (documents already separated). */
  static fromStream(stream: TokenArray, tokenizer: TokenizerLike, options: MlmOptions = {}): MlmDataset {
    const o = parseConfig(MlmOptionsSchema, options, 'MLM data options');
    if (stream instanceof Int32Array || stream instanceof Uint32Array || stream instanceof Uint16Array) {
      for (let i = 0; i < stream.length; i++) {
        if (stream[i] < 0 || stream[i] >= tokenizer.vocabSize) checkTokenId(stream[i], `stream[${i}]`, tokenizer.vocabSize);
      }
    }
    const handle = native().createMlmData(stream, nativeMlmOptions(o, tokenizer));
    return new MlmDataset(handle, stream.length, o, tokenizer);
  }

  /**
   * From token shards on disk (Corpus.prepare writes them), memory-mapped by the engine and read as one
   * stream in the order given: nothing is loaded into the JS heap.
   */
  static fromShards(paths: string[], tokenizer: TokenizerLike, options: MlmOptions = {}): MlmDataset {
    const o = parseConfig(MlmOptionsSchema, options, 'MLM data options');
    const handle = native().createMlmShards(paths, nativeMlmOptions(o, tokenizer));
    return new MlmDataset(handle, handle.size * (o.maxLen - 1), o, tokenizer);
  }

  /** Blocks of maxLen tokens. */
  get size(): number {
    return this.handle.size;
  }

  /** Batch `index` of the shuffled, masked training stream (what step index / accumulation would see). */
  trainBatch(index: number, batchSize: number, seed: number): TrainingBatch {
    return this.handle.trainBatch(index, batchSize, seed);
  }

  /** Blocks [first, first + count) with validation masking seeded by `seed`. */
  evalBatch(first: number, count: number, seed: number): TrainingBatch {
    return this.handle.evalBatch(first, count, seed);
  }

  dispose(): void {
    this.handle.dispose();
  }
}

/** Sequences with integer labels, for sequence classification (first-token head). */
export class LabelledDataset implements TrainingData {
  readonly kind = 'classify' as const;
  private constructor(
    private readonly handle: NativeDataset,
    readonly numLabels: number,
    readonly tokenizer?: TokenizerLike,
  ) {
    handles.set(this, handle);
  }

  /** Each sequence should start with the tokenizer's cls token; longer ones are truncated to maxLen. */
  static fromSequences(
    sequences: ArrayLike<number>[],
    labels: number[],
    opts: { maxLen: number; padId: number; tokenizer?: TokenizerLike },
  ): LabelledDataset {
    checkSequences(sequences, 'sequences');
    if (!Array.isArray(labels)) throw new TypeError(`labels: expected an array of label indices, got ${describeValue(labels)}`);
    const bad = labels.findIndex((l) => !Number.isInteger(l) || l < 0);
    if (bad >= 0) throw new TypeError(`labels[${bad}]: expected a label index (an integer >= 0), got ${labels[bad]}`);
    if (sequences.length !== labels.length) {
      throw new RangeError(`labels: got ${labels.length} labels for ${sequences.length} sequences`);
    }
    const offsets = new Int32Array(sequences.length + 1);
    sequences.forEach((s, i) => (offsets[i + 1] = offsets[i] + s.length));
    const tokens = new Int32Array(offsets[sequences.length]);
    sequences.forEach((s, i) => tokens.set(s, offsets[i]));
    const handle = native().createLabelledData(tokens, offsets, Int32Array.from(labels), opts.maxLen, opts.padId);
    return new LabelledDataset(handle, Math.max(...labels) + 1, opts.tokenizer);
  }

  get size(): number {
    return this.handle.size;
  }

  dispose(): void {
    this.handle.dispose();
  }
}
