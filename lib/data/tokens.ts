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
    const bytes = Buffer.from(text, 'utf8');
    const out = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] + ByteTokenizer.OFFSET;
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) if (ids[i] >= ByteTokenizer.OFFSET) bytes.push(ids[i] - ByteTokenizer.OFFSET);
    return Buffer.from(bytes).toString('utf8');
  }
}

export function specialIds(s: SpecialTokens): number[] {
  return [...new Set([s.pad, s.cls, s.eos, s.unk, s.mask])];
}

/** Entropy (nats) of the unigram token distribution: the loss of a model that ignores context. */
export function unigramEntropy(docs: ArrayLike<number>[], vocabSize: number): number {
  const counts = new Float64Array(vocabSize);
  let n = 0;
  for (const d of docs) {
    for (let i = 0; i < d.length; i++) counts[d[i]]++;
    n += d.length;
  }
  return -counts.reduce((h, c) => (c > 0 ? h + (c / n) * Math.log(c / n) : h), 0);
}
