import { TokenArray } from '../types';

export { TokenArray };

/** The special tokens every trainlarge tokenizer defines (ids as the tokenizer assigns them). */
export interface SpecialTokens {
  pad: number;
  cls: number;
  eos: number;
  unk: number;
  mask: number;
}

/** What a dataset needs from a tokenizer. */
export interface TokenizerLike {
  readonly vocabSize: number;
  readonly special: SpecialTokens;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
}

/**
 * Byte-level tokens: the UTF-8 bytes of the text, after five special tokens (pad 0, cls 1, eos 2,
 * unk 3, mask 4). No training, no unknown words; the data pipeline brings a trained subword tokenizer.
 */
export class ByteTokenizer implements TokenizerLike {
  static readonly OFFSET = 5;
  readonly vocabSize = 256 + ByteTokenizer.OFFSET;
  readonly special: SpecialTokens = { pad: 0, cls: 1, eos: 2, unk: 3, mask: 4 };

  encode(text: string): Int32Array {
    if (typeof text !== 'string') throw new TypeError(`text: expected a string, got ${describeValue(text)}`);
    const bytes = Buffer.from(text, 'utf8');
    const out = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] + ByteTokenizer.OFFSET;
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    checkSequence(ids, 'ids', this.vocabSize);
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) if (ids[i] >= ByteTokenizer.OFFSET) bytes.push(ids[i] - ByteTokenizer.OFFSET);
    return Buffer.from(bytes).toString('utf8');
  }
}

/** How a value is named in an error message: 'null', 'an array', 'Uint16Array', 'string', ... */
export function describeValue(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : ArrayBuffer.isView(v) ? v.constructor.name : typeof v;
}

/** Throws unless `v` is an integer token id (in [0, vocabSize) when given); `where` names it. */
/** checkTokenId's test without its message: the per-token loops build an element's name only when it fails. */
export function isTokenId(v: unknown, vocabSize?: number): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && (vocabSize === undefined || v < vocabSize);
}

export function checkTokenId(v: unknown, where: string, vocabSize?: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw new TypeError(`${where}: expected an integer token id, got ${typeof v === 'number' ? v : describeValue(v)}`);
  if (v < 0 || (vocabSize !== undefined && v >= vocabSize)) {
    throw new RangeError(`${where}: token id ${v} is outside [0, ${vocabSize === undefined ? 'vocabSize' : `vocabSize=${vocabSize}`})`);
  }
}

/**
 * Checks an argument that holds token-id sequences (number[][] or typed arrays): a non-empty array whose
 * every element is a sequence of integer ids (in [0, vocabSize) when given). Throws naming `name` and the
 * element, before native code sees anything.
 */
export function checkSequences(value: unknown, name: string, vocabSize?: number): ArrayLike<number>[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`${name}: expected an array of token-id sequences (number[][] or typed arrays), got ${describeValue(value)}`);
  }
  if (value.length === 0) throw new RangeError(`${name}: is empty`);
  value.forEach((s, i) => checkSequence(s, `${name}[${i}]`, vocabSize));
  return value as ArrayLike<number>[];
}

/** One sequence of token ids (an array or typed array of integer ids); `where` names it in the error. */
export function checkSequence(value: unknown, where: string, vocabSize?: number): ArrayLike<number> {
  if (value === null || typeof value !== 'object' || !(Array.isArray(value) || ArrayBuffer.isView(value))) {
    throw new TypeError(
      `${where}: expected a sequence of token ids (an array or typed array), got ${typeof value === 'number' ? `the number ${value}` : describeValue(value)}`,
    );
  }
  const seq = value as ArrayLike<unknown>;
  for (let j = 0; j < seq.length; j++) if (!isTokenId(seq[j], vocabSize)) checkTokenId(seq[j], `${where}[${j}]`, vocabSize);
  return value as ArrayLike<number>;
}

export function specialIds(s: SpecialTokens): number[] {
  return [...new Set([s.pad, s.cls, s.eos, s.unk, s.mask])];
}

/** Entropy (nats) of the unigram token distribution: the loss of a model that ignores context. */
export function unigramEntropy(docs: ArrayLike<number>[], vocabSize: number): number {
  return Unigram.fromTokens(docs, vocabSize).entropy;
}

/**
 * The unigram model of a token stream (usually a corpus's training split): what a model that ignores context
 * predicts. The honest "does the model use context" baseline for masked-LM is `crossEntropy` of the targets a
 * loss was measured on, not `entropy`: see EvalResult.maskUnigramLoss.
 */
export class Unigram {
  /** log p(id), counts smoothed by +0.5 so a target never seen in training costs a finite amount. */
  readonly logProbs: Float64Array;
  /** The entropy (nats) of the raw counts (no smoothing): the expected loss on text like the counted. */
  readonly entropy: number;

  constructor(readonly counts: Float64Array) {
    const n = counts.reduce((a, c) => a + c, 0);
    if (!(n > 0)) throw new RangeError('Unigram: the counts are empty');
    this.entropy = -counts.reduce((h, c) => (c > 0 ? h + (c / n) * Math.log(c / n) : h), 0);
    const z = Math.log(n + 0.5 * counts.length);
    this.logProbs = counts.map((c) => Math.log(c + 0.5) - z);
  }

  static fromTokens(docs: ArrayLike<number>[], vocabSize: number): Unigram {
    const counts = new Float64Array(vocabSize);
    for (const d of docs) for (let i = 0; i < d.length; i++) counts[d[i]]++;
    return new Unigram(counts);
  }

  get vocabSize(): number {
    return this.counts.length;
  }

  /** Mean cross-entropy (nats) of this model on targets given as a count per id (NaN when there are none). */
  crossEntropy(targetCounts: ArrayLike<number>): number {
    if (targetCounts.length !== this.counts.length) {
      throw new RangeError(`Unigram: the targets have a vocabulary of ${targetCounts.length}, the unigram model ${this.counts.length}`);
    }
    let sum = 0;
    let n = 0;
    for (let i = 0; i < targetCounts.length; i++) {
      if (targetCounts[i] > 0) {
        sum -= targetCounts[i] * this.logProbs[i];
        n += targetCounts[i];
      }
    }
    return n > 0 ? sum / n : NaN;
  }
}
