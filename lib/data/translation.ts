// Dataset.parallel: a parallel corpus (built-in or your files) tokenized for translation with one
// vocabulary for both languages, as fairseq's --joined-dictionary and shared SentencePiece models do. The
// shared tokenizer is trained once per train split and options, and kept in the cache (<cache>/tokenizers/parallel/).
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { TokenizerOptions, TokenizerOptionsSchema, TokenizerSettings } from '../config/tokenizer';
import { writeJsonAtomic } from '../io';
import { cacheDir } from './builtin/fetch';
import { ParallelDataset } from './dataset';
import { loadParallelCorpus, ParallelCorpus } from './parallel';
import { ParallelFilesSpec } from './parallel-files';
import { ParallelManifest, ParallelSplit } from './pairs';
import { SENTENCEPIECE_FILE, Tokenizer } from './tokenizer';

const ParallelOptionsSchema = z
  .object({
    /** A built-in corpus name ('bible-en-es', 'handbook-en-fr', ...) or { name, train: { files, format, ... }, valid?, test? }. */
    source: z.union([z.string().min(1), z.object({ name: z.string() }).passthrough()]),
    /**
     * 'shared' (default): a SentencePiece model trained on both sides of the train split (vocabSize, tokenizerOptions);
     * or a Tokenizer you have (its vocabulary serves both languages).
     */
    tokenizer: z
      .union([z.literal('shared'), z.custom<Tokenizer>((t) => t instanceof Tokenizer, "expected 'shared' or a Tokenizer")])
      .default('shared'),
    /** The shared tokenizer's vocabulary size (default 8000). */
    vocabSize: z.number().int().min(16).optional(),
    /** More Tokenizer.train options for the shared tokenizer (model, characterCoverage, ...). */
    tokenizerOptions: z.record(z.string(), z.unknown()).optional(),
    /** Tokens per side, eos included (= the model's maxLen): longer sentences are truncated. */
    maxLen: z.number().int().min(2).default(128),
    /** loadParallelCorpus's options: pairs per split, direction, length filter in characters. */
    maxPairs: z.number().int().positive().optional(),
    reverse: z.boolean().optional(),
    minChars: z.number().int().min(0).optional(),
    maxChars: z.number().int().positive().optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.tokenizer !== 'shared' && (o.vocabSize !== undefined || o.tokenizerOptions !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['vocabSize'], message: "vocabSize and tokenizerOptions only apply with tokenizer 'shared'" });
    }
  });

export type ParallelOptions = Omit<z.input<typeof ParallelOptionsSchema>, 'source' | 'tokenizer' | 'tokenizerOptions'> & {
  source: string | ParallelFilesSpec;
  tokenizer?: 'shared' | Tokenizer;
  tokenizerOptions?: Omit<TokenizerOptions, 'vocabSize'>;
};

/** A translation task: the pairs of each split, tokenized, and the tokenizer that made the ids. */
export interface ParallelTask {
  name: string;
  /** Language codes (built-ins), after `reverse`. */
  sourceLanguage?: string;
  targetLanguage?: string;
  tokenizer: Tokenizer;
  train: ParallelDataset;
  /** Undefined when your files give no valid (or test) split. */
  valid?: ParallelDataset;
  test?: ParallelDataset;
  /** The texts of each split, with the ids naming where each pair comes from. */
  pairs: { train: ParallelSplit; valid: ParallelSplit; test: ParallelSplit };
  manifest: ParallelManifest;
  /**
   * The shared tokenizer's cache entry (absent when you gave a Tokenizer): its file, the key naming the train
   * pairs and options it was trained on, and whether this call loaded it instead of training it.
   */
  tokenizerCache?: { file: string; key: string; reused: boolean };
  dispose(): void;
}

/** Bumped when the way the shared tokenizer is trained from the pairs changes: older cache entries are then not used. */
const SHARED_TOKENIZER_VERSION = 1;

/** `<cache>/tokenizers/parallel/<key>`: where the shared tokenizer trained on one corpus's train pairs with one set of options is kept. */
export function sharedTokenizerDir(key: string): string {
  return path.join(cacheDir(), 'tokenizers', 'parallel', key);
}

/**
 * The shared SentencePiece tokenizer of a train split, trained on both sides once and kept in the cache under a
 * key over the very texts (in order) and the full options (defaults filled in): a second Dataset.parallel of the
 * same pairs and options loads it. An entry whose file no longer matches its recorded checksum is retrained.
 */
async function sharedTokenizer(
  train: ParallelSplit,
  options: TokenizerSettings,
): Promise<{ tokenizer: Tokenizer; cache: { file: string; key: string; reused: boolean } }> {
  const h = createHash('sha256').update(`trainlarge-parallel-tokenizer ${SHARED_TOKENIZER_VERSION}\0${JSON.stringify(options)}\0`);
  for (const side of [train.source, train.target]) {
    h.update(`${side.length}\0`);
    for (const t of side) h.update(t).update('\n');
  }
  const key = h.digest('hex').slice(0, 32);
  const dir = sharedTokenizerDir(key);
  const file = path.join(dir, SENTENCEPIECE_FILE);
  const infoFile = path.join(dir, 'info.json');
  if (fs.existsSync(file) && fs.existsSync(infoFile)) {
    try {
      const info = JSON.parse(await fs.promises.readFile(infoFile, 'utf8')) as { sha256?: string };
      const tokenizer = Tokenizer.load(file);
      if (tokenizer.sha256 === info.sha256) return { tokenizer, cache: { file, key, reused: true } };
    } catch {
      // unreadable: trained again below, and the entry replaced
    }
  }
  const tokenizer = await Tokenizer.train({ ...options, texts: [...train.source, ...train.target] });
  await fs.promises.mkdir(dir, { recursive: true });
  await tokenizer.save(file);
  await writeJsonAtomic(infoFile, {
    sha256: tokenizer.sha256,
    options,
    trainPairs: train.source.length,
    createdAt: new Date().toISOString(),
  });
  return { tokenizer, cache: { file, key, reused: false } };
}

export async function parallelTask(options: ParallelOptions): Promise<ParallelTask> {
  const o = parseConfig(ParallelOptionsSchema, options, 'Dataset.parallel');
  const corpus: ParallelCorpus = await loadParallelCorpus(o.source as string | ParallelFilesSpec, {
    ...(o.maxPairs !== undefined ? { maxPairs: o.maxPairs } : {}),
    ...(o.reverse !== undefined ? { reverse: o.reverse } : {}),
    ...(o.minChars !== undefined ? { minChars: o.minChars } : {}),
    ...(o.maxChars !== undefined ? { maxChars: o.maxChars } : {}),
  });
  if (corpus.train.source.length === 0) throw new Error(`Dataset.parallel: ${corpus.name}: the train split is empty`);
  let tokenizer: Tokenizer;
  let tokenizerCache: ParallelTask['tokenizerCache'];
  if (o.tokenizer === 'shared') {
    const options = parseConfig(
      TokenizerOptionsSchema,
      { ...(o.tokenizerOptions ?? {}), vocabSize: o.vocabSize ?? 8000 },
      'tokenizerOptions',
    );
    ({ tokenizer, cache: tokenizerCache } = await sharedTokenizer(corpus.train, options));
  } else {
    tokenizer = o.tokenizer;
  }
  const make = async (s: ParallelSplit) =>
    s.source.length ? ParallelDataset.fromTexts(s.source, s.target, tokenizer, { maxLen: o.maxLen }) : undefined;
  const train = (await make(corpus.train))!;
  const valid = await make(corpus.valid);
  const test = await make(corpus.test);
  return {
    name: corpus.name,
    sourceLanguage: corpus.source,
    targetLanguage: corpus.target,
    tokenizer,
    train,
    valid,
    test,
    pairs: { train: corpus.train, valid: corpus.valid, test: corpus.test },
    manifest: corpus.manifest,
    ...(tokenizerCache ? { tokenizerCache } : {}),
    dispose: () => [train, valid, test].forEach((d) => d?.dispose()),
  };
}
