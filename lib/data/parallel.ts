// Parallel corpora for translation: (source, target) sentence pairs in train/valid/test, from a built-in
// (lib/data/builtin/parallel.ts: Debian packages prepared once into the cache) or from your TSV or JSONL files
// (parallel-files.ts), with the same options either way.
import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { PARALLEL_SOURCES, prepareParallelCorpus, readCachedSplit } from './builtin/parallel';
import type { Split } from './documents';
import { loadPairFiles, ParallelFilesSpec, ParallelFilesSpecSchema } from './parallel-files';
import { ParallelManifest, ParallelSplit, SPLITS } from './pairs';

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
