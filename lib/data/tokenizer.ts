import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { parseConfig } from '../config/parse';
import { TokenizerOptions, TokenizerOptionsSchema } from '../config/tokenizer';
import { writeFileAtomic } from '../io';
import { native, NativeTokenizer } from '../native';
import { readDocuments, DocumentFormat } from './files';
import { HF_MERGES_FILE, HF_TOKENIZER_FILE, HF_VOCAB_FILE, HfBpe } from './hf-tokenizer';
import { isMarianTokenizerDir, MarianVocab } from './marian-vocab';
import { isSpmTokenizerJson, spmModelFromHf, spmToHfFiles } from './spm-hf';
import { checkSequence, checkTokenId, describeValue, SpecialTokens, TokenizerLike } from './tokens';

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

/** What a Tokenizer runs on: trainlarge's native SentencePiece, a Hugging Face byte-level BPE, or MarianTokenizer's files. */
export type TokenizerKind = 'sentencepiece' | 'hf-bpe' | 'marian';

/** The file Tokenizer.load reads and save writes for SentencePiece; fromDir looks for it first. */
export const SENTENCEPIECE_FILE = 'tokenizer.model';

type Backend = { kind: 'sentencepiece'; handle: NativeTokenizer } | { kind: 'hf-bpe'; hf: HfBpe } | { kind: 'marian'; marian: MarianVocab };

// The normalization rules SentencePiece precompiles, the likeliest first (a tokenizer.json names none).
const SPM_RULES = ['nmt_nfkc', 'nfkc', 'nmt_nfkc_cf', 'nfkc_cf', 'identity'];

const SPM_SPECIAL: SpecialTokens = { pad: 0, cls: 1, eos: 2, unk: 3, mask: 4 };

// Texts encoded between yields to the event loop when an HF tokenizer encodes a batch (on the main thread).
const HF_BATCH_CHUNK = 256;

/**
 * A subword tokenizer of one of two kinds (`kind`):
 * - 'sentencepiece': trained (Tokenizer.train) and applied by SentencePiece (BPE or unigram) inside the native
 *   addon. Special ids are fixed: pad 0, cls 1 (<s>), eos 2 (</s>), unk 3, mask 4. The saved file is a
 *   standard SentencePiece .model (tokenizer.model), loadable by the sentencepiece Python package too.
 * - 'hf-bpe': a Hugging Face byte-level BPE (RoBERTa's, GPT-2's) read from its files (Tokenizer.fromHF) and
 *   applied by tokenizers.js; encode gives transformers' ids (without the special tokens, which trainlarge
 *   adds where it builds sequences) and `special` holds the ids the files name.
 * - 'marian': transformers' MarianTokenizer (opus-mt's source.spm, target.spm and vocab.json; marian-vocab.ts),
 *   read with Tokenizer.fromDir: encode gives MarianTokenizer's ids of a source (without its </s>), encodeTarget
 *   of a target (target.spm), decode its decode(ids, skip_special_tokens=True). Marian has no <s> or <mask>:
 *   `special.cls` is pad (the decoder's start) and `special.mask` is unk.
 */
export class Tokenizer implements TokenizerLike {
  readonly special: SpecialTokens;
  /** sha256 of the tokenizer's file bytes (SentencePiece: the .model; HF: its files): identifies it in corpus manifests. */
  readonly sha256: string;
  readonly kind: TokenizerKind;

  private constructor(private readonly backend: Backend) {
    this.kind = backend.kind;
    if (backend.kind === 'sentencepiece') {
      this.special = { ...SPM_SPECIAL };
      this.sha256 = createHash('sha256').update(backend.handle.modelBytes()).digest('hex');
    } else if (backend.kind === 'marian') {
      this.special = { ...backend.marian.special };
      this.sha256 = backend.marian.sha256;
    } else {
      this.special = { ...backend.hf.special };
      this.sha256 = backend.hf.sha256;
    }
  }

  /** Learns a SentencePiece vocabulary. Deterministic for the same texts and options. */
  static async train(input: TokenizerTrainInput): Promise<Tokenizer> {
    const { files, format, textField, texts, ...rest } = input;
    const options = parseConfig(TokenizerOptionsSchema, rest, 'tokenizer options');
    if ((files === undefined) === (texts === undefined)) {
      throw new TypeError('Tokenizer.train: give exactly one of files (paths) or texts (strings)');
    }
    const docs = texts ?? (await readDocuments({ files: files!, format, textField })).map((d) => d.text);
    const lines = toLines(docs);
    if (lines.length === 0) throw new RangeError('Tokenizer.train: the text is empty');
    return new Tokenizer({ kind: 'sentencepiece', handle: await native().trainTokenizer(lines, options) });
  }

  /**
   * A saved tokenizer file: a SentencePiece model (written by save(), or any model with trainlarge's special
   * ids), or an HF tokenizer.json (its tokenizer_config.json / special_tokens_map.json beside it are read too).
   */
  static load(file: string): Tokenizer {
    if (path.basename(file) === HF_TOKENIZER_FILE) return Tokenizer.loadHF(path.dirname(file), 'Tokenizer.load');
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (e) {
      throw new Error(`Tokenizer.load: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (bytes.length === 0) throw new Error(`Tokenizer.load: ${file} is empty`);
    try {
      return new Tokenizer({
        kind: 'sentencepiece',
        handle: native().loadTokenizer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)),
      });
    } catch (e) {
      throw new Error(`Tokenizer.load: ${file}: ${(e as Error).message}`);
    }
  }

  /**
   * A Hugging Face byte-level BPE tokenizer (RoBERTa-style) from `dir`: tokenizer.json, or vocab.json +
   * merges.txt, with tokenizer_config.json / special_tokens_map.json when present. The special tokens
   * (<s> or bos, </s>, <pad>, <unk>, <mask>) are the ones the files name; a missing one is an error.
   * A tokenizer.json holding a SentencePiece model (Unigram, or BPE over ▁-marked words: what saving a
   * trainlarge tokenizer with format 'hf' writes) comes back as the 'sentencepiece' tokenizer it was.
   */
  static async fromHF(dir: string): Promise<Tokenizer> {
    return Promise.resolve().then(() => Tokenizer.loadHF(dir, 'Tokenizer.fromHF'));
  }

  private static loadHF(dir: string, where: string): Tokenizer {
    if (typeof dir !== 'string' || !dir) throw new TypeError(`${where}: expected a directory`);
    try {
      return Tokenizer.loadSpmJson(dir) ?? new Tokenizer({ kind: 'hf-bpe', hf: HfBpe.load(dir) });
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
  }

  /**
   * A SentencePiece tokenizer in Hugging Face's tokenizer.json (save with format 'hf' writes one; so does
   * transformers' converter), read back into a SentencePiece model; undefined for any other tokenizer.json.
   */
  private static loadSpmJson(dir: string): Tokenizer | undefined {
    const file = path.join(dir, HF_TOKENIZER_FILE);
    if (!fs.existsSync(file)) return undefined;
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${file}: ${(e as Error).message}`);
    }
    if (!isSpmTokenizerJson(json)) return undefined;
    // The charsmap carries no rule name; trainlarge's tokenizers use nmt_nfkc, the addon checks it matches.
    let first: Error | undefined;
    for (const rule of SPM_RULES) {
      const bytes = spmModelFromHf(json, rule, file);
      try {
        return new Tokenizer({
          kind: 'sentencepiece',
          handle: native().loadTokenizer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)),
        });
      } catch (e) {
        first ??= e as Error;
        if (!/does not match the rule/.test((e as Error).message)) break;
      }
    }
    throw new Error(`${file}: ${first!.message}`);
  }

  /** The tokenizer saved in a model directory, or undefined when the directory holds none. */
  static async find(dir: string): Promise<Tokenizer | undefined> {
    const any = [SENTENCEPIECE_FILE, HF_TOKENIZER_FILE, HF_VOCAB_FILE].some((f) => fs.existsSync(path.join(dir, f)));
    return any ? Tokenizer.fromDir(dir) : undefined;
  }

  /**
   * The tokenizer saved beside a model or corpus in `dir`: tokenizer.model (SentencePiece), else MarianTokenizer's
   * files (source.spm + vocab.json: an opus-mt directory's), else the HF files (tokenizer.json, or vocab.json +
   * merges.txt).
   */
  static async fromDir(dir: string): Promise<Tokenizer> {
    if (typeof dir !== 'string' || !dir) throw new TypeError('Tokenizer.fromDir: expected a directory');
    if (fs.existsSync(path.join(dir, SENTENCEPIECE_FILE))) return Tokenizer.load(path.join(dir, SENTENCEPIECE_FILE));
    if (isMarianTokenizerDir(dir)) {
      try {
        return new Tokenizer({ kind: 'marian', marian: MarianVocab.load(dir) });
      } catch (e) {
        throw new Error(`Tokenizer.fromDir: ${(e as Error).message}`);
      }
    }
    if (
      fs.existsSync(path.join(dir, HF_TOKENIZER_FILE)) ||
      (fs.existsSync(path.join(dir, HF_VOCAB_FILE)) && fs.existsSync(path.join(dir, HF_MERGES_FILE)))
    )
      return Tokenizer.loadHF(dir, 'Tokenizer.fromDir');
    throw new Error(
      `Tokenizer.fromDir: ${dir} holds no tokenizer: looked for ${SENTENCEPIECE_FILE}, ${HF_TOKENIZER_FILE}, ${HF_VOCAB_FILE} + ${HF_MERGES_FILE}`,
    );
  }

  /** The file names saveTo writes into a directory (the first is the one a corpus manifest names). */
  get files(): string[] {
    if (this.backend.kind === 'sentencepiece') return [SENTENCEPIECE_FILE];
    return (this.backend.kind === 'marian' ? this.backend.marian : this.backend.hf).filesToSave().map(([name]) => name);
  }

  /**
   * Writes the tokenizer's own files into `dir` (created if missing), each atomically: tokenizer.model for
   * SentencePiece; tokenizer.json + tokenizer_config.json (+ special_tokens_map.json when it was read) for HF,
   * which transformers' AutoTokenizer.from_pretrained(dir) loads. With `format: 'hf'`, a SentencePiece
   * tokenizer writes those three files too (transformers' own conversion of it, see spm-hf.ts), beside
   * tokenizer.model; a model it cannot convert is an error saying why. A Marian tokenizer writes its files as
   * read (MarianTokenizer's, in either format). Tokenizer.fromDir(dir) reads them back.
   */
  async saveTo(dir: string, options: { format?: 'trainlarge' | 'hf' } = {}): Promise<void> {
    const hfFiles = this.backend.kind === 'sentencepiece' && options.format === 'hf' ? this.hfFiles() : [];
    await fs.promises.mkdir(dir, { recursive: true });
    if (this.backend.kind === 'sentencepiece') {
      for (const [name, bytes] of hfFiles) await writeFileAtomic(path.join(dir, name), bytes);
      await writeFileAtomic(path.join(dir, SENTENCEPIECE_FILE), this.backend.handle.modelBytes());
      return;
    }
    const files = (this.backend.kind === 'marian' ? this.backend.marian : this.backend.hf).filesToSave();
    for (const [name, bytes] of files) await writeFileAtomic(path.join(dir, name), bytes);
  }

  /** A SentencePiece tokenizer's tokenizer.json, tokenizer_config.json and special_tokens_map.json. */
  private hfFiles(): [string, Buffer][] {
    if (this.backend.kind === 'marian') return this.backend.marian.filesToSave();
    if (this.backend.kind !== 'sentencepiece') return this.backend.hf.filesToSave();
    try {
      return spmToHfFiles(this.backend.handle.modelBytes(), this.special);
    } catch (e) {
      throw new Error(`Tokenizer.saveTo: format 'hf': ${(e as Error).message}`);
    }
  }

  /**
   * Writes the tokenizer to one file: the SentencePiece .model, or an HF tokenizer's tokenizer.json (the
   * special-token names live in tokenizer_config.json: use saveTo for a directory transformers can load).
   */
  async save(file: string): Promise<void> {
    if (this.backend.kind === 'marian')
      throw new TypeError(`Tokenizer.save: a Marian tokenizer is ${this.files.length} files (${this.files.join(', ')}); use saveTo(dir)`);
    await writeFileAtomic(
      file,
      this.backend.kind === 'sentencepiece' ? this.backend.handle.modelBytes() : this.backend.hf.files.tokenizerJson,
    );
  }

  get vocabSize(): number {
    if (this.backend.kind === 'marian') return this.backend.marian.vocabSize;
    return this.backend.kind === 'sentencepiece' ? this.backend.handle.vocabSize : this.backend.hf.vocabSize;
  }

  encode(text: string): Int32Array {
    if (this.backend.kind === 'sentencepiece') return this.backend.handle.encode(text);
    if (typeof text !== 'string') throw new TypeError(`text: expected a string, got ${describeValue(text)}`);
    return this.backend.kind === 'marian' ? this.backend.marian.encode(text) : this.backend.hf.encode(text);
  }

  /**
   * A translation target's ids: a Marian tokenizer encodes targets with target.spm (MarianTokenizer's
   * text_target); every other kind has one model for both sides and gives encode's.
   */
  encodeTarget(text: string): Int32Array {
    if (this.backend.kind !== 'marian') return this.encode(text);
    if (typeof text !== 'string') throw new TypeError(`text: expected a string, got ${describeValue(text)}`);
    return this.backend.marian.encode(text, 'target');
  }

  /** encodeTarget of many texts (as encodeBatch). */
  async encodeTargetBatch(texts: string[], threads = 2): Promise<Int32Array[]> {
    if (this.backend.kind !== 'marian') return this.encodeBatch(texts, threads);
    const { ids, offsets } = await this.encodeFlatWith(texts, (t) => this.encodeTarget(t));
    return texts.map((_, i) => ids.subarray(offsets[i], offsets[i + 1]));
  }

  /** Many texts at once: SentencePiece on `threads` native threads, off the main thread; HF on the main thread, in chunks. */
  async encodeBatch(texts: string[], threads = 2): Promise<Int32Array[]> {
    const { ids, offsets } = await this.encodeFlat(texts, threads);
    return texts.map((_, i) => ids.subarray(offsets[i], offsets[i + 1]));
  }

  /** As encodeBatch, but one flat array plus offsets (texts + 1 entries). */
  async encodeFlat(texts: string[], threads = 2): Promise<{ ids: Int32Array; offsets: Float64Array }> {
    if (this.backend.kind === 'sentencepiece') return this.backend.handle.encodeBatch(texts, threads);
    return this.encodeFlatWith(texts, (t) => this.encode(t));
  }

  /** Texts encoded one by one on the main thread, yielding to the event loop between chunks. */
  private async encodeFlatWith(texts: string[], encode: (text: string) => Int32Array): Promise<{ ids: Int32Array; offsets: Float64Array }> {
    if (!Array.isArray(texts)) throw new TypeError(`texts: expected an array of strings, got ${describeValue(texts)}`);
    const parts: Int32Array[] = [];
    const offsets = new Float64Array(texts.length + 1);
    for (let i = 0; i < texts.length; i++) {
      if (typeof texts[i] !== 'string') throw new TypeError(`texts[${i}]: expected a string, got ${describeValue(texts[i])}`);
      if (i > 0 && i % HF_BATCH_CHUNK === 0) await new Promise((r) => setImmediate(r));
      parts.push(encode(texts[i]));
      offsets[i + 1] = offsets[i] + parts[i].length;
    }
    const ids = new Int32Array(offsets[texts.length]);
    parts.forEach((p, i) => ids.set(p, offsets[i]));
    return { ids, offsets };
  }

  decode(ids: ArrayLike<number>): string {
    checkSequence(ids, 'ids', this.vocabSize);
    if (this.backend.kind === 'hf-bpe') return this.backend.hf.decode(ids);
    if (this.backend.kind === 'marian') return this.backend.marian.decode(ids);
    return this.backend.handle.decode(
      ids instanceof Int32Array || ids instanceof Uint16Array || ids instanceof Uint32Array ? ids : Int32Array.from(ids),
    );
  }

  /** The vocabulary entry of an id (SentencePiece marks a word start with ▁, byte-level BPE with Ġ). */
  piece(id: number): string {
    if (this.backend.kind === 'sentencepiece') return this.backend.handle.piece(id);
    checkTokenId(id, 'id', this.vocabSize);
    return this.backend.kind === 'marian' ? this.backend.marian.piece(id) : this.backend.hf.piece(id);
  }

  /** piece() of each id (SentencePiece: in one native call). */
  pieces(ids: ArrayLike<number>): string[] {
    checkSequence(ids, 'ids', this.vocabSize);
    if (this.backend.kind !== 'sentencepiece') {
      const b = this.backend.kind === 'marian' ? this.backend.marian : this.backend.hf;
      return Array.from(ids, (id) => b.piece(id));
    }
    return this.backend.handle.pieces(ids instanceof Int32Array ? ids : Int32Array.from(ids));
  }

  /** The id of a piece, or the unk id. */
  pieceToId(piece: string): number {
    if (this.backend.kind === 'marian') return this.backend.marian.pieceToId(piece);
    return this.backend.kind === 'sentencepiece' ? this.backend.handle.pieceToId(piece) : this.backend.hf.pieceToId(piece);
  }

  /**
   * SentencePiece's own encoding, without trainlarge's word cache: the same ids as encode, slower (to check or
   * time the cache). HF: encode.
   */
  encodeUncached(text: string): Int32Array {
    return this.backend.kind === 'sentencepiece' ? this.backend.handle.encodeUncached(text) : this.encode(text);
  }
}
