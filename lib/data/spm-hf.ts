// trainlarge's SentencePiece tokenizers in Hugging Face's files, both ways (issue 30).
//
// Export builds the tokenizer.json that transformers' SpmConverter (convert_slow_tokenizer.py) builds from a
// SentencePiece model: a Unigram model with [piece, score] pairs, or a BPE model whose merges are every split
// of a piece into two pieces, ranked by the piece's score (SentencePiece merges the adjacent pair whose union
// scores highest); byte fallback; the normalizer's precompiled charsmap, then SentencePiece's whitespace rules
// (trailing spaces dropped, runs collapsed) and the Metaspace pre-tokenizer (spaces as ▁, one prepended); the
// control pieces (<pad> <s> </s> <mask>) and <unk> as special added tokens. Beside it, tokenizer_config.json
// and special_tokens_map.json name the special tokens, so `AutoTokenizer.from_pretrained(dir)` gives
// trainlarge's ids, and `<s> a </s>` / `<s> a </s></s> b </s>` as trainlarge lays sequences out.
//
// Import reads such a tokenizer.json back into a SentencePiece model (spmModelFromHf), which the addon loads.
// Only the fields a .model needs are read and written here (the wire format by hand, lib/protobuf.ts: Node has
// no protobuf), and the plugin's own reader (native/spm/spm_tokenizer.cc) reads just as few.

import { Field, readFields, serialize, Writer } from '../protobuf';
import { SpecialTokens } from './tokens';

// --- A SentencePiece model's fields ----------------------------------------------------------------------

/** ModelProto.SentencePiece.Type. */
export const enum PieceType {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

export interface SpmPiece {
  piece: string;
  score: number;
  type: PieceType;
}

/** What export needs of a .model: the pieces, and the settings that decide how text becomes pieces. */
export interface SpmModel {
  pieces: SpmPiece[];
  /** TrainerSpec.model_type: 1 unigram, 2 bpe, 3 word, 4 char. */
  modelType: number;
  byteFallback: boolean;
  unkId: number;
  splitByWhitespace: boolean;
  treatWhitespaceAsSuffix: boolean;
  splitDigits: boolean;
  normalizer: { name: string; charsmap: Uint8Array; addDummyPrefix: boolean; removeExtraWhitespaces: boolean; escapeWhitespaces: boolean };
  /** A denormalizer with a rule (applied by SentencePiece on decode). */
  denormalizer: boolean;
}

const MODEL_TYPES: Record<number, string> = { 1: 'unigram', 2: 'bpe', 3: 'word', 4: 'char' };

function bool(f: Field | undefined, dflt: boolean): boolean {
  return f?.varint === undefined ? dflt : f.varint !== 0n;
}

/** Each field's last occurrence, as protobuf merges a message (repeated fields are read apart). */
function lastOf(fields: Field[]): Map<number, Field> {
  return new Map(fields.map((f) => [f.field, f]));
}

export function parseSpmModel(bytes: Uint8Array, where = 'tokenizer model'): SpmModel {
  const fields = (b: Uint8Array) => readFields(b, where, 'SentencePiece model (protobuf)');
  const top = fields(bytes);
  const utf8 = new TextDecoder('utf-8');
  const pieces: SpmPiece[] = top
    .filter((f) => f.field === 1 && f.bytes)
    .map((f) => {
      const m = lastOf(fields(f.bytes!));
      return {
        piece: m.get(1)?.bytes ? utf8.decode(m.get(1)!.bytes) : '',
        score: m.get(2)?.fixed32 ?? 0,
        type: m.get(3)?.varint !== undefined ? Number(m.get(3)!.varint) : PieceType.Normal,
      };
    });
  // Sub-messages that occur twice merge field by field.
  const message = (n: number) => lastOf(top.filter((f) => f.field === n && f.bytes).flatMap((f) => fields(f.bytes!)));
  const t = message(2);
  const n = message(3);
  const d = message(5);
  const num = (f: Field | undefined, dflt: number) => (f?.varint === undefined ? dflt : Number(BigInt.asIntN(32, f.varint)));
  return {
    pieces,
    modelType: num(t.get(3), 1),
    byteFallback: bool(t.get(35), false),
    unkId: num(t.get(40), 0),
    splitByWhitespace: bool(t.get(22), true),
    treatWhitespaceAsSuffix: bool(t.get(24), false),
    splitDigits: bool(t.get(25), false),
    normalizer: {
      name: n.get(1)?.bytes ? utf8.decode(n.get(1)!.bytes) : '',
      charsmap: n.get(2)?.bytes ?? new Uint8Array(0),
      addDummyPrefix: bool(n.get(3), true),
      removeExtraWhitespaces: bool(n.get(4), true),
      escapeWhitespaces: bool(n.get(5), true),
    },
    denormalizer: (d.get(2)?.bytes?.length ?? 0) > 0,
  };
}

// --- Export -------------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

const SPACE = '▁';

/**
 * Why a SentencePiece model has no faithful tokenizer.json, or undefined when it has one. transformers'
 * converter covers BPE and unigram models that split at whitespace and mark it with a prepended ▁.
 */
export function spmExportProblem(m: SpmModel): string | undefined {
  if (m.modelType !== 1 && m.modelType !== 2)
    return `a SentencePiece '${MODEL_TYPES[m.modelType] ?? m.modelType}' model has no tokenizers counterpart (only 'bpe' and 'unigram' convert)`;
  const n = m.normalizer;
  if (!n.escapeWhitespaces || !n.addDummyPrefix)
    return 'its normalizer keeps spaces as they are or adds no ▁ before the text (escape_whitespaces / add_dummy_prefix off), which the Metaspace pre-tokenizer cannot express';
  if (!m.splitByWhitespace) return 'its pieces may span words (split_by_whitespace off), which the Metaspace pre-tokenizer cannot express';
  if (m.treatWhitespaceAsSuffix) return 'it puts ▁ at the end of words (treat_whitespace_as_suffix), which transformers does not convert';
  if (m.splitDigits) return "it splits digits apart (split_digits), which transformers' SentencePiece converter does not carry over";
  if (m.denormalizer) return 'it has a denormalizer rule, which tokenizers has no decoder for';
  if (n.charsmap.length === 0 && n.name && n.name !== 'identity')
    return `its normalizer '${n.name}' is a rule table without a precompiled charsmap`;
  return undefined;
}

/** BPE merges as transformers' generate_merges builds them: every split of a piece into two pieces, best piece first. */
function bpeMerges(m: SpmModel): [string, string][] {
  const ids = new Map<string, number>();
  m.pieces.forEach((p, id) => {
    if (p.type === PieceType.Normal || p.type === PieceType.UserDefined) ids.set(p.piece, id);
  });
  const merges: { l: string; r: string; score: number; id: number; li: number; ri: number }[] = [];
  m.pieces.forEach((p, id) => {
    if (p.type !== PieceType.Normal) return;
    const chars = Array.from(p.piece);
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join('');
      const r = chars.slice(k).join('');
      const li = ids.get(l);
      const ri = ids.get(r);
      if (li !== undefined && ri !== undefined) merges.push({ l, r, score: p.score, id, li, ri });
    }
  });
  // SentencePiece takes the pair whose union scores highest; among a piece's own splits, transformers' order.
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.li - b.li || a.ri - b.ri);
  return merges.map(({ l, r }) => [l, r]);
}

/** The tokenizer.json of a SentencePiece model, with trainlarge's special ids and sequence layout. */
export function spmTokenizerJson(m: SpmModel, special: SpecialTokens): Json {
  const unk = m.pieces[m.unkId]?.piece ?? '<unk>';
  const added = m.pieces
    .map((p, id) => ({ p, id }))
    .filter(({ p }) => p.type === PieceType.Control || p.type === PieceType.Unknown || p.type === PieceType.UserDefined)
    .map(({ p, id }) => ({
      id,
      content: p.piece,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: p.type !== PieceType.UserDefined,
    }));
  const model: Json =
    m.modelType === 1
      ? { type: 'Unigram', unk_id: m.unkId, vocab: m.pieces.map((p) => [p.piece, p.score]), byte_fallback: m.byteFallback }
      : {
          type: 'BPE',
          dropout: null,
          unk_token: unk,
          continuing_subword_prefix: null,
          end_of_word_suffix: null,
          fuse_unk: true,
          byte_fallback: m.byteFallback,
          ignore_merges: false,
          vocab: Object.fromEntries(m.pieces.map((p, id) => [p.piece, id])),
          merges: bpeMerges(m),
        };
  const normalizers: Json[] = [];
  if (m.normalizer.charsmap.length > 0)
    normalizers.push({ type: 'Precompiled', precompiled_charsmap: Buffer.from(m.normalizer.charsmap).toString('base64') });
  if (m.normalizer.removeExtraWhitespaces) {
    // SentencePiece drops leading and trailing spaces and collapses runs; Metaspace then adds the one ▁.
    normalizers.push({ type: 'Strip', strip_left: false, strip_right: true });
    normalizers.push({ type: 'Replace', pattern: { Regex: ' {2,}' }, content: SPACE });
  }
  const piece = (id: number) => m.pieces[id].piece;
  const cls = piece(special.cls);
  const eos = piece(special.eos);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers },
    pre_tokenizer: { type: 'Metaspace', replacement: SPACE, prepend_scheme: 'always', split: true },
    // trainlarge's layouts (classificationLayout): <s> a </s> and <s> a </s></s> b </s>, as RoBERTa's.
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: eos, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: eos, type_id: 0 } },
        { SpecialToken: { id: eos, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: eos, type_id: 0 } },
      ],
      special_tokens: {
        [cls]: { id: cls, ids: [special.cls], tokens: [cls] },
        [eos]: { id: eos, ids: [special.eos], tokens: [eos] },
      },
    },
    decoder: m.byteFallback
      ? {
          type: 'Sequence',
          decoders: [
            { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
            { type: 'ByteFallback' },
            { type: 'Fuse' },
            { type: 'Strip', content: ' ', start: 1, stop: 0 },
          ],
        }
      : { type: 'Metaspace', replacement: SPACE, prepend_scheme: 'always', split: true },
    model,
  };
}

/** The special-token names transformers reads (tokenizer_config.json and special_tokens_map.json). */
function specialNames(m: SpmModel, special: SpecialTokens): Record<string, string> {
  const piece = (id: number) => m.pieces[id].piece;
  return {
    bos_token: piece(special.cls),
    eos_token: piece(special.eos),
    unk_token: piece(special.unk),
    sep_token: piece(special.eos),
    pad_token: piece(special.pad),
    cls_token: piece(special.cls),
    mask_token: piece(special.mask),
  };
}

/** tokenizer.json, tokenizer_config.json and special_tokens_map.json for a SentencePiece model, or why not. */
export function spmToHfFiles(bytes: Uint8Array, special: SpecialTokens): [string, Buffer][] {
  const m = parseSpmModel(bytes);
  const problem = spmExportProblem(m);
  if (problem) throw new Error(`this SentencePiece tokenizer cannot be written in Hugging Face's format: ${problem}`);
  const names = specialNames(m, special);
  const json = (v: unknown) => Buffer.from(JSON.stringify(v, null, 2) + '\n');
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    ...names,
    model_max_length: 1_000_000_000_000_000_019_884_624_838_656,
    clean_up_tokenization_spaces: false,
  };
  return [
    ['tokenizer.json', json(spmTokenizerJson(m, special))],
    ['tokenizer_config.json', json(config)],
    ['special_tokens_map.json', json(names)],
  ];
}

// --- Import -------------------------------------------------------------------------------------------------

function hasMetaspace(v: unknown): boolean {
  if (!v || typeof v !== 'object') return false;
  const p = v as Json;
  if (p.type === 'Metaspace') return true;
  const list = p.pretokenizers ?? p.normalizers;
  return p.type === 'Sequence' && Array.isArray(list) && list.some(hasMetaspace);
}

function findOfType(v: unknown, type: string): Json | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const p = v as Json;
  if (p.type === type) return p;
  if (p.type === 'Sequence')
    for (const c of (p.normalizers ?? p.pretokenizers ?? []) as unknown[]) if (findOfType(c, type)) return findOfType(c, type);
  return undefined;
}

/** Whether a tokenizer.json is a SentencePiece model in tokenizers' terms (Unigram, or BPE over ▁-marked words). */
export function isSpmTokenizerJson(json: Json): boolean {
  const model = json.model as Json | undefined;
  if (!model) return false;
  if (model.type === 'Unigram') return true;
  return model.type === 'BPE' && (hasMetaspace(json.pre_tokenizer) || hasMetaspace(json.normalizer));
}

const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/**
 * A SentencePiece .model for a tokenizer.json that export wrote (or transformers' converter built from a
 * SentencePiece model): the pieces with their scores and types, the model type, byte fallback and the
 * normalizer's charsmap under `ruleName` (the addon checks the charsmap is that rule's).
 */
export function spmModelFromHf(json: Json, ruleName: string, where: string): Buffer {
  const model = json.model as Json;
  const addedSpecial = new Set(
    ((Array.isArray(json.added_tokens) ? json.added_tokens : []) as { content: string; special?: boolean }[])
      .filter((a) => a.special)
      .map((a) => a.content),
  );
  const byteFallback = model.byte_fallback === true;
  let pieces: [string, number][];
  let unkId: number;
  const malformed = (what: string) => new Error(`${where}: ${what}`);
  if (model.type === 'Unigram') {
    if (!Array.isArray(model.vocab) || !model.vocab.every((v) => Array.isArray(v) && typeof v[0] === 'string' && typeof v[1] === 'number'))
      throw malformed('a Unigram vocab must be [piece, score] pairs');
    pieces = model.vocab as [string, number][];
    unkId = typeof model.unk_id === 'number' ? model.unk_id : 0;
  } else {
    // BPE: SentencePiece's scores order the merges: the piece made by the n-th merge rule scores -n, and the
    // pieces no rule makes (single characters) score by their place among the normal pieces, as SentencePiece's
    // BPE trainer writes them (they are never merged into, so their scores do not change any ids).
    if (!model.vocab || typeof model.vocab !== 'object' || !Array.isArray(model.merges))
      throw malformed('a BPE model needs vocab and merges');
    const vocab = model.vocab as Record<string, number>;
    pieces = new Array<[string, number]>(Object.keys(vocab).length);
    for (const [p, id] of Object.entries(vocab)) {
      if (!Number.isInteger(id) || id < 0 || id >= pieces.length || pieces[id]) throw malformed("the BPE vocabulary's ids are not 0..n-1");
      pieces[id] = [p, 0];
    }
    unkId = vocab[typeof model.unk_token === 'string' ? model.unk_token : '<unk>'] ?? 0;
  }
  const types = pieces.map(([p], id): PieceType => {
    if (id === unkId) return PieceType.Unknown;
    if (addedSpecial.has(p)) return PieceType.Control;
    if (byteFallback && BYTE_PIECE.test(p)) return PieceType.Byte;
    return PieceType.Normal;
  });
  if (model.type !== 'Unigram') {
    const rank = new Map<string, number>();
    for (const merge of model.merges as (string | [string, string])[]) {
      const [l, r] = typeof merge === 'string' ? merge.split(' ') : merge;
      if (!rank.has(l + r)) rank.set(l + r, rank.size);
    }
    let normal = 0;
    pieces = pieces.map(([p], id) => {
      if (types[id] !== PieceType.Normal) return [p, 0];
      const place = normal++;
      return [p, -(rank.get(p) ?? place)];
    });
  }
  const charsmap = findOfType(json.normalizer, 'Precompiled')?.precompiled_charsmap;
  const removeExtra = findOfType(json.normalizer, 'Strip') !== undefined;
  const w = new Writer();
  pieces.forEach(([p, score], id) => {
    const t = types[id];
    // SentencePiece gives control, unknown and byte pieces score 0.
    const s = t === PieceType.Normal || t === PieceType.UserDefined ? score : 0;
    const pw = new Writer().string(1, p).float(2, s);
    if (t !== PieceType.Normal) pw.int(3, t);
    w.message(1, pw.done());
  });
  const trainer = new Writer()
    .int(3, model.type === 'Unigram' ? 1 : 2)
    .int(4, pieces.length)
    .int(35, Number(byteFallback))
    .int(40, unkId)
    .string(45, pieces[unkId]?.[0] ?? '<unk>');
  w.message(2, trainer.done());
  const norm = new Writer();
  if (typeof charsmap === 'string' && charsmap.length > 0) norm.string(1, ruleName).bytes(2, Buffer.from(charsmap, 'base64'));
  else norm.string(1, 'identity');
  norm.int(3, 1).int(4, Number(removeExtra)).int(5, 1);
  w.message(3, norm.done());
  return serialize(w.done());
}
