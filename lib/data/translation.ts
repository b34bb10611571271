// Dataset.parallel: a parallel corpus (built-in or your files) tokenized for translation with one
// vocabulary for both languages, as fairseq's --joined-dictionary and shared SentencePiece models do.
import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { TokenizerOptions } from '../config/tokenizer';
import { ParallelDataset } from './dataset';
import { loadParallelCorpus, ParallelCorpus, ParallelFilesSpec, ParallelManifest, ParallelSplit } from './parallel';
import { Tokenizer } from './tokenizer';

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
  dispose(): void;
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
  const tokenizer =
    o.tokenizer === 'shared'
      ? await Tokenizer.train({
          ...(o.tokenizerOptions ?? {}),
          vocabSize: o.vocabSize ?? 8000,
          texts: [...corpus.train.source, ...corpus.train.target],
        })
      : o.tokenizer;
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
    dispose: () => [train, valid, test].forEach((d) => d?.dispose()),
  };
}
