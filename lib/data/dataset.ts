import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { native, NativeBatchPlan, NativeDataset, NativeMlmOptions } from '../native';
import { checkSequences, checkTokenId, describeValue, specialIds, TokenArray, TokenizerLike, Unigram } from './tokens';

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

/** Anything a Trainer can draw batches from: an MlmDataset, a LabelledDataset or a ParallelDataset. */
export interface TrainingData {
  /** The model task the data trains: 'mlm', 'classify' or 'translate'. */
  readonly kind: 'mlm' | 'classify' | 'translate';
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
  /** MLM: (N) the original ids at the masked positions; classification: (B) the labels; translate: (B, T) target ids ending in eos, then pad. */
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
      'expected an MlmDataset, a LabelledDataset or a ParallelDataset (Corpus, MlmDataset.from*, LabelledDataset.fromSequences, ' +
        'Dataset.classification or Dataset.parallel)',
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
  /**
   * The unigram model of the training text (Corpus sets it on its train and valid data). With it, evaluate
   * reports the unigram baseline of the very targets it scored (EvalResult.maskUnigramLoss).
   */
  unigram?: Unigram;
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

/** One epoch of token-count batches of a ParallelDataset (ParallelDataset.batchPlan): the engine's own plan. */
export type BatchPlan = NativeBatchPlan;

/**
 * (source, target) sentence pairs for translation, tokenized and held natively; each side is truncated to
 * maxLen - 1 tokens and ends in the tokenizer's eos. Training batches are built by token count (the
 * trainer's batchTokens, fairseq's --max-tokens) from pairs ordered by length, so a batch holds pairs of
 * about one length; batch i is a pure function of (seed, batchTokens, i), so a resumed run sees the same
 * batches. The texts stay with the data for BLEU (Transformer.evaluate with metric 'bleu').
 */
export class ParallelDataset implements TrainingData {
  readonly kind = 'translate' as const;
  private constructor(
    private readonly handle: NativeDataset,
    /** The texts, in order (empty when made from token ids). */
    readonly source: string[],
    readonly target: string[],
    readonly maxLen: number,
    readonly tokenizer?: TokenizerLike,
  ) {
    handles.set(this, handle);
  }

  /**
   * From texts: both sides encoded with `tokenizer` (one vocabulary for both languages; the targets with its
   * encodeTargetBatch when it has one: a Marian tokenizer's target.spm).
   */
  static async fromTexts(
    source: string[],
    target: string[],
    tokenizer: TokenizerLike & {
      encodeBatch?: (texts: string[]) => Promise<Int32Array[]>;
      encodeTargetBatch?: (texts: string[]) => Promise<Int32Array[]>;
    },
    opts: { maxLen: number },
  ): Promise<ParallelDataset> {
    if (!Array.isArray(source) || !Array.isArray(target)) throw new TypeError('source, target: expected arrays of strings');
    if (source.length !== target.length) throw new RangeError(`target: has ${target.length} texts for ${source.length} sources`);
    const encode = async (texts: string[]) =>
      tokenizer.encodeBatch ? tokenizer.encodeBatch(texts) : texts.map((t) => tokenizer.encode(t));
    const encodeTarget = async (texts: string[]) => (tokenizer.encodeTargetBatch ? tokenizer.encodeTargetBatch(texts) : encode(texts));
    const [s, t] = [await encode(source), await encodeTarget(target)];
    return ParallelDataset.build(s, t, { ...opts, tokenizer, source, target });
  }

  /**
   * From a translation corpus's shards (Corpus.pairs): each side's sentences followed by eos, memory-mapped, so
   * a corpus of any size trains with the pair index (about 20 bytes a pair) in memory.
   */
  static fromShards(sourceShards: string[], targetShards: string[], opts: { maxLen: number; tokenizer: TokenizerLike }): ParallelDataset {
    if (!Number.isInteger(opts.maxLen) || opts.maxLen < 2) throw new RangeError(`maxLen: must be an integer >= 2, got ${opts.maxLen}`);
    const handle = native().createParallelShards(sourceShards, targetShards, {
      maxLen: opts.maxLen,
      padId: opts.tokenizer.special.pad,
      eosId: opts.tokenizer.special.eos,
    });
    return new ParallelDataset(handle, [], [], opts.maxLen, opts.tokenizer);
  }

  /** From token ids (without eos: the engine adds it), e.g. made by your own tokenizer. */
  static fromTokens(
    source: ArrayLike<number>[],
    target: ArrayLike<number>[],
    opts: { maxLen: number; padId: number; eosId: number; tokenizer?: TokenizerLike },
  ): ParallelDataset {
    return ParallelDataset.build(source, target, { ...opts, source: [], target: [] });
  }

  private static build(
    source: ArrayLike<number>[],
    target: ArrayLike<number>[],
    o: { maxLen: number; padId?: number; eosId?: number; tokenizer?: TokenizerLike; source: string[]; target: string[] },
  ): ParallelDataset {
    if (!Number.isInteger(o.maxLen) || o.maxLen < 2) throw new RangeError(`maxLen: must be an integer >= 2, got ${o.maxLen}`);
    checkSequences(source, 'source', o.tokenizer?.vocabSize);
    checkSequences(target, 'target', o.tokenizer?.vocabSize);
    if (source.length !== target.length) throw new RangeError(`target: has ${target.length} sequences for ${source.length} sources`);
    if (source.length === 0) throw new RangeError('pairs: the dataset is empty');
    const flat = (seqs: ArrayLike<number>[]) => {
      const offsets = new Int32Array(seqs.length + 1);
      seqs.forEach((x, i) => (offsets[i + 1] = offsets[i] + x.length));
      const ids = new Int32Array(offsets[seqs.length]);
      seqs.forEach((x, i) => ids.set(x, offsets[i]));
      return { ids, offsets };
    };
    const s = flat(source);
    const t = flat(target);
    const padId = o.padId ?? o.tokenizer?.special.pad ?? 0;
    const eosId = o.eosId ?? o.tokenizer?.special.eos ?? 2;
    const handle = native().createParallelData(s.ids, s.offsets, t.ids, t.offsets, { maxLen: o.maxLen, padId, eosId });
    return new ParallelDataset(handle, o.source, o.target, o.maxLen, o.tokenizer);
  }

  /** Pairs. */
  get size(): number {
    return this.handle.size;
  }

  /** What token-count batching with this budget makes of one epoch: batches, padding share. */
  batchPlan(batchTokens: number, seed = 1): BatchPlan {
    return this.handle.batchPlan(batchTokens, seed);
  }

  /** Training batch `index` under a token budget (what the trainer's step `index` sees without accumulation). */
  trainBatch(index: number, batchTokens: number, seed: number): TrainingBatch {
    return this.handle.trainBatch(index, batchTokens, seed);
  }

  /** Pairs [first, first + count), in order. */
  evalBatch(first: number, count: number): TrainingBatch {
    return this.handle.evalBatch(first, count, 0);
  }

  dispose(): void {
    this.handle.dispose();
  }
}
