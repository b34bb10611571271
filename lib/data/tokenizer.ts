import { createHash } from 'crypto';
import * as fs from 'fs';
import { parseConfig } from '../config/parse';
import { TokenizerOptions, TokenizerOptionsSchema } from '../config/tokenizer';
import { writeFileAtomic } from '../io';
import { native, NativeTokenizer } from '../native';
import { readDocuments, DocumentFormat } from './files';
import { checkSequence, SpecialTokens, TokenizerLike } from './tokens';

export { TokenizerOptions, TokenizerOptionsSchema, TokenizerSettings } from '../config/tokenizer';

export interface TokenizerTrainInput extends TokenizerOptions {
  /** Plain-text, JSONL or TSV files to learn from (see readDocuments). */
  files?: string[];
  format?: DocumentFormat;
  textField?: string | number;
  /** Or the texts themselves. */
  texts?: string[];
}

// SentencePiece learns from lines; paragraphs stay whole (they may be long: max 64 KiB each).
function toLines(texts: string[]): string[] {
  const lines: string[] = [];
  for (const t of texts) for (const l of t.split('\n')) if (l.trim()) lines.push(l);
  return lines;
}

/**
 * A subword tokenizer trained and applied by SentencePiece (BPE or unigram) inside the native addon.
 * Special ids are fixed: pad 0, cls 1 (<s>), eos 2 (</s>), unk 3, mask 4. The saved file is a standard
 * SentencePiece .model, loadable by the sentencepiece Python package too.
 */
export class Tokenizer implements TokenizerLike {
  readonly special: SpecialTokens = { pad: 0, cls: 1, eos: 2, unk: 3, mask: 4 };
  /** sha256 of the model bytes: identifies the tokenizer in corpus manifests. */
  readonly sha256: string;

  private constructor(private readonly handle: NativeTokenizer) {
    this.sha256 = createHash('sha256').update(handle.modelBytes()).digest('hex');
  }

  /** Learns a vocabulary. Deterministic for the same texts and options. */
  static async train(input: TokenizerTrainInput): Promise<Tokenizer> {
    const { files, format, textField, texts, ...rest } = input;
    const options = parseConfig(TokenizerOptionsSchema, rest, 'tokenizer options');
    if ((files === undefined) === (texts === undefined)) {
      throw new TypeError('Tokenizer.train: give exactly one of files (paths) or texts (strings)');
    }
    const docs = texts ?? (await readDocuments({ files: files!, format, textField })).map((d) => d.text);
    const lines = toLines(docs);
    if (lines.length === 0) throw new RangeError('Tokenizer.train: the text is empty');
    return new Tokenizer(await native().trainTokenizer(lines, options));
  }

  /** A saved SentencePiece model (written by save(), or any model with trainlarge's special ids). */
  static load(file: string): Tokenizer {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (e) {
      throw new Error(`Tokenizer.load: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (bytes.length === 0) throw new Error(`Tokenizer.load: ${file} is empty`);
    try {
      return new Tokenizer(native().loadTokenizer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)));
    } catch (e) {
      throw new Error(`Tokenizer.load: ${file}: ${(e as Error).message}`);
    }
  }

  async save(file: string): Promise<void> {
    await writeFileAtomic(file, this.handle.modelBytes());
  }

  get vocabSize(): number {
    return this.handle.vocabSize;
  }

  encode(text: string): Int32Array {
    return this.handle.encode(text);
  }

  /** Many texts at once, on `threads` native threads, off the main thread. */
  async encodeBatch(texts: string[], threads = 2): Promise<Int32Array[]> {
    const { ids, offsets } = await this.handle.encodeBatch(texts, threads);
    return texts.map((_, i) => ids.subarray(offsets[i], offsets[i + 1]));
  }

  /** As encodeBatch, but one flat array plus offsets (texts + 1 entries). */
  async encodeFlat(texts: string[], threads = 2): Promise<{ ids: Int32Array; offsets: Float64Array }> {
    return this.handle.encodeBatch(texts, threads);
  }

  decode(ids: ArrayLike<number>): string {
    checkSequence(ids, 'ids', this.vocabSize);
    return this.handle.decode(
      ids instanceof Int32Array || ids instanceof Uint16Array || ids instanceof Uint32Array ? ids : Int32Array.from(ids),
    );
  }

  /** The vocabulary entry of an id (SentencePiece marks a word start with ▁). */
  piece(id: number): string {
    return this.handle.piece(id);
  }

  /** piece() of each id, in one native call. */
  pieces(ids: ArrayLike<number>): string[] {
    checkSequence(ids, 'ids', this.vocabSize);
    return this.handle.pieces(ids instanceof Int32Array ? ids : Int32Array.from(ids));
  }

  /** The id of a piece, or the unk id. */
  pieceToId(piece: string): number {
    return this.handle.pieceToId(piece);
  }

  /** SentencePiece's own encoding, without trainlarge's word cache: the same ids as encode, slower (to check or time the cache). */
  encodeUncached(text: string): Int32Array {
    return this.handle.encodeUncached(text);
  }
}
