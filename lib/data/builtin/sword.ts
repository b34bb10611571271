// Reads SWORD Bible modules (CrossWire's format, as Debian's sword-text-* packages install them) without
// libsword or diatheke: the zText driver's index and zlib blocks, read with Node's zlib, and their OSIS
// markup reduced to plain text.
//
// A zText module (ModDrv=zText, CompressType=ZIP) holds each testament in three files:
//   ot.bzs, nt.bzs  block index: a 12-byte record per compressed block, three little-endian uint32s:
//                   the block's offset in .bzz, its compressed size, its uncompressed size.
//   ot.bzv, nt.bzv  verse index: a 10-byte record per entry, little-endian: uint32 block number,
//                   uint32 offset of the entry's text in the *uncompressed* block, uint16 size (0: no text).
//   ot.bzz, nt.bzz  the blocks, each a zlib (RFC 1950) stream (BlockType=BOOK: one block per book).
// The entries of a testament follow its versification: entry 0 is the module heading, 1 the testament
// heading, then each book has a book-heading entry and each of its chapters a chapter-heading entry
// followed by one entry per verse. So Genesis 1:1 is entry 4 of ot.bzv, Genesis 1:2 entry 5, Genesis 2:1
// entry 4 + 31 + 1. readZText checks that the entry count is the versification's and that each chapter
// heading names its chapter (osisID="Gen.1"), so a module indexed by another versification is an error
// rather than silently shifted text.
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { CanonBook, KJV_BOOKS } from './kjv';

/** Where SWORD modules are looked for: $SWORD_PATH (SWORD's own variable), then Debian's /usr/share/sword. */
export function swordRoots(): string[] {
  const env = process.env.SWORD_PATH;
  return [...(env ? env.split(path.delimiter).filter(Boolean) : []), '/usr/share/sword'];
}

export interface SwordModule {
  name: string;
  /** The module's data directory (holds ot.bzs ... nt.bzz). */
  dir: string;
  /** The module's .conf file (mods.d/<name>.conf). */
  conf: string;
  /** The conf's key=value lines (the first value of a repeated key). */
  settings: Record<string, string>;
}

/** The conf file's key=value settings ([Module] header and comments skipped). */
function parseConf(text: string): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_.]+)=(.*)$/.exec(line.trim());
    if (m && !(m[1] in settings)) settings[m[1]] = m[2].trim();
  }
  return settings;
}

/**
 * A zText module found under swordRoots() by its conf (mods.d/<name>.conf, matched case-insensitively as
 * SWORD does). Throws naming `hint` (how to install it) when absent, and when the conf declares anything
 * but a KJV-versified, zlib-compressed, UTF-8 zText module, the one layout readZText reads.
 */
export function findSwordModule(name: string, hint: string): SwordModule {
  for (const root of swordRoots()) {
    const modsDir = path.join(root, 'mods.d');
    let entries: string[];
    try {
      entries = fs.readdirSync(modsDir);
    } catch {
      continue;
    }
    const file = entries.find((e) => e.toLowerCase() === `${name.toLowerCase()}.conf`);
    if (!file) continue;
    const conf = path.join(modsDir, file);
    const settings = parseConf(fs.readFileSync(conf, 'utf8'));
    const want: Record<string, string> = { ModDrv: 'zText', CompressType: 'ZIP', Versification: 'KJV', Encoding: 'UTF-8' };
    for (const [key, value] of Object.entries(want)) {
      // SWORD's defaults: no Versification means KJV, no Encoding means Latin-1.
      const got = settings[key] ?? (key === 'Versification' ? 'KJV' : key === 'Encoding' ? 'Latin-1' : undefined);
      if (got?.toLowerCase() !== value.toLowerCase())
        throw new Error(`SWORD module ${name} (${conf}): ${key} is ${got ?? 'unset'}; only ${key}=${value} modules are read`);
    }
    const dataPath = (settings.DataPath ?? '').replace(/^\.\//, '');
    if (!dataPath) throw new Error(`SWORD module ${name} (${conf}) has no DataPath`);
    return { name, dir: path.join(root, dataPath), conf, settings };
  }
  throw new Error(`SWORD module ${name} not found under ${swordRoots().join(', ')} (mods.d/${name}.conf): ${hint}`);
}

/** One verse of a module: its reference and raw OSIS text ('' when the module has none there). */
export interface RawVerse {
  /** OSIS reference: 'Gen.1.1'. */
  ref: string;
  book: string;
  chapter: number;
  verse: number;
  osis: string;
}

/** The three files of one testament, with a reader for entry `i`'s text. */
function openTestament(dir: string, testament: 'ot' | 'nt'): { entries: number; entry: (i: number) => string } {
  const read = (ext: string): Buffer => {
    const file = path.join(dir, `${testament}.${ext}`);
    try {
      return fs.readFileSync(file);
    } catch (e) {
      throw new Error(`SWORD module: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const bzs = read('bzs');
  const bzv = read('bzv');
  const bzz = read('bzz');
  if (bzs.length % 12 !== 0 || bzv.length % 10 !== 0)
    throw new Error(`SWORD module ${dir}: ${testament}.bzs or ${testament}.bzv is not a whole number of records`);
  const blocks = new Map<number, Buffer>();
  const block = (b: number): Buffer => {
    let data = blocks.get(b);
    if (!data) {
      if (b * 12 + 12 > bzs.length) throw new Error(`SWORD module ${dir}: ${testament}.bzv names block ${b}, .bzs has ${bzs.length / 12}`);
      const offset = bzs.readUInt32LE(b * 12);
      const size = bzs.readUInt32LE(b * 12 + 4);
      const expected = bzs.readUInt32LE(b * 12 + 8);
      data = zlib.inflateSync(bzz.subarray(offset, offset + size));
      if (data.length !== expected)
        throw new Error(`SWORD module ${dir}: ${testament} block ${b} inflates to ${data.length} bytes, the index says ${expected}`);
      blocks.set(b, data);
    }
    return data;
  };
  return {
    entries: bzv.length / 10,
    entry(i: number): string {
      const size = bzv.readUInt16LE(i * 10 + 8);
      if (size === 0) return '';
      const offset = bzv.readUInt32LE(i * 10 + 4);
      return block(bzv.readUInt32LE(i * 10)).toString('utf8', offset, offset + size);
    },
  };
}

/**
 * Every verse of a KJV-versified zText module in canonical order (31,102 verses, Genesis 1:1 first),
 * empty verses included. See the format described at the top of this file.
 */
export function readZText(dir: string, books: readonly CanonBook[] = KJV_BOOKS): RawVerse[] {
  const verses: RawVerse[] = [];
  for (const testament of ['ot', 'nt'] as const) {
    const t = openTestament(dir, testament);
    const mine = books.filter((b) => b.testament === testament);
    let i = 2; // 0: module heading, 1: testament heading
    for (const book of mine) {
      i++; // book heading
      book.verses.forEach((count, c) => {
        const heading = t.entry(i++);
        const named = /<chapter\b[^>]*\bosisID="([^"]+)"/.exec(heading)?.[1];
        if (named !== undefined && named !== `${book.osis}.${c + 1}`)
          throw new Error(`SWORD module ${dir}: the heading of ${book.osis} ${c + 1} names ${named}: not indexed by the KJV versification`);
        for (let v = 1; v <= count; v++) {
          verses.push({ ref: `${book.osis}.${c + 1}.${v}`, book: book.osis, chapter: c + 1, verse: v, osis: t.entry(i++) });
        }
      });
    }
    if (i !== t.entries)
      throw new Error(`SWORD module ${dir}: ${testament}.bzv has ${t.entries} entries, the KJV versification ${i}: another versification?`);
  }
  return verses;
}

/** Strong's numbers tagged in a verse's OSIS (`<w lemma="strong:H0430">`), as 'H430', 'G2316'; notes excluded. */
export function strongsNumbers(osis: string): Set<string> {
  const out = new Set<string>();
  const text = osis.replace(NOTE, '');
  const re = /strong:([HG])0*(\d+)/g; // only lemma attributes hold strong: values
  for (let m = re.exec(text); m; m = re.exec(text)) out.add(m[1] + m[2]);
  return out;
}

const NOTE = /<note\b[^>]*>[\s\S]*?<\/note>/g;
/** Elements that stand between words: replaced by a space. Everything else (w, transChange, q, divineName...) is inline. */
const BLOCK = /<\/?(?:div|l|lg|lb|p|chapter|milestone|title|verse|list|item|table|row|cell|head)\b[^>]*>/g;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export interface OsisTextOptions {
  /**
   * A word the translators added (`<transChange type="added">`) right after a tagged word with no space
   * between: true when it belongs to that word (a Spanish enclitic, sáca+lo), else a space goes between.
   */
  joinsAdded?: (word: string, added: string) => boolean;
}

/**
 * The plain text of a verse's OSIS: notes and non-canonical titles (section headings, Psalm 119's acrostic
 * letters) dropped with their content; canonical titles (Psalm superscriptions) kept as text; Strong's
 * tags, milestones and all other markup removed, with USFM markers a converter left as text ('\nd');
 * pilcrows (¶, the KJV's paragraph marks) dropped; entities decoded; whitespace collapsed, none before
 * , ; : . ! ? ) and no doubled commas.
 */
export function osisText(osis: string, opts: OsisTextOptions = {}): string {
  let t = osis.replace(NOTE, ' ');
  t = t.replace(/<title\b([^>]*)>[\s\S]*?<\/title>/g, (whole: string, attrs: string) =>
    /\bcanonical="true"/.test(attrs) ? ` ${whole.replace(/<\/?title\b[^>]*>/g, '')} ` : ' ',
  );
  // An added word against a tagged word: some modules lost the space between them.
  // (The lookbehind for the word runs only where '</w>' matched: a leading [\p{L}]* would be tried at every position.)
  t = t.replace(
    /<\/w>(?<=([\p{L}\p{M}]*)<\/w>)<transChange\b[^>]*>([^<]*)<\/transChange>/gu,
    (whole: string, word: string, added: string) =>
      opts.joinsAdded?.(word, added) ? whole : whole.replace('</w><transChange', '</w> <transChange'),
  );
  t = t.replace(/<\/transChange><w\b/g, '</transChange> <w');
  t = t.replace(BLOCK, ' ').replace(/<[^>]*>/g, '');
  t = t
    .replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ENTITIES[e])
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)));
  return t
    .replace(/\\\+?[a-z]+\d*\*?/g, ' ') // USFM markers the module's converter left as text: 'the \nd LORD'
    .replace(/¶/g, ' ')
    .replace(/\s+/g, ' ')
    .replace(/ ([,;:.!?)])/g, '$1')
    .replace(/([,;:])\1+/g, '$1')
    .trim();
}
