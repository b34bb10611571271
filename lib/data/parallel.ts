// Parallel corpora for translation: (source, target) sentence pairs in train/valid/test. The built-in
// ones are read from Debian packages (scripts/setup installs them) and prepared once into the cache
// (<cache>/parallel/<name>/: three TSV files and manifest.json); users give TSV or JSONL files.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { alignedVerses, BIBLE_TEST_BOOKS, BIBLE_VALID_BOOKS, bibleCleaners, KJV_MODULE, RV1909_MODULE } from './builtin/bible';
import { debianPackage, installedVersion } from './builtin/debian';
import { cacheDir } from './builtin/fetch';
import { HANDBOOK_TEST_CHAPTERS, HANDBOOK_VALID_CHAPTERS, handbookFiles, HandbookLanguage, handbookPairs } from './builtin/handbook';
import { findSwordModule, readZText } from './builtin/sword';
import { readTextFile } from './files';
import type { Split } from './documents';

/** One split: source[i] translates to target[i]; ids[i] names where the pair comes from ('Gen.1.1', 'apt.html#3', 'pairs.tsv:12'). */
export interface ParallelSplit {
  source: string[];
  target: string[];
  ids: string[];
}

export interface ParallelSplitManifest {
  pairs: number;
  /** Books, chapters or files the pairs come from (a unit is in one split only). */
  units: number;
  /** sha256 of the split as `id<TAB>source<TAB>target` lines. */
  sha256: string;
}

export interface ParallelManifest {
  format: 'trainlarge-parallel';
  version: 1;
  name: string;
  /** Language codes of the stored direction (built-ins: 'en' and the other language); absent for your files. */
  source?: string;
  target?: string;
  description: string;
  /** How train/valid/test are made. */
  split: string;
  createdAt: string;
  sources: {
    debianPackage?: string;
    /** Installed version (dpkg), and the version the corpus was measured with. */
    version?: string;
    pinned?: string;
    license?: string;
    file?: string;
    files?: number;
    bytes: number;
    sha256: string;
  }[];
  splits: Record<Split, ParallelSplitManifest>;
  /** Pairs left out while preparing, by reason. */
  dropped: Record<string, number>;
  /** sha256 over the preparation's version and its input files: the cached corpus is rebuilt when it changes. */
  inputs?: string;
  /** Wall time of the preparation. */
  prepareSeconds?: number;
  /** sha256 over the three splits' checksums: one value that names this exact corpus. */
  checksum: string;
}

/** A parallel corpus as loaded: the splits after loadParallelCorpus's options, and the manifest of the whole corpus. */
export interface ParallelCorpus {
  name: string;
  /** Language codes after `reverse` (built-ins); undefined for your files. */
  source?: string;
  target?: string;
  train: ParallelSplit;
  valid: ParallelSplit;
  test: ParallelSplit;
  manifest: ParallelManifest;
}

/** A pair as a built-in source produces it: `unit` is the book or chapter that decides its split. */
interface BuiltPair {
  id: string;
  unit: string;
  source: string;
  target: string;
}

interface BuiltCorpus {
  pairs: BuiltPair[];
  dropped: Record<string, number>;
}

export interface ParallelSource {
  /** Language codes of the stored direction. */
  source: string;
  target: string;
  description: string;
  /** The Debian packages it reads (DEBIAN_PACKAGES). */
  packages: readonly string[];
  split: string;
  valid: readonly string[];
  test: readonly string[];
  /** The files read, by Debian package: their checksums key the cache. */
  inputs(): { debianPackage: string; files: string[] }[];
  /** @internal Reads the packages' files into pairs (prepareParallelCorpus calls it; the pairs' type is private). */
  build(): BuiltCorpus;
}

function swordModuleFiles(name: string, pkg: string): string[] {
  const m = findSwordModule(name, `apt-get install ${pkg} (or set SWORD_PATH to a SWORD library holding it)`);
  return [m.conf, ...['ot', 'nt'].flatMap((t) => ['bzs', 'bzv', 'bzz'].map((e) => path.join(m.dir, `${t}.${e}`)))];
}

function buildBible(): BuiltCorpus {
  const en = readZText(findSwordModule(KJV_MODULE, 'apt-get install sword-text-kjv').dir);
  const es = readZText(findSwordModule(RV1909_MODULE, 'apt-get install sword-text-sparv').dir);
  const { pairs, dropped } = alignedVerses(en, es, bibleCleaners(es));
  return {
    pairs: pairs.map((p) => ({ id: p.ref, unit: p.book, source: p.en, target: p.es })),
    dropped: Object.fromEntries(Object.entries(dropped).map(([k, v]) => [k, v.length])),
  };
}

function handbookSource(lang: HandbookLanguage, name: string, approx: string): ParallelSource {
  return {
    source: 'en',
    target: lang,
    description: `The Debian Administrator's Handbook, English and its human ${name} translation, paragraph by paragraph (${approx} pairs)`,
    packages: ['debian-handbook'],
    split: `whole chapters (a chapter file with its sections): valid ${HANDBOOK_VALID_CHAPTERS.join(', ')}; test ${HANDBOOK_TEST_CHAPTERS.join(', ')}`,
    valid: HANDBOOK_VALID_CHAPTERS,
    test: HANDBOOK_TEST_CHAPTERS,
    inputs: () => {
      const f = handbookFiles(lang);
      return [{ debianPackage: 'debian-handbook', files: [...f.en, ...f.other] }];
    },
    build: () => {
      const { pairs, dropped } = handbookPairs(lang);
      return { pairs: pairs.map((p) => ({ id: p.id, unit: p.chapter, source: p.en, target: p.other })), dropped };
    },
  };
}

/**
 * The built-in parallel corpora. A new one is an entry here: its languages, description, the Debian
 * packages it reads, the units held out for valid and test, and the functions that list its input files
 * and build its pairs.
 */
export const PARALLEL_SOURCES: Record<string, ParallelSource> = {
  'bible-en-es': {
    source: 'en',
    target: 'es',
    description: 'King James Version and Reina-Valera 1909, verse by verse (KJV versification): ~30,800 pairs',
    packages: ['sword-text-kjv', 'sword-text-sparv'],
    split: `whole books: valid ${BIBLE_VALID_BOOKS.join(', ')}; test ${BIBLE_TEST_BOOKS.join(', ')}`,
    valid: BIBLE_VALID_BOOKS,
    test: BIBLE_TEST_BOOKS,
    inputs: () => [
      { debianPackage: 'sword-text-kjv', files: swordModuleFiles(KJV_MODULE, 'sword-text-kjv') },
      { debianPackage: 'sword-text-sparv', files: swordModuleFiles(RV1909_MODULE, 'sword-text-sparv') },
    ],
    build: buildBible,
  },
  'handbook-en-fr': handbookSource('fr', 'French', '~2,000'),
  'handbook-en-de': handbookSource('de', 'German', '~2,400'),
  'handbook-en-es': handbookSource('es', 'Spanish', '~2,400'),
};

/**
 * Bumped when a built-in corpus's cleaning or pairing changes, so caches prepared by an older version
 * are rebuilt.
 */
const PREPARE_VERSION = 2;
const SPLITS: readonly Split[] = ['train', 'valid', 'test'];

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `<cache>/parallel/<name>`. */
export function parallelDir(name: string): string {
  return path.join(cacheDir(), 'parallel', name);
}

function requireBuiltin(name: string): ParallelSource {
  if (!Object.prototype.hasOwnProperty.call(PARALLEL_SOURCES, name)) {
    throw new Error(
      `parallel corpus '${name}' is not built in; expected one of: ${Object.keys(PARALLEL_SOURCES).join(', ')}, ` +
        "or { name, train: { files, format: 'tsv' | 'jsonl' } } for your own files",
    );
  }
  return PARALLEL_SOURCES[name];
}

/** A split as its TSV file holds it: `id<TAB>source<TAB>target` lines (the texts hold no tabs or newlines). */
function splitLines(s: ParallelSplit): string {
  return s.ids.map((id, i) => `${id}\t${s.source[i]}\t${s.target[i]}\n`).join('');
}

function splitManifest(s: ParallelSplit, units: (id: string) => string): ParallelSplitManifest {
  return { pairs: s.ids.length, units: new Set(s.ids.map(units)).size, sha256: sha256(splitLines(s)) };
}

function corpusChecksum(splits: Record<Split, ParallelSplitManifest>): string {
  return sha256(SPLITS.map((s) => splits[s].sha256).join(''));
}

/** Writes by temporary name and rename, so a reader never sees half a file (the manifest, written last, vouches for the rest). */
async function writeFileReplacing(file: string, data: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.promises.writeFile(tmp, data);
  await fs.promises.rename(tmp, file);
}

/** The cached manifest of a built-in corpus, or undefined when it has not been prepared. Does not check that it is current. */
export function preparedManifest(name: string): ParallelManifest | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(parallelDir(name), 'manifest.json'), 'utf8')) as ParallelManifest;
  } catch {
    return undefined;
  }
}

/** Checksums of the input files, and the cache key over them. */
async function digestInputs(src: ParallelSource): Promise<{ key: string; sources: ParallelManifest['sources'] }> {
  const key = createHash('sha256').update(`trainlarge-parallel ${PREPARE_VERSION}\0`);
  const sources: ParallelManifest['sources'] = [];
  for (const { debianPackage: pkg, files } of src.inputs()) {
    const h = createHash('sha256');
    let bytes = 0;
    for (const f of files) {
      const data = await fs.promises.readFile(f);
      h.update(path.basename(f)).update('\0').update(data);
      bytes += data.length;
    }
    const digest = h.digest('hex');
    key.update(digest);
    const pin = debianPackage(pkg);
    sources.push({
      debianPackage: pkg,
      version: installedVersion(pkg),
      pinned: pin.version,
      license: pin.license,
      files: files.length,
      bytes,
      sha256: digest,
    });
  }
  return { key: key.digest('hex'), sources };
}

/**
 * Prepares a built-in parallel corpus into the cache (<cache>/parallel/<name>/{train,valid,test}.tsv and
 * manifest.json) and returns its manifest. Returns at once when the cache holds it built from the same
 * input files by the same version of this code; `force` rebuilds regardless. The Debian packages it reads
 * must be installed (scripts/setup does it); when one is not, the error says which.
 */
export async function prepareParallelCorpus(name: string, opts: { force?: boolean } = {}): Promise<ParallelManifest> {
  const src = requireBuiltin(name);
  const started = Date.now();
  const { key, sources } = await digestInputs(src);
  const dir = parallelDir(name);
  const cached = preparedManifest(name);
  if (!opts.force && cached?.inputs === key && SPLITS.every((s) => fs.existsSync(path.join(dir, `${s}.tsv`)))) return cached;

  const built = src.build();
  const splitOf = (unit: string): Split => (src.test.includes(unit) ? 'test' : src.valid.includes(unit) ? 'valid' : 'train');
  const splits: Record<Split, ParallelSplit> = {
    train: { source: [], target: [], ids: [] },
    valid: { source: [], target: [], ids: [] },
    test: { source: [], target: [], ids: [] },
  };
  const unitOf = new Map<string, string>();
  for (const p of built.pairs) {
    if (/[\t\n\r]/.test(p.source + p.target)) throw new Error(`${name}: pair ${p.id} holds a tab or newline after cleaning`);
    const s = splits[splitOf(p.unit)];
    s.source.push(p.source);
    s.target.push(p.target);
    s.ids.push(p.id);
    unitOf.set(p.id, p.unit);
  }
  for (const held of [...src.valid, ...src.test]) {
    if (!built.pairs.some((p) => p.unit === held)) throw new Error(`${name}: held-out unit ${held} has no pairs (renamed in the data?)`);
  }
  await fs.promises.mkdir(dir, { recursive: true });
  for (const s of SPLITS) await writeFileReplacing(path.join(dir, `${s}.tsv`), splitLines(splits[s]));
  const manifestSplits = Object.fromEntries(SPLITS.map((s) => [s, splitManifest(splits[s], (id) => unitOf.get(id) ?? id)])) as Record<
    Split,
    ParallelSplitManifest
  >;
  const manifest: ParallelManifest = {
    format: 'trainlarge-parallel',
    version: 1,
    name,
    source: src.source,
    target: src.target,
    description: src.description,
    split: src.split,
    createdAt: new Date().toISOString(),
    sources,
    splits: manifestSplits,
    dropped: built.dropped,
    inputs: key,
    prepareSeconds: (Date.now() - started) / 1000,
    checksum: corpusChecksum(manifestSplits),
  };
  await writeFileReplacing(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** A cached split file, checked against the manifest's checksum. */
async function readCachedSplit(name: string, split: Split, expected: ParallelSplitManifest): Promise<ParallelSplit> {
  const file = path.join(parallelDir(name), `${split}.tsv`);
  const text = await fs.promises.readFile(file, 'utf8');
  if (sha256(text) !== expected.sha256)
    throw new Error(`${file} does not match its manifest's checksum: rerun prepareParallelCorpus('${name}', { force: true })`);
  const out: ParallelSplit = { source: [], target: [], ids: [] };
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [id, source, target] = line.split('\t');
    out.ids.push(id);
    out.source.push(source);
    out.target.push(target);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Your own pairs

const FieldSchema = z.union([z.string().min(1), z.number().int().min(0)]);

const PairFilesSchema = z
  .object({
    files: z.array(z.string().min(1)).min(1),
    format: z.enum(['tsv', 'jsonl']),
    /** JSONL: the key (default 'source'); TSV: a 0-based column (default 0) or a header name. */
    sourceField: FieldSchema.optional(),
    /** JSONL: the key (default 'target'); TSV: a 0-based column (default 1) or a header name. */
    targetField: FieldSchema.optional(),
  })
  .strict();

export const ParallelFilesSpecSchema = z
  .object({
    name: z.string().min(1),
    train: PairFilesSchema,
    valid: PairFilesSchema.optional(),
    test: PairFilesSchema.optional(),
  })
  .strict();

/** Files of your own pairs: TSV (two tab-separated columns, or the columns sourceField/targetField name) or JSONL. */
export type ParallelFiles = z.input<typeof PairFilesSchema>;
/** Your own corpus: train files, and valid/test files when you have them (no pairs are carved out of train). */
export type ParallelFilesSpec = z.input<typeof ParallelFilesSpecSchema>;

const ParallelLoadOptionsSchema = z
  .object({
    maxPairs: z.number().int().positive().optional(),
    reverse: z.boolean().default(false),
    minChars: z.number().int().min(0).default(1),
    maxChars: z.number().int().positive().optional(),
  })
  .strict()
  .refine((o) => o.maxChars === undefined || o.minChars <= o.maxChars, { message: 'minChars must be <= maxChars', path: ['minChars'] });

export interface ParallelLoadOptions {
  /** At most this many pairs in each split: the first ones in corpus order, after the length filter. */
  maxPairs?: number;
  /** Swap the direction: bible-en-es is read as Spanish → English. */
  reverse?: boolean;
  /** Keep a pair when its source and its target each have at least minChars (default 1) and at most maxChars characters. */
  minChars?: number;
  maxChars?: number;
}

/** The pairs of one split of your files; every error names the split, the file and the line. */
async function readPairFiles(spec: z.output<typeof PairFilesSchema>, split: Split): Promise<ParallelSplit> {
  const out: ParallelSplit = { source: [], target: [], ids: [] };
  const tsv = spec.format === 'tsv';
  const sourceField = spec.sourceField ?? (tsv ? 0 : 'source');
  const targetField = spec.targetField ?? (tsv ? 1 : 'target');
  for (const [index, file] of spec.files.entries()) {
    let text: string;
    try {
      text = await readTextFile(file, index);
    } catch (e) {
      throw new Error(`${split}.${(e as Error).message}`);
    }
    const where = (line: number): string => `${split}.files[${index}] ${file}: line ${line}`;
    const lines = text
      .split('\n')
      .map((t, i) => ({ line: i + 1, text: t }))
      .filter((l) => l.text.trim().length > 0);
    if (tsv) {
      // String fields name columns of a header row; numbers are 0-based columns of headerless rows.
      const header = typeof sourceField === 'string' || typeof targetField === 'string' ? lines.shift() : undefined;
      const names = header?.text.split('\t').map((c) => c.trim());
      const column = (field: string | number, role: string): number => {
        if (typeof field === 'number') return field;
        const col = names?.indexOf(field) ?? -1;
        if (col < 0)
          throw new Error(
            `${split}.${role}Field: no column ${JSON.stringify(field)} in the header of ${file} (columns: ${names?.join(', ')})`,
          );
        return col;
      };
      const sc = column(sourceField, 'source');
      const tc = column(targetField, 'target');
      // Two columns by default; with fields given, every row has as many as the first (or the header).
      const expected =
        spec.sourceField === undefined && spec.targetField === undefined ? 2 : (names?.length ?? lines[0]?.text.split('\t').length);
      for (const { line, text: t } of lines) {
        const cells = t.split('\t');
        if (cells.length !== expected) {
          throw new Error(
            `${where(line)}: ${cells.length} tab-separated column${cells.length === 1 ? '' : 's'}, expected ${expected}` +
              (expected === 2 ? ' (source<TAB>target)' : ''),
          );
        }
        for (const [col, role] of [
          [sc, 'source'],
          [tc, 'target'],
        ] as const) {
          if (col >= cells.length) throw new Error(`${where(line)}: no ${role} column ${col} (the row has ${cells.length})`);
          if (!cells[col].trim()) throw new Error(`${where(line)}: empty ${role} (column ${col})`);
        }
        out.source.push(cells[sc].trim());
        out.target.push(cells[tc].trim());
        out.ids.push(`${file}:${line}`);
      }
    } else {
      for (const { line, text: t } of lines) {
        let value: unknown;
        try {
          value = JSON.parse(t);
        } catch (e) {
          throw new Error(`${where(line)}: bad JSON (${(e as Error).message})`);
        }
        if (value === null || typeof value !== 'object' || Array.isArray(value))
          throw new Error(`${where(line)}: expected a JSON object with ${JSON.stringify(sourceField)} and ${JSON.stringify(targetField)}`);
        const record = value as Record<string, unknown>;
        const get = (field: string | number, role: string): string => {
          const v = record[field];
          if (v === undefined || v === null) throw new Error(`${where(line)}: no ${role} field ${JSON.stringify(field)}`);
          if (typeof v !== 'string')
            throw new Error(`${where(line)}: ${role} field ${JSON.stringify(field)} is a ${typeof v}, expected a string`);
          if (!v.trim()) throw new Error(`${where(line)}: empty ${role} field ${JSON.stringify(field)}`);
          return v.replace(/\s+/g, ' ').trim();
        };
        out.source.push(get(sourceField, 'source'));
        out.target.push(get(targetField, 'target'));
        out.ids.push(`${file}:${line}`);
      }
    }
  }
  if (out.ids.length === 0) throw new Error(`${split}: no pairs in ${spec.files.join(', ')}`);
  return out;
}

async function loadPairFiles(
  spec: z.output<typeof ParallelFilesSpecSchema>,
): Promise<{ splits: Record<Split, ParallelSplit>; manifest: ParallelManifest }> {
  const empty = (): ParallelSplit => ({ source: [], target: [], ids: [] });
  const splits: Record<Split, ParallelSplit> = {
    train: await readPairFiles(spec.train, 'train'),
    valid: spec.valid ? await readPairFiles(spec.valid, 'valid') : empty(),
    test: spec.test ? await readPairFiles(spec.test, 'test') : empty(),
  };
  const files = SPLITS.flatMap((s) => spec[s]?.files ?? []);
  const sources = await Promise.all(
    files.map(async (f) => {
      const data = await fs.promises.readFile(f);
      return { file: path.resolve(f), bytes: data.length, sha256: sha256(data) };
    }),
  );
  const fileOf = (id: string): string => id.slice(0, id.lastIndexOf(':'));
  const manifestSplits = Object.fromEntries(SPLITS.map((s) => [s, splitManifest(splits[s], fileOf)])) as Record<
    Split,
    ParallelSplitManifest
  >;
  const manifest: ParallelManifest = {
    format: 'trainlarge-parallel',
    version: 1,
    name: spec.name,
    description: `your files: ${files.join(', ')}`,
    split: 'as given: train, valid and test files',
    createdAt: new Date().toISOString(),
    sources,
    splits: manifestSplits,
    dropped: {},
    checksum: corpusChecksum(manifestSplits),
  };
  return { splits, manifest };
}

// ---------------------------------------------------------------------------------------------------

/** The options applied to one split: the length filter, then maxPairs, then the direction. */
function applyOptions(s: ParallelSplit, o: z.output<typeof ParallelLoadOptionsSchema>): ParallelSplit {
  const out: ParallelSplit = { source: [], target: [], ids: [] };
  const fits = (t: string): boolean => t.length >= o.minChars && (o.maxChars === undefined || t.length <= o.maxChars);
  for (let i = 0; i < s.ids.length && (o.maxPairs === undefined || out.ids.length < o.maxPairs); i++) {
    if (!fits(s.source[i]) || !fits(s.target[i])) continue;
    out.source.push(o.reverse ? s.target[i] : s.source[i]);
    out.target.push(o.reverse ? s.source[i] : s.target[i]);
    out.ids.push(s.ids[i]);
  }
  return out;
}

/**
 * A parallel corpus's train/valid/test pairs. `spec` is a built-in name (PARALLEL_SOURCES:
 * 'bible-en-es', 'handbook-en-fr', ...; prepared into the cache on first use, see prepareParallelCorpus)
 * or your files: `{ name, train: { files, format: 'tsv' | 'jsonl', sourceField?, targetField? }, valid?, test? }`.
 * A TSV line is `source<TAB>target`; a JSONL line an object with string fields 'source' and 'target' (or
 * the fields named). A missing or empty file, a bad column count, an empty or missing field, a bad JSON
 * line: errors naming the split, file and line. Options: a length filter in characters (minChars,
 * maxChars: both sides), `maxPairs` per split, `reverse` to translate the other way. Each split keeps
 * corpus order; `manifest` describes the whole corpus (counts before the options).
 */
export async function loadParallelCorpus(spec: string | ParallelFilesSpec, options: ParallelLoadOptions = {}): Promise<ParallelCorpus> {
  const opts = parseConfig(ParallelLoadOptionsSchema, options, 'loadParallelCorpus options');
  let splits: Record<Split, ParallelSplit>;
  let manifest: ParallelManifest;
  if (typeof spec === 'string') {
    manifest = await prepareParallelCorpus(spec);
    const m = manifest;
    const [train, valid, test] = await Promise.all(SPLITS.map((s) => readCachedSplit(spec, s, m.splits[s])));
    splits = { train, valid, test };
  } else {
    if (spec === null || typeof spec !== 'object')
      throw new TypeError(
        `loadParallelCorpus: expected a built-in name (${Object.keys(PARALLEL_SOURCES).join(', ')}) or { name, train: { files, format } }`,
      );
    ({ splits, manifest } = await loadPairFiles(parseConfig(ParallelFilesSpecSchema, spec, 'loadParallelCorpus')));
  }
  const [source, target] = opts.reverse ? [manifest.target, manifest.source] : [manifest.source, manifest.target];
  return {
    name: manifest.name,
    source,
    target,
    train: applyOptions(splits.train, opts),
    valid: applyOptions(splits.valid, opts),
    test: applyOptions(splits.test, opts),
    manifest,
  };
}
