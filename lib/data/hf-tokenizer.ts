// Hugging Face byte-level BPE tokenizers (RoBERTa's, GPT-2's) read from their files, for Tokenizer.fromHF.
//
// The library is @huggingface/tokenizers (tokenizers.js 0.2.0), chosen over the `tokenizers` npm bindings
// (0.23.2, Rust) by measurement (issue 14), on a byte-level BPE that transformers 5.18 trained on english-prose:
// - correctness: both gave transformers' ids exactly on all 113,545 texts (english-prose's sentences and
//   edge cases: whitespace runs, CR/LF, emoji, CJK, special tokens written in the text);
// - speed, the same 16 M characters on 2 shared cores: Rust encodeBatch 11.0 s (1.46 Mchar/s), tokenizers.js
//   encode 48 s (0.34 Mchar/s); transformers itself took 25 s;
// - API: the Rust bindings encode and decode only asynchronously, while TokenizerLike.encode and decode are
//   synchronous (the service, fillMask, the examples call them so);
// - install: neither runs an install script; the Rust package is 28 MB packed / 64 MB installed (every
//   platform's binary in one package), tokenizers.js 87 KB of JavaScript with no dependencies.
// So: the synchronous, small one; Corpus.prepare with an HF tokenizer encodes ~4x slower than it could.

import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { SpecialTokens } from './tokens';

export const HF_TOKENIZER_FILE = 'tokenizer.json';
export const HF_CONFIG_FILE = 'tokenizer_config.json';
export const HF_SPECIAL_MAP_FILE = 'special_tokens_map.json';
export const HF_VOCAB_FILE = 'vocab.json';
export const HF_MERGES_FILE = 'merges.txt';

type Json = Record<string, unknown>;

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
}

/** The files of an HF tokenizer as trainlarge keeps them: saveTo writes exactly these bytes. */
export interface HfFiles {
  /** tokenizer.json (read, or built from vocab.json + merges.txt). */
  tokenizerJson: Buffer;
  /** tokenizer_config.json as read, or written by trainlarge (special-token names) when there was none. */
  config: Buffer;
  /** special_tokens_map.json as read, when there was one. */
  specialTokensMap?: Buffer;
}

function readJsonFile(file: string): Json {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const v: unknown = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

/** A special token as tokenizer_config.json / special_tokens_map.json give it: a string or an AddedToken object. */
function tokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

function isByteLevel(pre: unknown): boolean {
  if (!pre || typeof pre !== 'object') return false;
  const p = pre as Json;
  if (p.type === 'ByteLevel') return true;
  return p.type === 'Sequence' && Array.isArray(p.pretokenizers) && p.pretokenizers.some(isByteLevel);
}

/**
 * RoBERTa's tokenizer.json for a vocab.json + merges.txt pair, as transformers builds it (RobertaTokenizer):
 * byte-level pre-tokenizer and decoder, BPE without unk or word suffixes, the special tokens as added tokens.
 */
function tokenizerJsonFromVocab(dir: string, config: Json, names: Partial<Record<keyof SpecialTokens, string>>): Json {
  const vocabFile = path.join(dir, HF_VOCAB_FILE);
  const vocab = readJsonFile(vocabFile) as Record<string, number>;
  let mergesText: string;
  try {
    mergesText = fs.readFileSync(path.join(dir, HF_MERGES_FILE), 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path.join(dir, HF_MERGES_FILE)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const merges = mergesText
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l, i) => l.length > 0 && !(i === 0 && l.startsWith('#version')))
    .map((l) => {
      const parts = l.split(' ');
      if (parts.length !== 2) throw new Error(`${path.join(dir, HF_MERGES_FILE)}: expected 'left right' per line, got '${l}'`);
      return parts;
    });
  const addPrefixSpace = config.add_prefix_space === true;
  const trimOffsets = config.trim_offsets !== false;
  const added: AddedTokenJson[] = [];
  const seen = new Set<string>();
  for (const name of [names.cls, names.pad, names.eos, names.unk, names.mask, tokenName(config.bos_token), tokenName(config.sep_token)]) {
    if (name === undefined || seen.has(name) || vocab[name] === undefined) continue;
    seen.add(name);
    added.push({ id: vocab[name], content: name, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  }
  added.sort((a, b) => a.id - b.id);
  const id = (n: string | undefined) => (n !== undefined ? vocab[n] : undefined);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: trimOffsets, use_regex: true },
    post_processor: {
      type: 'RobertaProcessing',
      sep: [names.eos, id(names.eos)],
      cls: [names.cls, id(names.cls)],
      trim_offsets: trimOffsets,
      add_prefix_space: addPrefixSpace,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

const SPECIAL_KEYS: [keyof SpecialTokens, string[], string][] = [
  ['cls', ['cls_token', 'bos_token'], '<s>'],
  ['eos', ['eos_token', 'sep_token'], '</s>'],
  ['pad', ['pad_token'], '<pad>'],
  ['unk', ['unk_token'], '<unk>'],
  ['mask', ['mask_token'], '<mask>'],
];

/**
 * A byte-level BPE tokenizer in Hugging Face's files, loaded by tokenizers.js: `encode` gives the ids of
 * transformers' `AutoTokenizer.from_pretrained(dir)(text, add_special_tokens=False)`.
 */
export class HfBpe {
  readonly special: SpecialTokens;
  readonly vocabSize: number;
  readonly sha256: string;
  private readonly tok: HfTokenizer;
  private readonly idToPiece: (string | undefined)[];
  private readonly pieceIds: Map<string, number>;

  readonly files: HfFiles;

  private constructor(files: Omit<HfFiles, 'config'> & { config?: Buffer }, json: Json, config: Json, where: string) {
    const model = json.model as Json | undefined;
    if (!model || model.type !== 'BPE' || !isByteLevel(json.pre_tokenizer)) {
      throw new Error(
        `${where}: not a byte-level BPE tokenizer (model ${String(model?.type)}, pre_tokenizer ${String((json.pre_tokenizer as Json | null)?.type)}); ` +
          'trainlarge reads RoBERTa/GPT-2-style byte-level BPE',
      );
    }
    const vocab = model.vocab as Record<string, number>;
    const added = (Array.isArray(json.added_tokens) ? json.added_tokens : []) as AddedTokenJson[];
    this.pieceIds = new Map(Object.entries(vocab));
    for (const a of added) this.pieceIds.set(a.content, a.id);
    let maxId = -1;
    for (const id of this.pieceIds.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.idToPiece = new Array<string | undefined>(this.vocabSize);
    for (const [p, id] of this.pieceIds) this.idToPiece[id] = p;

    const special: Partial<SpecialTokens> = {};
    const configured = Object.keys(config).some((k) => k.endsWith('_token'));
    for (const [key, fields, roberta] of SPECIAL_KEYS) {
      let name: string | undefined;
      for (const f of fields) name ??= tokenName(config[f]);
      // tokenizer.json alone: RoBERTa's name, present as one of the file's special added tokens.
      if (name === undefined && !configured && added.some((a) => a.special && a.content === roberta)) name = roberta;
      const id = name === undefined ? undefined : this.pieceIds.get(name);
      if (id === undefined) {
        throw new Error(
          `${where}: no ${key === 'cls' ? 'cls/bos' : key} token` +
            (name === undefined
              ? ` (${fields.join(' or ')} in ${HF_CONFIG_FILE}/${HF_SPECIAL_MAP_FILE}, or a special added token '${roberta}' in ${HF_TOKENIZER_FILE})`
              : ` ('${name}' is not in the vocabulary)`),
        );
      }
      special[key] = id;
    }
    this.special = special as SpecialTokens;
    this.tok = new HfTokenizer(json, config);
    // Without a tokenizer_config.json, one naming the special tokens (what transformers needs to know them).
    this.files = { ...files, config: files.config ?? this.specialTokensConfig() };
    const h = createHash('sha256');
    for (const b of [this.files.tokenizerJson, this.files.config, this.files.specialTokensMap]) {
      if (b) h.update(createHash('sha256').update(b).digest());
    }
    this.sha256 = h.digest('hex');
  }

  /**
   * Reads `dir`: tokenizer.json, or vocab.json + merges.txt (RoBERTa's older files), and tokenizer_config.json
   * and special_tokens_map.json when present (special-token names; the former wins).
   */
  static load(dir: string): HfBpe {
    const file = (name: string) => path.join(dir, name);
    const have = (name: string) => fs.existsSync(file(name));
    const hasJson = have(HF_TOKENIZER_FILE);
    if (!hasJson && !(have(HF_VOCAB_FILE) && have(HF_MERGES_FILE))) {
      throw new Error(`${dir}: no ${HF_TOKENIZER_FILE}, nor ${HF_VOCAB_FILE} + ${HF_MERGES_FILE}`);
    }
    const configBytes = have(HF_CONFIG_FILE) ? fs.readFileSync(file(HF_CONFIG_FILE)) : undefined;
    const mapBytes = have(HF_SPECIAL_MAP_FILE) ? fs.readFileSync(file(HF_SPECIAL_MAP_FILE)) : undefined;
    const config = configBytes ? readJsonFile(file(HF_CONFIG_FILE)) : {};
    const map = mapBytes ? readJsonFile(file(HF_SPECIAL_MAP_FILE)) : {};
    // transformers: tokenizer_config.json's names, special_tokens_map.json's where the config has none.
    const merged: Json = { ...config };
    for (const [k, v] of Object.entries(map)) if (merged[k] === undefined) merged[k] = v;
    let json: Json;
    let jsonBytes: Buffer;
    if (hasJson) {
      jsonBytes = fs.readFileSync(file(HF_TOKENIZER_FILE));
      json = readJsonFile(file(HF_TOKENIZER_FILE));
    } else {
      const names: Partial<Record<keyof SpecialTokens, string>> = {};
      for (const [key, fields, roberta] of SPECIAL_KEYS) {
        for (const f of fields) names[key] ??= tokenName(merged[f]);
        if (!configBytes && !mapBytes) names[key] ??= roberta;
      }
      json = tokenizerJsonFromVocab(dir, merged, names);
      jsonBytes = Buffer.from(JSON.stringify(json, null, 2) + '\n');
    }
    return new HfBpe({ tokenizerJson: jsonBytes, config: configBytes, specialTokensMap: mapBytes }, json, merged, dir);
  }

  /** The files saveTo writes, in order. */
  filesToSave(): [string, Buffer][] {
    const out: [string, Buffer][] = [
      [HF_TOKENIZER_FILE, this.files.tokenizerJson],
      [HF_CONFIG_FILE, this.files.config],
    ];
    if (this.files.specialTokensMap) out.push([HF_SPECIAL_MAP_FILE, this.files.specialTokensMap]);
    return out;
  }

  private specialTokensConfig(): Buffer {
    const s = this.special;
    const config = {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: this.piece(s.cls),
      cls_token: this.piece(s.cls),
      eos_token: this.piece(s.eos),
      sep_token: this.piece(s.eos),
      pad_token: this.piece(s.pad),
      unk_token: this.piece(s.unk),
      mask_token: this.piece(s.mask),
    };
    return Buffer.from(JSON.stringify(config, null, 2) + '\n');
  }

  encode(text: string): Int32Array {
    return Int32Array.from(this.tok.encode(text, { add_special_tokens: false }).ids);
  }

  decode(ids: ArrayLike<number>): string {
    return this.tok.decode(Array.from(ids), { skip_special_tokens: false });
  }

  piece(id: number): string {
    const p = this.idToPiece[id];
    if (p === undefined) throw new RangeError(`token id ${id} has no piece`);
    return p;
  }

  pieceToId(piece: string): number {
    return this.pieceIds.get(piece) ?? this.special.unk;
  }
}
