import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { LabelledDataset } from './dataset';
import { readExamples, DocumentFormat } from './files';
import { classificationExamples, CLASSIFICATION_SOURCES, ClassificationSourceName, hashSplit } from './builtin/sources';
import { Example, Split } from './documents';
import { Tokenizer } from './tokenizer';
import { TokenizerLike } from './tokens';
import { parallelTask, ParallelOptions, ParallelTask } from './translation';

/** Labelled files of your own (the paper's SST-2 / MNLI role): JSONL or TSV with a text and a label field. */
export interface ExampleFiles {
  files: string[];
  format: Extract<DocumentFormat, 'jsonl' | 'tsv'>;
  textField: string | number;
  /** Sentence pairs (MNLI): the second segment; the model sees <s> text </s></s> pair </s>, as RoBERTa. */
  pairField?: string | number;
  labelField: string | number;
}

export interface CustomTask {
  name: string;
  /** Label names in index order; by default in the order first seen in train. */
  labels?: string[];
  train: ExampleFiles;
  /** Without valid/test files, examples are split 80/10/10 by a stable hash of their document. */
  valid?: ExampleFiles;
  test?: ExampleFiles;
}

export interface ClassificationOptions {
  source: ClassificationSourceName | CustomTask;
  tokenizer: TokenizerLike;
  /** Tokens per sequence including cls (longer texts are truncated). */
  maxLen?: number;
}

const OptionsSchema = z.object({ maxLen: z.number().int().min(2).default(128) });

export interface ClassificationTask {
  name: string;
  labels: string[];
  train: LabelledDataset;
  valid: LabelledDataset;
  test: LabelledDataset;
  /** Examples per split and label, and the documents of each split (disjoint: tested). */
  counts: Record<Split, number[]>;
  documents: Record<Split, Set<string>>;
  dispose(): void;
}

async function encode(tokenizer: TokenizerLike, texts: string[]): Promise<ArrayLike<number>[]> {
  if (tokenizer instanceof Tokenizer) return tokenizer.encodeBatch(texts);
  return texts.map((t) => tokenizer.encode(t));
}

/**
 * `<s> a </s>` or, for pairs, `<s> a </s></s> b </s>` (RoBERTa's layout), within maxLen: a single text is cut
 * at the end; a pair loses tokens from the longer segment first (HF's 'longest_first'), so both stay.
 */
export function classificationLayout(
  tok: TokenizerLike,
  a: ArrayLike<number>,
  b: ArrayLike<number> | undefined,
  maxLen: number,
): Int32Array {
  const { cls, eos } = tok.special;
  if (b === undefined) {
    const n = Math.min(a.length, Math.max(0, maxLen - 2));
    const s = new Int32Array(n + 2);
    s[0] = cls;
    for (let i = 0; i < n; i++) s[i + 1] = a[i];
    s[n + 1] = eos;
    return s;
  }
  let na = a.length,
    nb = b.length;
  const room = Math.max(0, maxLen - 4);
  while (na + nb > room) {
    if (na >= nb) na--;
    else nb--;
  }
  const s = new Int32Array(na + nb + 4);
  s[0] = cls;
  for (let i = 0; i < na; i++) s[1 + i] = a[i];
  s[na + 1] = eos;
  s[na + 2] = eos;
  for (let i = 0; i < nb; i++) s[na + 3 + i] = b[i];
  s[na + nb + 3] = eos;
  return s;
}

/** Namespace for labelled and parallel datasets (MLM data comes from Corpus). */
export class Dataset {
  /**
   * A translation task: a parallel corpus (a built-in name such as 'bible-en-es', or your TSV/JSONL files as
   * `{ name, train: { files, format, sourceField, targetField }, valid?, test? }`) with train/valid/test
   * as loadParallelCorpus splits it, tokenized by one tokenizer for both languages ('shared': SentencePiece
   * trained on both sides of train). Each split is a ParallelDataset a Trainer batches by token count.
   */
  static async parallel(opts: ParallelOptions): Promise<ParallelTask> {
    return parallelTask(opts);
  }

  /**
   * A sequence-classification task, tokenized: `<s> text </s>` per example, truncated to maxLen, split
   * train/valid/test by document so no document contributes to two splits.
   */
  static async classification(opts: ClassificationOptions): Promise<ClassificationTask> {
    const { maxLen } = parseConfig(OptionsSchema, { maxLen: opts.maxLen }, 'Dataset.classification');
    const tok = opts.tokenizer;
    if (!tok || typeof tok.encode !== 'function')
      throw new TypeError('tokenizer: expected a Tokenizer (Tokenizer.train, load, fromHF or fromDir)');
    let name: string;
    let labels: string[];
    let splits: Record<Split, Example[]>;
    if (typeof opts.source === 'string') {
      name = opts.source;
      ({ labels, splits } = await classificationExamples(opts.source));
    } else {
      const src = opts.source;
      if (!src || typeof src.name !== 'string' || !src.train) {
        throw new TypeError(
          `source: expected one of ${Object.keys(CLASSIFICATION_SOURCES).join(', ')} or { name, train: { files, format, textField, labelField } }`,
        );
      }
      name = src.name;
      const train = await readExamples({ ...src.train, labels: src.labels });
      labels = train.labels;
      if (src.valid || src.test) {
        const read = async (f?: ExampleFiles) => (f ? (await readExamples({ ...f, labels })).examples : []);
        splits = { train: train.examples, valid: await read(src.valid), test: await read(src.test) };
      } else {
        splits = { train: [], valid: [], test: [] };
        for (const e of train.examples) splits[hashSplit(e.doc)].push(e);
      }
    }
    const made: Partial<Record<Split, LabelledDataset>> = {};
    const counts = {} as Record<Split, number[]>;
    const documents = {} as Record<Split, Set<string>>;
    for (const split of ['train', 'valid', 'test'] as const) {
      const examples = splits[split];
      if (examples.length === 0) throw new Error(`${name}: the ${split} split is empty`);
      const firsts = await encode(
        tok,
        examples.map((e) => e.text),
      );
      const hasPairs = examples.some((e) => e.pair !== undefined);
      const seconds = hasPairs
        ? await encode(
            tok,
            examples.map((e) => e.pair ?? ''),
          )
        : [];
      const sequences = examples.map((e, i) => classificationLayout(tok, firsts[i], hasPairs ? seconds[i] : undefined, maxLen));
      made[split] = LabelledDataset.fromSequences(
        sequences,
        examples.map((e) => e.label),
        { maxLen, padId: tok.special.pad, tokenizer: tok },
      );
      counts[split] = labels.map((_, l) => examples.filter((e) => e.label === l).length);
      documents[split] = new Set(examples.map((e) => e.doc));
    }
    const { train, valid, test } = made as Record<Split, LabelledDataset>;
    return {
      name,
      labels,
      train,
      valid,
      test,
      counts,
      documents,
      dispose: () => [train, valid, test].forEach((d) => d.dispose()),
    };
  }
}
