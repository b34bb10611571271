// transformers' MarianTokenizer (the opus-mt family's) reproduced for Tokenizer's 'marian' kind: two SentencePiece
// models, source.spm and target.spm, and one vocabulary, vocab.json, that numbers the pieces of both (its ids are
// the model's; SentencePiece's own ids are not used). What MarianTokenizer(text).input_ids does, step by step:
//   1. the text is split at the special tokens written in it (</s>, <unk>, <pad>, any additional ones): each
//      becomes its id;
//   2. a chunk that starts with a language code (>>fra<<, multilingual models) gives the code as a token;
//   3. the rest is encoded by source.spm (target.spm for targets) into pieces, as SentencePiece writes them (a
//      character outside the model is its own piece);
//   4. each piece is looked up in vocab.json, unk when absent (a piece of the other language's model may be there);
//   5. </s> is appended (trainlarge's callers do that).
// Decoding is MarianTokenizer.decode(ids, skip_special_tokens=True): special ids dropped, ids to vocab.json's
// pieces, SentencePiece's detokenization of them by source.spm (MarianTokenizer decodes with the source model
// when the vocabulary is shared), ▁ to spaces, trimmed.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { native, NativeTokenizer } from '../native';
import { SpecialTokens } from './tokens';

/** MarianTokenizer's files, by their role. */
export const MARIAN_TOKENIZER_FILES = {
  source: 'source.spm',
  target: 'target.spm',
  vocab: 'vocab.json',
  config: 'tokenizer_config.json',
} as const;

const SPECIAL_MAP_FILE = 'special_tokens_map.json';

type Json = Record<string, unknown>;

function readJson(file: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${file}: not a JSON object`);
  return v as Json;
}

/** A special token as a tokenizer config gives it: a string, or an AddedToken's object. */
function tokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

function readFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Whether `dir` holds MarianTokenizer's files (source.spm and vocab.json). */
export function isMarianTokenizerDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, MARIAN_TOKENIZER_FILES.source)) && fs.existsSync(path.join(dir, MARIAN_TOKENIZER_FILES.vocab));
}

/** MarianTokenizer's vocabulary and SentencePiece models, read from a directory. */
export class MarianVocab {
  readonly special: SpecialTokens;
  readonly sha256: string;
  /** vocab.json's entries: the vocabulary size (MarianTokenizer.vocab_size). */
  readonly vocabSize: number;
  private readonly ids: Map<string, number>;
  /** id -> piece (vocab.json reversed). */
  private readonly byId: string[];
  /** The special tokens' texts, longest first (the split of step 1), and their ids (dropped when decoding). */
  private readonly specialNames: string[];
  private readonly specialIds: Set<number>;
  private readonly cleanUp: boolean;

  private constructor(
    private readonly source: NativeTokenizer,
    private readonly target: NativeTokenizer,
    private readonly bytes: { source: Buffer; target: Buffer; vocab: Buffer; config: Buffer; map?: Buffer },
    vocab: Record<string, number>,
    config: Json,
    file: string,
  ) {
    this.ids = new Map(Object.entries(vocab));
    this.vocabSize = this.ids.size;
    this.byId = [];
    for (const [piece, id] of this.ids) {
      if (!Number.isInteger(id) || id < 0) throw new Error(`${file}: '${piece}' has id ${JSON.stringify(id)}; ids are integers from 0`);
      if (this.byId[id] !== undefined) throw new Error(`${file}: id ${id} is given to both '${this.byId[id]}' and '${piece}'`);
      this.byId[id] = piece;
    }
    if (this.byId.length !== this.vocabSize)
      throw new Error(`${file}: its ids are not 0..${this.vocabSize - 1} (the largest is ${this.byId.length - 1})`);
    const name = (key: string, fallback: string) => tokenName(config[key]) ?? fallback;
    const idOf = (key: string, fallback: string): number => {
      const n = name(key, fallback);
      const id = this.ids.get(n);
      if (id === undefined)
        throw new Error(`${file}: the ${key} '${n}' is not in it (MarianTokenizer would add it past the vocabulary; trainlarge does not)`);
      return id;
    };
    const unk = idOf('unk_token', '<unk>'),
      eos = idOf('eos_token', '</s>'),
      pad = idOf('pad_token', '<pad>');
    // Marian has no <s> and no <mask>: the decoder starts from pad (config.json's decoder_start_token_id), and
    // masked-LM does not apply to a translator.
    this.special = { pad, cls: pad, eos, unk, mask: unk };
    const extra = [config.additional_special_tokens, config.extra_special_tokens]
      .flatMap((v): unknown[] => (Array.isArray(v) ? (v as unknown[]) : []))
      .map(tokenName)
      .filter((n): n is string => n !== undefined);
    for (const n of extra)
      if (!this.ids.has(n))
        throw new Error(`${file}: the additional special token '${n}' is not in vocab.json; trainlarge does not add tokens`);
    const names = [name('unk_token', '<unk>'), name('eos_token', '</s>'), name('pad_token', '<pad>'), ...extra];
    this.specialNames = [...new Set(names)].sort((a, b) => b.length - a.length);
    this.specialIds = new Set(this.specialNames.map((n) => this.ids.get(n)!));
    this.cleanUp = config.clean_up_tokenization_spaces === true;
    const h = createHash('sha256');
    for (const b of [bytes.source, bytes.target, bytes.vocab, bytes.config]) h.update(createHash('sha256').update(b).digest());
    this.sha256 = h.digest('hex');
  }

  /**
   * MarianTokenizer's files in `dir`. Refused, naming the field: separate_vocabs (a second vocabulary for the
   * target side, target_vocab.json: trainlarge's translators have one embedding matrix for both), subword
   * sampling (sp_model_kwargs), special tokens that strip spaces or must be whole words, special tokens missing
   * from vocab.json.
   */
  static load(dir: string): MarianVocab {
    const file = (f: string) => path.join(dir, f);
    const configFile = file(MARIAN_TOKENIZER_FILES.config);
    const configBytes = fs.existsSync(configFile) ? readFile(configFile) : Buffer.from('{}\n');
    const config = fs.existsSync(configFile) ? readJson(configFile) : {};
    const mapFile = file(SPECIAL_MAP_FILE);
    const mapBytes = fs.existsSync(mapFile) ? readFile(mapFile) : undefined;
    // transformers reads special_tokens_map.json too (its legacy file): its names stand unless the config gives one.
    if (mapBytes) for (const [k, v] of Object.entries(readJson(mapFile))) if (config[k] === undefined) config[k] = v;
    if (config.separate_vocabs === true || fs.existsSync(file('target_vocab.json')))
      throw new Error(
        `${configFile}: separate_vocabs is true (a second vocabulary, target_vocab.json, for the target side): not supported, ` +
          "since trainlarge's translators share one embedding matrix and one vocabulary between the encoder and the decoder",
      );
    const kwargs = config.sp_model_kwargs as Json | undefined;
    if (kwargs && kwargs.enable_sampling === true)
      throw new Error(
        `${configFile}: sp_model_kwargs.enable_sampling is true (subword sampling): not supported; encoding must be deterministic`,
      );
    const added = config.added_tokens_decoder as Record<string, Json> | undefined;
    for (const t of Object.values(added ?? {}))
      for (const k of ['lstrip', 'rstrip', 'single_word'])
        if (t[k] === true) throw new Error(`${configFile}: added token '${String(t.content)}' has ${k} true: not supported`);
    const vocabFile = file(MARIAN_TOKENIZER_FILES.vocab);
    const vocabBytes = readFile(vocabFile);
    const vocab = readJson(vocabFile) as Record<string, number>;
    for (const t of Object.entries(added ?? {}))
      if (vocab[String(t[1].content)] !== Number(t[0]))
        throw new Error(
          `${configFile}: added token '${String(t[1].content)}' (id ${t[0]}) is not vocab.json's; trainlarge does not add tokens`,
        );
    const load = (f: string): [NativeTokenizer, Buffer] => {
      const bytes = readFile(file(f));
      try {
        return [native().loadForeignTokenizer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)), bytes];
      } catch (e) {
        throw new Error(`${file(f)}: ${(e as Error).message}`);
      }
    };
    const [source, sourceBytes] = load(MARIAN_TOKENIZER_FILES.source);
    // MarianTokenizer requires only source.spm; without target.spm the targets are encoded by it too.
    const [target, targetBytes] = fs.existsSync(file(MARIAN_TOKENIZER_FILES.target))
      ? load(MARIAN_TOKENIZER_FILES.target)
      : [source, sourceBytes];
    return new MarianVocab(
      source,
      target,
      { source: sourceBytes, target: targetBytes, vocab: vocabBytes, config: configBytes, map: mapBytes },
      vocab,
      config,
      vocabFile,
    );
  }

  /** MarianTokenizer's ids of `text` without the </s> it appends: source.spm's pieces, or target.spm's for a target. */
  encode(text: string, side: 'source' | 'target' = 'source'): Int32Array {
    const spm = side === 'source' ? this.source : this.target;
    const unk = this.special.unk;
    const out: number[] = [];
    for (const chunk of this.splitSpecial(text)) {
      if (typeof chunk === 'number') {
        out.push(chunk);
        continue;
      }
      let rest = chunk;
      // MarianTokenizer.remove_language_code: a chunk starting with >>xx<< gives the code as one token.
      const end = rest.startsWith('>>') ? rest.indexOf('<<') : -1;
      if (end >= 0) {
        out.push(this.ids.get(rest.slice(0, end + 2)) ?? unk);
        rest = rest.slice(end + 2);
      }
      for (const piece of spm.encodePieces(rest)) out.push(this.ids.get(piece) ?? unk);
    }
    return Int32Array.from(out);
  }

  /** The text cut at the special tokens written in it (each given as its id), as transformers' added-token trie splits it. */
  private splitSpecial(text: string): (string | number)[] {
    const parts: (string | number)[] = [];
    let start = 0;
    for (let i = 0; i < text.length;) {
      const hit = text.charCodeAt(i) === 60 /* < */ ? this.specialNames.find((n) => text.startsWith(n, i)) : undefined;
      if (hit === undefined) {
        i++;
        continue;
      }
      if (i > start) parts.push(text.slice(start, i));
      parts.push(this.ids.get(hit)!);
      i += hit.length;
      start = i;
    }
    if (start < text.length) parts.push(text.slice(start));
    return parts;
  }

  /** MarianTokenizer.decode(ids, skip_special_tokens=True). */
  decode(ids: ArrayLike<number>): string {
    const pieces: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      if (this.specialIds.has(ids[i])) continue;
      pieces.push(this.piece(ids[i]));
    }
    let text = this.source
      .decodePieces(pieces)
      .replace(/\u2581/g, ' ')
      .trim();
    if (this.cleanUp) text = cleanUpTokenization(text);
    return text;
  }

  /** vocab.json's piece of an id (MarianTokenizer falls back to source.spm's piece past the vocabulary, then unk). */
  piece(id: number): string {
    const p = this.byId[id];
    if (p !== undefined) return p;
    if (id >= 0 && id < this.source.vocabSize) return this.source.piece(id) || this.byId[this.special.unk];
    return this.byId[this.special.unk];
  }

  /** vocab.json's id of a piece, or unk's. */
  pieceToId(piece: string): number {
    return this.ids.get(piece) ?? this.special.unk;
  }

  /** The files and their bytes, as read (saveTo writes them back unchanged). */
  filesToSave(): [string, Buffer][] {
    return [
      [MARIAN_TOKENIZER_FILES.source, this.bytes.source],
      [MARIAN_TOKENIZER_FILES.target, this.bytes.target],
      [MARIAN_TOKENIZER_FILES.vocab, this.bytes.vocab],
      [MARIAN_TOKENIZER_FILES.config, this.bytes.config],
      ...(this.bytes.map ? [[SPECIAL_MAP_FILE, this.bytes.map] as [string, Buffer]] : []),
    ];
  }
}

/** transformers' clean_up_tokenization (when a tokenizer_config.json asks for it). */
function cleanUpTokenization(s: string): string {
  return s
    .replace(/ \./g, '.')
    .replace(/ \?/g, '?')
    .replace(/ !/g, '!')
    .replace(/ ,/g, ',')
    .replace(/ ' /g, "'")
    .replace(/ n't/g, "n't")
    .replace(/ 'm/g, "'m")
    .replace(/ 's/g, "'s")
    .replace(/ 've/g, "'ve")
    .replace(/ 're/g, "'re");
}
