// Where a corpus's documents come from: a built-in (CORPUS_SOURCES) or your files (CustomCorpus), as one
// DocSource that streams each split's documents from a reader position, fingerprints its inputs, and hands a
// share of its files to each job of a split prepare (partRange).
import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { builtinCorpus, CORPUS_SOURCES, CorpusSourceName } from './builtin/sources';
import { Document } from './documents';
import { expandInputs, InputFile, InputFormat } from './inputs';
import { Field, Position, StreamDoc, streamDocuments, TextSplit } from './stream';
import { CorpusManifest, PREPARE_VERSION, sha256, SplitName } from './corpus-manifest';

/** Files of your own (the paper's Wikipedia + BookCorpus role): paths, directories or glob patterns. */
export interface CorpusFiles {
  files: string[];
  /** Default: by extension (.jsonl/.ndjson, .tsv, .parquet, else text); .gz and .zst are decompressed. */
  format?: InputFormat;
  /** JSONL/TSV/Parquet: the text's field or column (default 'text'). */
  textField?: Field;
  /** text format: one document per file (default), per blank-line block, or per line. */
  split?: TextSplit;
  /** TSV: whether the first row names the columns (default: when textField is a name). */
  header?: boolean;
  /** Translation pairs: the source and target fields (TSV: columns 0 and 1; JSONL and Parquet: 'source' and 'target'). */
  sourceField?: Field;
  targetField?: Field;
}

export interface CustomCorpus {
  name: string;
  /** 'mlm' (default): documents for pretraining; 'translate': (source, target) pairs from TSV, JSONL or Parquet. */
  kind?: 'mlm' | 'translate';
  train: CorpusFiles;
  /** Validation documents; without it, a document is held out when (its file's index + its index in the file) % validEvery is validEvery - 1. */
  valid?: CorpusFiles;
  validEvery?: number;
}

export const CustomCorpusSchema = z
  .object({
    name: z.string().min(1),
    kind: z.enum(['mlm', 'translate']).default('mlm'),
    train: z.object({}).passthrough(),
    valid: z.object({}).passthrough().optional(),
    validEvery: z.number().int().min(2).default(20),
  })
  .strict();

export const CorpusFilesSchema = z
  .object({
    files: z.array(z.string().min(1)).min(1),
    format: z.enum(['text', 'jsonl', 'tsv', 'parquet']).optional(),
    textField: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
    split: z.enum(['file', 'blank-line', 'line']).optional(),
    header: z.boolean().optional(),
    sourceField: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
    targetField: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
  })
  .strict();

/** sha256 of a file's size, time and first and last 64 KiB: names an input without reading it all. */
export async function fingerprint(file: InputFile): Promise<string> {
  const h = createHash('sha256').update(`${file.bytes}\0${Math.round(file.mtimeMs)}\0`);
  const fd = await fs.promises.open(file.path, 'r');
  try {
    const n = Math.min(65536, file.bytes);
    const buf = Buffer.alloc(n);
    await fd.read(buf, 0, n, 0);
    h.update(buf);
    await fd.read(buf, 0, n, Math.max(0, file.bytes - n));
    h.update(buf);
  } finally {
    await fd.close();
  }
  return h.digest('hex');
}

/** Where documents come from: a built-in corpus (in memory: it is small) or the user's files (streamed). */
export interface DocSource {
  name: string;
  kind: 'mlm' | 'translate';
  /** sha256 over the inputs and how they are read and split. */
  key: string;
  sources: CorpusManifest['sources'];
  heldOut: string[];
  split: string;
  /** Inputs (files) that parts divide; 1 for a built-in corpus. */
  units: number;
  /** Bytes of unit i (for balancing parts and for the ETA). */
  unitBytes(i: number): number;
  read(from: Position, onRead: (unit: number, bytes: number) => void): AsyncGenerator<StreamDoc[]>;
  splitOf(d: StreamDoc): SplitName;
}

export async function builtinSource(name: CorpusSourceName): Promise<DocSource> {
  const b = await builtinCorpus(name);
  const docs: Document[] = [...b.train, ...b.valid];
  const bytes = docs.reduce((n, d) => n + d.text.length, 0);
  const key = sha256(JSON.stringify({ v: PREPARE_VERSION, name, sources: b.sources, docs: docs.length, train: b.train.length }));
  return {
    name,
    kind: 'mlm',
    key,
    sources: b.sources,
    heldOut: b.heldOut,
    split: `the built-in corpus's own: ${b.valid.length} documents held out whole`,
    units: 1,
    unitBytes: () => bytes,
    async *read(from, onRead) {
      const BATCH = 64;
      let read = 0;
      for (let i = from.offset; i < docs.length; i += BATCH) {
        const batch = docs.slice(i, i + BATCH).map((d, k): StreamDoc => ({
          id: d.id,
          text: d.text,
          more: false,
          file: 0,
          docInFile: i + k,
          end: { file: 0, offset: i + k + 1, line: 0, docInFile: i + k + 1 },
        }));
        read += batch.reduce((n, d) => n + d.text.length, 0);
        onRead(0, read);
        yield batch;
      }
    },
    splitOf: (d) => (d.docInFile < b.train.length ? 'train' : 'valid'),
  };
}

export async function fileSource(source: CustomCorpus): Promise<DocSource> {
  const o = parseConfig(CustomCorpusSchema, source, 'source');
  const train = parseConfig(CorpusFilesSchema, o.train, 'source.train');
  const valid = o.valid ? parseConfig(CorpusFilesSchema, o.valid, 'source.valid') : undefined;
  const trainFiles = expandInputs(train.files, { format: train.format }, 'source.train.files');
  const validFiles = valid ? expandInputs(valid.files, { format: valid.format }, 'source.valid.files') : [];
  const inputs = [...trainFiles, ...validFiles];
  const pairs = o.kind === 'translate';
  const readSpec = (f: z.output<typeof CorpusFilesSchema>) =>
    pairs ? { ...f, pairs, textField: f.sourceField, pairField: f.targetField } : f;
  const specs = [readSpec(train), valid ? readSpec(valid) : undefined];
  const specOf = (i: number) => (i < trainFiles.length ? specs[0]! : specs[1]!);
  const prints = await Promise.all(inputs.map(fingerprint));
  const sources = inputs.map((f, i) => ({ file: path.resolve(f.path), bytes: f.bytes, fingerprint: prints[i] }));
  const every = o.validEvery;
  const key = sha256(
    JSON.stringify({
      v: PREPARE_VERSION,
      kind: o.kind,
      sources: sources.map((s) => [s.file, s.fingerprint]),
      train: { ...train, files: undefined },
      valid: valid ? { ...valid, files: undefined } : null,
      trainFiles: trainFiles.length,
      every: valid ? null : every,
    }),
  );
  return {
    name: o.name,
    kind: o.kind,
    key,
    sources,
    heldOut: [],
    split: valid ? `the valid files (${validFiles.length})` : `every ${every}th document by (file index + document index in its file)`,
    units: inputs.length,
    unitBytes: (i) => inputs[i].bytes,
    read: (from, onRead) => streamDocuments(inputs, specOf, from, onRead, 'source.files'),
    splitOf: (d) =>
      d.file >= trainFiles.length ? 'valid' : valid ? 'train' : (d.file + d.docInFile) % every === every - 1 ? 'valid' : 'train',
  };
}

export async function resolveSource(source: CorpusSourceName | CustomCorpus): Promise<DocSource> {
  if (typeof source === 'string') {
    if (!Object.prototype.hasOwnProperty.call(CORPUS_SOURCES, source)) {
      throw new Error(
        `source: '${source}' is not a built-in corpus; expected one of: ${Object.keys(CORPUS_SOURCES).join(', ')}, ` +
          'or { name, train: { files } } for your own files',
      );
    }
    return builtinSource(source);
  }
  if (!source || typeof source !== 'object' || typeof source.name !== 'string' || !source.name || !source.train) {
    throw new TypeError('source: expected a built-in corpus name or { name, train: { files }, valid?: { files } }');
  }
  return fileSource(source);
}

/** Units [first, end) of part `index` of `count`: contiguous, about equal in bytes. */
export function partRange(src: DocSource, index: number, count: number): [number, number] {
  if (count > src.units)
    throw new Error(
      `part: ${count} parts of ${src.units} input file${src.units === 1 ? '' : 's'}; parts divide the files, so give at most ${src.units}`,
    );
  let total = 0;
  for (let i = 0; i < src.units; i++) total += src.unitBytes(i);
  const bounds = [0];
  let acc = 0;
  for (let i = 0; i < src.units && bounds.length < count; i++) {
    acc += src.unitBytes(i);
    // close part k after the file that reaches k/count of the bytes, leaving a file for each later part
    if (acc >= (total * bounds.length) / count && src.units - (i + 1) >= count - bounds.length) bounds.push(i + 1);
  }
  while (bounds.length < count) bounds.push(src.units - (count - bounds.length));
  bounds.push(src.units);
  return [bounds[index], bounds[index + 1]];
}
