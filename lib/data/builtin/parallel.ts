// The built-in parallel corpora: read from Debian packages (scripts/setup installs them) and prepared once
// into the cache (<cache>/parallel/<name>/: three TSV files and manifest.json). A new corpus is an entry in
// PARALLEL_SOURCES; loadParallelCorpus (lib/data/parallel.ts) reads the cache.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { Split } from '../documents';
import {
  corpusChecksum,
  ParallelManifest,
  ParallelSplit,
  ParallelSplitManifest,
  sha256,
  splitLines,
  splitManifest,
  SPLITS,
} from '../pairs';
import { alignedVerses, BIBLE_TEST_BOOKS, BIBLE_VALID_BOOKS, bibleCleaners, KJV_MODULE, RV1909_MODULE } from './bible';
import { debianPackage, installedVersion } from './debian';
import { cacheDir } from './fetch';
import { HANDBOOK_TEST_CHAPTERS, HANDBOOK_VALID_CHAPTERS, handbookFiles, HandbookLanguage, handbookPairs } from './handbook';
import { findSwordModule, readZText } from './sword';

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
export async function readCachedSplit(name: string, split: Split, expected: ParallelSplitManifest): Promise<ParallelSplit> {
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
