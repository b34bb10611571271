// Pretraining corpora as token shards, prepared from inputs of any size with flat memory:
//
//   inputs (built-in, or files/dirs/globs: text, JSONL, TSV, Parquet; .gz, .zst)      lib/data/stream.ts
//     -> [tokenizer: trained once on a deterministic reservoir sample of the training lines]
//     -> batches of documents encoded on every core (native SentencePiece threads) while the next is read
//     -> one shard writer per split (train/valid): a shard is written when it holds shardChars characters
//     -> documents.tsv appended per shard; progress.json after each shard; manifest.json written last
//
// Resumable: each shard records the reader position before its first document and after its last; a rerun
// reads on from the earliest split's last finished shard (plain files and Parquet seek there; compressed
// files are decompressed and skipped up to it) and writes byte-identical shards. Splitting across jobs:
// `part: { index, count }` prepares a contiguous share of the input files into part-I-of-N/; the job that
// finishes the last part assembles the corpus.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { fileDigest, readJson, writeJsonAtomic } from '../io';
import { native } from '../native';
import { DEFAULT_MAX_LEN } from '../config/model';
import { MlmDataset, MlmOptions, ParallelDataset } from './dataset';
import { builtinCorpus, CORPUS_SOURCES, CorpusSourceName } from './builtin/sources';
import { Document } from './documents';
import { expandInputs, Field, InputFile, InputFormat, Position, START, streamDocuments, StreamDoc, TextSplit } from './stream';
import { Unigram } from './tokens';
import { Tokenizer, TokenizerOptions, TokenizerOptionsSchema } from './tokenizer';
import { withLock } from '../lock';
import { seededRandom } from '../random';

export { CORPUS_SOURCES, CorpusSourceName };

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

export interface PrepareEvent {
  phase: 'read' | 'tokenizer' | 'shard' | 'done';
  message: string;
  /** shard phase: shards written (or skipped) so far; total when known. */
  done?: number;
  total?: number;
  skipped?: boolean;
  /** Progress of the pass: input bytes read (compressed bytes for .gz/.zst) of totalBytes, documents and tokens so far. */
  bytes?: number;
  totalBytes?: number;
  documents?: number;
  tokens?: number;
  tokensPerSecond?: number;
  etaSeconds?: number;
}

export interface CorpusPrepareOptions {
  source: CorpusSourceName | CustomCorpus;
  /** Output directory: shards, the tokenizer's files (tokenizer.model, or HF's tokenizer.json + config), documents.tsv, manifest.json. */
  dir: string;
  /**
   * Tokenize with this tokenizer (SentencePiece, or an HF byte-level BPE from Tokenizer.fromHF); by default a
   * SentencePiece one is trained on a sample of the training split (tokenizerOptions; maxSentences lines).
   */
  tokenizer?: Tokenizer;
  tokenizerOptions?: TokenizerOptions;
  /** Characters of text per shard (approximate: whole documents). */
  shardChars?: number;
  /** Native threads for encoding (default: every core). */
  threads?: number;
  /** Characters of training lines the tokenizer is trained on, sampled uniformly (default 50M). */
  sampleChars?: number;
  /** Prepare share `index` (0-based) of `count` of the input files, as one of several jobs writing into `dir`. */
  part?: { index: number; count: number };
  onProgress?: (e: PrepareEvent) => void;
}

const PrepareSchema = z
  .object({
    shardChars: z.number().int().min(1000).default(32_000_000),
    threads: z.number().int().positive().default(Math.max(1, os.availableParallelism())),
    /**
     * The tokenizer's training sample: at most this many characters of training lines (and at most
     * tokenizerOptions.maxSentences lines), drawn uniformly; SentencePiece needs ~4 bytes of memory per character.
     */
    sampleChars: z.number().int().min(1000).default(50_000_000),
    part: z
      .object({ index: z.number().int().min(0), count: z.number().int().positive() })
      .strict()
      .refine((p) => p.index < p.count, { message: 'index must be below count', path: ['index'] })
      .optional(),
  })
  .strict();

const CustomCorpusSchema = z
  .object({
    name: z.string().min(1),
    kind: z.enum(['mlm', 'translate']).default('mlm'),
    train: z.object({}).passthrough(),
    valid: z.object({}).passthrough().optional(),
    validEvery: z.number().int().min(2).default(20),
  })
  .strict();

const CorpusFilesSchema = z
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

const OpenSchema = z.object({ verify: z.union([z.boolean(), z.literal('auto')]).default('auto') }).strict();

export interface ShardEntry {
  /** Path relative to the corpus directory. */
  file: string;
  /** sha256 of the file. */
  sha256: string;
  bytes: number;
  tokens: number;
  tokenBytes: number;
  documents: number;
  /** Characters of text it holds. */
  chars: number;
  /** Reader positions before its first and after its last document: a damaged shard is rebuilt from `start`. */
  start: Position;
  end: Position;
  /** Which share of the inputs wrote it (absent for a corpus prepared by one job). */
  part?: number;
  /** Translation corpora: the target sentences' shard beside this one (`file` holds the sources). */
  target?: { file: string; sha256: string; bytes: number; tokens: number };
}

export interface SplitManifest {
  documents: number;
  tokens: number;
  shards: ShardEntry[];
}

export interface CorpusManifest {
  format: 'trainlarge-corpus';
  version: 2;
  name: string;
  /** 'mlm': documents joined by eos; 'translate': source and target shards, each sentence followed by eos. */
  kind: 'mlm' | 'translate';
  complete: boolean;
  createdAt: string;
  /** sha256 over the inputs (names, sizes, times, first and last bytes), the reading and shard options and the parts. */
  inputs: string;
  sources: {
    package?: string;
    version?: string;
    integrity?: string;
    license?: string;
    file?: string;
    bytes?: number;
    fingerprint?: string;
  }[];
  tokenizer: {
    file: string;
    sha256: string;
    vocabSize: number;
    options?: Record<string, unknown>;
    trainedOn?: string;
    /** The reservoir sample it was trained on: lines kept of lines seen, and their characters. */
    sample?: { lines: number; seen: number; chars: number };
  };
  /** Documents are followed by the eos token in the token stream (RoBERTa's FULL-SENTENCES input). */
  separator: 'eos';
  /** How documents go to valid: "every 20th (file index + document index in the file)" or "the valid files". */
  split: string;
  /** Jobs that prepared it (--part I/N). */
  parts: number;
  splits: { train: SplitManifest; valid: SplitManifest };
  /** Document ids kept out of both splits (e.g. a downstream task's test documents). */
  heldOut: string[];
  /** sha256 over the shard checksums and the tokenizer: one value that names this exact corpus. */
  checksum: string;
}

/** What a job has finished of its share (progress.json in its directory), saved after each shard. */
interface PartProgress {
  format: 'trainlarge-corpus-progress';
  inputs: string;
  tokenizer: string;
  part: number;
  parts: number;
  complete: boolean;
  splits: { train: ShardEntry[]; valid: ShardEntry[] };
  documentsTsvBytes: number;
}

const MANIFEST = 'manifest.json';
const PROGRESS = 'progress.json';
const DOCUMENTS = 'documents.tsv';
const TOKENIZER_FILE = 'tokenizer.model';
const TOKENIZER_INFO = 'tokenizer.info.json';
/** Held while a process prepares (or checks) a corpus directory; parts hold their own. */
const PREPARE_LOCK = '.prepare.lock';
/** Bumped when the shard layout or the split rule changes: older progress is then not resumed. */
const PREPARE_VERSION = 2;
/** Characters of text encoded per native call (two are in flight: one encoding, one being read). */
const BATCH_CHARS = 4_000_000;
/** Shards total at most this many bytes for Corpus.open to hash them all by default. */
const OPEN_VERIFY_BYTES = 512 << 20;

type SplitName = 'train' | 'valid';
const SPLITS: readonly SplitName[] = ['train', 'valid'];

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function comparePositions(a: Position, b: Position): number {
  return a.file - b.file || a.offset - b.offset;
}

/** sha256 of a file's size, time and first and last 64 KiB: names an input without reading it all. */
async function fingerprint(file: InputFile): Promise<string> {
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
interface DocSource {
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

async function builtinSource(name: CorpusSourceName): Promise<DocSource> {
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

async function fileSource(source: CustomCorpus): Promise<DocSource> {
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

async function resolveSource(source: CorpusSourceName | CustomCorpus): Promise<DocSource> {
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
function partRange(src: DocSource, index: number, count: number): [number, number] {
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

/** Progress of one pass over the inputs: bytes, documents, tokens, rate and ETA, reported about once a second. */
class PassProgress {
  private readonly read: number[];
  private readonly started = Date.now();
  private last = 0;
  documents = 0;
  tokens = 0;
  constructor(
    private readonly src: DocSource,
    private readonly range: [number, number],
    private readonly report: (e: PrepareEvent) => void,
    private readonly phase: 'read' | 'tokenizer',
    private readonly label: string,
  ) {
    this.read = new Array<number>(src.units).fill(0);
  }
  get totalBytes(): number {
    let n = 0;
    for (let i = this.range[0]; i < this.range[1]; i++) n += this.src.unitBytes(i);
    return n;
  }
  get bytes(): number {
    let n = 0;
    for (let i = this.range[0]; i < this.range[1]; i++) n += Math.min(this.read[i], this.src.unitBytes(i));
    return n;
  }
  onRead = (unit: number, bytes: number): void => {
    this.read[unit] = bytes;
    this.tick();
  };
  /** From a resume position on, the files before it count as read. */
  skipTo(p: Position): void {
    for (let i = this.range[0]; i < Math.min(p.file, this.range[1]); i++) this.read[i] = this.src.unitBytes(i);
  }
  tick(force = false): void {
    const now = Date.now();
    if (!force && now - this.last < 1000) return;
    this.last = now;
    this.report(this.event());
  }
  event(message?: string): PrepareEvent {
    const seconds = (Date.now() - this.started) / 1000;
    const bytes = this.bytes;
    const total = this.totalBytes;
    const rate = bytes / Math.max(seconds, 1e-3);
    return {
      phase: this.phase,
      message: message ?? `${this.label}: ${(bytes / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`,
      bytes,
      totalBytes: total,
      documents: this.documents,
      tokens: this.tokens,
      tokensPerSecond: seconds > 0 ? Math.round(this.tokens / seconds) : 0,
      etaSeconds: rate > 0 ? Math.max(0, Math.round((total - bytes) / rate)) : undefined,
    };
  }
}

/** The lines of a bottom-k sample: a max-heap on the random key, so the line with the largest key goes first. */
class LineHeap {
  private keys: number[] = [];
  private order: number[] = [];
  private texts: string[] = [];
  private lengths: number[] = [];
  chars = 0;
  get size(): number {
    return this.keys.length;
  }
  maxKey(): number {
    return this.keys[0];
  }
  push(key: number, order: number, text: string): void {
    this.keys.push(key);
    this.order.push(order);
    // A flat copy: a kept line must not hold on to the (possibly long) text it was cut from.
    this.texts.push(Buffer.from(text).toString());
    this.lengths.push(text.length);
    this.chars += text.length;
    let i = this.keys.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.keys[p] >= this.keys[i]) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): void {
    const last = this.keys.length - 1;
    this.chars -= this.lengths[0];
    this.swap(0, last);
    this.keys.pop();
    this.order.pop();
    this.texts.pop();
    this.lengths.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.keys.length && this.keys[l] > this.keys[m]) m = l;
      if (r < this.keys.length && this.keys[r] > this.keys[m]) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
  /** The kept lines in the order they were seen. */
  lines(): string[] {
    const idx = this.order.map((_, i) => i).sort((a, b) => this.order[a] - this.order[b]);
    return idx.map((i) => this.texts[i]);
  }
  private swap(a: number, b: number): void {
    [this.keys[a], this.keys[b]] = [this.keys[b], this.keys[a]];
    [this.order[a], this.order[b]] = [this.order[b], this.order[a]];
    [this.texts[a], this.texts[b]] = [this.texts[b], this.texts[a]];
    [this.lengths[a], this.lengths[b]] = [this.lengths[b], this.lengths[a]];
  }
}

/**
 * The tokenizer of a prepare, saved in `dir` once for every job: the one given; or the one an earlier prepare
 * (or another part) trained on the same inputs with the same options; or one trained now on a reservoir
 * sample of `maxSentences` lines of the training split, drawn in one pass with a seeded generator.
 */
async function prepareTokenizer(
  dir: string,
  src: DocSource,
  opts: Pick<CorpusPrepareOptions, 'tokenizer' | 'tokenizerOptions'>,
  sampleChars: number,
  report: (e: PrepareEvent) => void,
): Promise<{ tokenizer: Tokenizer; info: CorpusManifest['tokenizer'] }> {
  const tokFile = path.join(dir, TOKENIZER_FILE);
  if (opts.tokenizer) {
    const given = opts.tokenizer;
    if (!(given instanceof Tokenizer)) throw new TypeError('tokenizer: expected a Tokenizer (Tokenizer.train, load, fromHF or fromDir)');
    const saved = fs.existsSync(path.join(dir, given.files[0])) ? await Tokenizer.fromDir(dir).catch(() => undefined) : undefined;
    if (saved?.sha256 !== given.sha256) {
      await given.saveTo(dir);
      // A SentencePiece model left by an earlier prepare would be found first by Tokenizer.fromDir(dir).
      if (given.kind !== 'sentencepiece') await fs.promises.rm(tokFile, { force: true });
    }
    return { tokenizer: given, info: { file: given.files[0], sha256: given.sha256, vocabSize: given.vocabSize } };
  }
  const options = parseConfig(TokenizerOptionsSchema, opts.tokenizerOptions ?? {}, 'tokenizerOptions');
  const trainedOn = sha256(`${src.key}\0${JSON.stringify(options)}\0${sampleChars}`);
  const infoFile = path.join(dir, TOKENIZER_INFO);
  const reuse = async (): Promise<{ tokenizer: Tokenizer; info: CorpusManifest['tokenizer'] } | undefined> => {
    if (!fs.existsSync(infoFile) || !fs.existsSync(tokFile)) return undefined;
    const info = await readJson<CorpusManifest['tokenizer']>(infoFile, 'tokenizer info').catch(() => undefined);
    if (info?.trainedOn !== trainedOn) return undefined;
    const tokenizer = Tokenizer.load(tokFile);
    return tokenizer.sha256 === info.sha256 ? { tokenizer, info } : undefined; // changed on disk: retrain
  };
  // Parts share one tokenizer: the first job trains it, the others wait for it here.
  return withLock(
    path.join(dir, '.tokenizer.lock'),
    async () => {
      const found = await reuse();
      if (found) {
        report({ phase: 'tokenizer', message: `reusing ${TOKENIZER_FILE} (same inputs and options)`, skipped: true });
        return found;
      }
      const progress = new PassProgress(src, [0, src.units], report, 'tokenizer', 'sampling lines for the tokenizer');
      // A uniform sample of the training lines, of at most maxSentences lines and sampleChars characters: each
      // line gets a seeded random key and the lines with the smallest keys are kept (a max-heap drops the rest).
      const heap = new LineHeap();
      const random = seededRandom(options.seed || 0x9e3779b9);
      let seen = 0;
      for await (const batch of src.read(START, progress.onRead)) {
        for (const d of batch) {
          if (src.splitOf(d) !== 'train') continue;
          if (!d.more) progress.documents++;
          for (const line of d.pair === undefined ? d.text.split('\n') : [d.text, d.pair]) {
            if (!line.trim()) continue;
            const key = random() + random() / 2 ** 32;
            seen++;
            if (heap.size >= options.maxSentences || heap.chars + line.length > sampleChars) {
              if (heap.size === 0 || key >= heap.maxKey()) continue;
              heap.push(key, seen, line);
              while (heap.size > options.maxSentences || heap.chars > sampleChars) heap.pop();
            } else heap.push(key, seen, line);
          }
        }
      }
      // In input order: a corpus smaller than the sample trains exactly as on all its lines.
      const sample = heap.lines();
      if (sample.length === 0) throw new Error('source: no training text to train a tokenizer on');
      const chars = heap.chars;
      report({
        phase: 'tokenizer',
        message: `training a ${options.model} tokenizer, ${options.vocabSize} pieces, on ${sample.length} of ${seen} lines`,
      });
      const sampled = sample.length;
      const tokenizer = await Tokenizer.train({ ...options, texts: sample });
      sample.length = 0;
      await tokenizer.save(tokFile);
      const info: CorpusManifest['tokenizer'] = {
        file: TOKENIZER_FILE,
        sha256: tokenizer.sha256,
        vocabSize: tokenizer.vocabSize,
        options,
        trainedOn,
        sample: { lines: sampled, seen, chars },
      };
      await writeJsonAtomic(infoFile, info);
      return { tokenizer, info };
    },
    { what: 'Corpus.prepare (tokenizer)' },
  );
}

/**
 * A token shard being written (the engine's .tok format: native/data/token_stream.h): tokens are appended as
 * batches are encoded, to a temporary file; finish() writes the header, fsyncs and renames it into place, so a
 * shard is either whole or absent. Memory holds one batch, not the shard.
 */
class ShardFile {
  tokens = 0;
  chars = 0;
  documents = 0;
  private parts: Int32Array[] = [];
  private partTokens = 0;
  private open = 0; // tokens of the document being continued
  private written = 0; // payload bytes on disk
  private constructor(
    readonly target: string,
    readonly start: Position,
    private readonly fd: fs.promises.FileHandle,
    private readonly tmp: string,
    private readonly vocabSize: number,
    readonly width: 2 | 4,
  ) {}

  static async create(target: string, start: Position, vocabSize: number): Promise<ShardFile> {
    const tmp = `${target}.tmp-${process.pid}`;
    await fs.promises.mkdir(path.dirname(target), { recursive: true });
    const fd = await fs.promises.open(tmp, 'w');
    return new ShardFile(target, start, fd, tmp, vocabSize, vocabSize <= 65536 ? 2 : 4);
  }

  add(ids: Int32Array, chars: number): void {
    this.parts.push(ids);
    this.partTokens += ids.length;
    this.open += ids.length;
    this.chars += chars;
  }

  /** Ends the document (eos after it); returns its tokens, eos not counted. */
  endDocument(eos: number): number {
    this.parts.push(Int32Array.of(eos));
    this.partTokens += 1;
    this.documents++;
    const n = this.open;
    this.open = 0;
    return n;
  }

  /** Writes the tokens added since the last flush. */
  async flush(): Promise<void> {
    if (this.partTokens === 0) return;
    const out = this.width === 2 ? new Uint16Array(this.partTokens) : new Uint32Array(this.partTokens);
    let at = 0;
    for (const p of this.parts) {
      for (let i = 0; i < p.length; i++) {
        const id = p[i];
        if (id < 0 || id >= this.vocabSize) throw new Error(`token id ${id} outside the vocabulary [0, ${this.vocabSize})`);
        out[at++] = id;
      }
    }
    await this.fd.write(new Uint8Array(out.buffer), 0, out.byteLength, SHARD_HEADER + this.written);
    this.written += out.byteLength;
    this.tokens += this.partTokens;
    this.parts = [];
    this.partTokens = 0;
  }

  async finish(): Promise<{ tokens: number; tokenBytes: number }> {
    await this.flush();
    const h = Buffer.alloc(SHARD_HEADER);
    h.write('TLTOKENS', 0, 'latin1');
    h.writeUInt32LE(1, 8);
    h.writeUInt32LE(this.width, 12);
    h.writeBigUInt64LE(BigInt(this.tokens), 16);
    h.writeUInt32LE(this.vocabSize, 24);
    await this.fd.write(h, 0, SHARD_HEADER, 0);
    await this.fd.sync();
    await this.fd.close();
    await fs.promises.rename(this.tmp, this.target);
    const d = await fs.promises.open(path.dirname(this.target), 'r');
    await d.sync();
    await d.close();
    return { tokens: this.tokens, tokenBytes: this.width };
  }

  async abandon(): Promise<void> {
    await this.fd.close().catch(() => {});
    await fs.promises.rm(this.tmp, { force: true });
  }
}

const SHARD_HEADER = 32;

/** The shards one split is writing: one (documents), or two (the sources and targets of pairs). */
class ShardSet {
  /** documents.tsv lines: id, then each file's tokens of the document. */
  readonly docs: string[] = [];
  constructor(readonly files: ShardFile[]) {}
  get chars(): number {
    return this.files.reduce((n, f) => n + f.chars, 0);
  }
  get start(): Position {
    return this.files[0].start;
  }
  endDocument(id: string, eos: number): void {
    const counts = this.files.map((f) => f.endDocument(eos));
    this.docs.push(`${id}\t${counts.join('\t')}`);
  }
  async flush(): Promise<void> {
    for (const f of this.files) await f.flush();
  }
  async abandon(): Promise<void> {
    for (const f of this.files) await f.abandon();
  }
}

interface WorkArea {
  /** Where this job's shards, progress.json and documents.tsv go: the corpus directory, or part-I-of-N/ in it. */
  dir: string;
  /** Shard paths are relative to the corpus directory. */
  prefix: string;
  part?: number;
  parts: number;
}

/** A shard's file names: train-00000.tok, or train-00000.src.tok and train-00000.tgt.tok for pairs. */
function shardNames(kind: DocSource['kind'], split: SplitName, n: number): string[] {
  const stem = `${split}-${String(n).padStart(5, '0')}`;
  return kind === 'translate' ? [`${stem}.src.tok`, `${stem}.tgt.tok`] : [`${stem}.tok`];
}

const SHARD_FILE = /^(train|valid)-\d{5}(\.src|\.tgt)?\.tok$/;

/** A split's next shard set, its files under `root`. */
async function openShardSet(root: string, files: string[], start: Position, tok: Tokenizer): Promise<ShardSet> {
  return new ShardSet(await Promise.all(files.map((f) => ShardFile.create(path.join(root, f), start, tok.vocabSize))));
}

/**
 * Encodes documents from `from` into the shards of each split: `openShard` names a split's next shard file,
 * `onShard` is called when one is full (shardChars) or the range ends. A document of a split that starts
 * before that split's `after` position is skipped (its shard is already written). `stopAfter` (a split and a
 * document count): only that split, and stop once its shard holds that many documents (rebuilding one shard).
 */
async function encodePass(o: {
  src: DocSource;
  range: [number, number];
  from: Position;
  after: Record<SplitName, Position>;
  tok: Tokenizer;
  threads: number;
  shardChars: number;
  progress: PassProgress;
  openShard: (split: SplitName, start: Position) => Promise<ShardSet>;
  onShard: (split: SplitName, shard: ShardSet, end: Position) => Promise<void>;
  stopAfter?: { split: SplitName; documents: number };
}): Promise<void> {
  const { src, tok, progress } = o;
  const eos = tok.special.eos;
  const shards: Partial<Record<SplitName, ShardSet>> = {};
  const next: Record<SplitName, Position> = { ...o.after }; // where each split's next shard starts
  let batch: { doc: StreamDoc; split: SplitName }[] = [];
  let batchChars = 0;
  let inFlight: Promise<void> | undefined;
  let cursor = o.from; // the start of the next document
  let docStart = o.from;
  let done = false;
  const want = (split: SplitName) => !o.stopAfter || o.stopAfter.split === split;

  const deliver = async (items: { doc: StreamDoc; split: SplitName }[], encoded: { ids: Int32Array; offsets: Float64Array }) => {
    let j = 0; // the next text's index in `encoded`
    for (let k = 0; k < items.length && !done; k++) {
      const { doc, split } = items[k];
      const shard = (shards[split] ??= await o.openShard(split, next[split]));
      for (const [f, text] of (doc.pair === undefined ? [doc.text] : [doc.text, doc.pair]).entries()) {
        shard.files[f].add(encoded.ids.subarray(encoded.offsets[j], encoded.offsets[j + 1]), text.length);
        progress.tokens += encoded.offsets[j + 1] - encoded.offsets[j] + (doc.more ? 0 : 1);
        j++;
      }
      if (doc.more) continue;
      shard.endDocument(doc.id, eos);
      const full = o.stopAfter ? shard.docs.length === o.stopAfter.documents : shard.chars >= o.shardChars;
      if (full) {
        await o.onShard(split, shard, doc.end);
        delete shards[split];
        next[split] = doc.end;
        if (o.stopAfter) done = true;
      }
    }
    for (const s of SPLITS) await shards[s]?.flush();
  };
  const launch = async (): Promise<void> => {
    const items = batch;
    batch = [];
    batchChars = 0;
    const previous = inFlight;
    const encoding = tok.encodeFlat(
      items.flatMap((x) => (x.doc.pair === undefined ? [x.doc.text] : [x.doc.text, x.doc.pair])),
      o.threads,
    );
    // Results are delivered in order: this batch after the one before it.
    inFlight = (async () => {
      const encoded = await encoding;
      await previous;
      await deliver(items, encoded);
    })();
    // Hold at most two batches: wait for the older one before reading on.
    if (previous) await previous;
  };

  progress.skipTo(o.from);
  try {
    for await (const docs of src.read(o.from, progress.onRead)) {
      let outside = false;
      for (const doc of docs) {
        if (doc.file >= o.range[1]) {
          outside = true;
          break;
        }
        const split = src.splitOf(doc);
        const skip = !want(split) || comparePositions(docStart, o.after[split]) < 0;
        if (!doc.more) {
          progress.documents++;
          cursor = doc.end;
        }
        if (!skip) {
          batch.push({ doc, split });
          batchChars += doc.text.length + (doc.pair?.length ?? 0);
        }
        if (!doc.more) docStart = cursor;
      }
      if (batchChars >= BATCH_CHARS) await launch();
      if (done || outside) break;
    }
    if (batch.length > 0 && !done) await launch();
    await inFlight;
    if (o.stopAfter) {
      if (!done) throw new Error(`the inputs changed: the shard being rebuilt did not get its ${o.stopAfter.documents} documents back`);
      return;
    }
    for (const split of SPLITS) {
      const shard = shards[split];
      if (shard && shard.docs.length > 0) {
        await o.onShard(split, shard, cursor);
        delete shards[split];
      }
    }
  } finally {
    await inFlight?.catch(() => {});
    for (const s of SPLITS) await shards[s]?.abandon();
  }
}

/** Finishes a shard (header, fsync, rename), then reads it back for its digest, checking its size. */
async function finishFile(shard: ShardFile): Promise<{ sha256: string; bytes: number; tokens: number; tokenBytes: number }> {
  const info = await shard.finish();
  const digest = await fileDigest(shard.target);
  const expected = SHARD_HEADER + info.tokens * info.tokenBytes;
  if (digest.bytes !== expected) throw new Error(`${shard.target}: ${digest.bytes} bytes on disk after writing ${expected}`);
  return { ...digest, ...info };
}

/** The entry of a finished shard (and its targets' shard for pairs); `files` are the paths relative to the corpus. */
async function finishShards(files: string[], set: ShardSet, end: Position, part: number | undefined): Promise<ShardEntry> {
  const main = await finishFile(set.files[0]);
  const entry: ShardEntry = {
    file: files[0],
    sha256: main.sha256,
    bytes: main.bytes,
    tokens: main.tokens,
    tokenBytes: main.tokenBytes,
    documents: set.files[0].documents,
    chars: set.chars,
    start: set.start,
    end,
    ...(part !== undefined ? { part } : {}),
  };
  if (set.files.length > 1) {
    const t = await finishFile(set.files[1]);
    entry.target = { file: files[1], sha256: t.sha256, bytes: t.bytes, tokens: t.tokens };
  }
  return entry;
}

/** Removes files a killed process left half-written (temporary names of atomic writes). */
function removeLeftovers(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir)) if (/\.tmp/.test(f) && !f.startsWith('.')) fs.rmSync(path.join(dir, f), { force: true });
}

/**
 * Prepares one job's share (units `range`) into `area`, resuming from its progress.json when that was written
 * for the same inputs and tokenizer. Returns the finished progress.
 */
async function preparePart(
  src: DocSource,
  range: [number, number],
  area: WorkArea,
  tok: Tokenizer,
  o: { threads: number; shardChars: number; root: string; key: string },
  report: (e: PrepareEvent) => void,
): Promise<PartProgress> {
  await fs.promises.mkdir(area.dir, { recursive: true });
  removeLeftovers(area.dir);
  const progressFile = path.join(area.dir, PROGRESS);
  const docsFile = path.join(area.dir, `${DOCUMENTS}.partial`);
  const old = fs.existsSync(progressFile)
    ? await readJson<PartProgress>(progressFile, 'corpus progress').catch(() => undefined)
    : undefined;
  const resumable = old && old.format === 'trainlarge-corpus-progress' && old.inputs === o.key && old.tokenizer === tok.sha256;
  const state: PartProgress = resumable
    ? old
    : {
        format: 'trainlarge-corpus-progress',
        inputs: o.key,
        tokenizer: tok.sha256,
        part: area.part ?? 0,
        parts: area.parts,
        complete: false,
        splits: { train: [], valid: [] },
        documentsTsvBytes: 0,
      };
  if (state.complete) {
    report({ phase: 'shard', message: `${area.prefix || 'corpus'}: already prepared`, skipped: true });
    return state;
  }
  // Shards and index lines past the last saved progress are redone (same bytes).
  if (!resumable) for (const f of fs.readdirSync(area.dir)) if (SHARD_FILE.test(f)) fs.rmSync(path.join(area.dir, f));
  if (fs.existsSync(docsFile)) await fs.promises.truncate(docsFile, state.documentsTsvBytes);
  else {
    await fs.promises.writeFile(docsFile, '');
    state.documentsTsvBytes = 0;
  }
  const first: Position = { file: range[0], offset: 0, line: 0, docInFile: 0 };
  const after = {} as Record<SplitName, Position>;
  for (const s of SPLITS) {
    const shards = state.splits[s];
    after[s] = shards.length ? shards[shards.length - 1].end : first;
  }
  const from = comparePositions(after.train, after.valid) <= 0 ? after.train : after.valid;
  const done = state.splits.train.length + state.splits.valid.length;
  if (done > 0) report({ phase: 'shard', message: `resuming after ${done} finished shards`, done, skipped: true });
  const progress = new PassProgress(src, range, report, 'read', 'encoding');
  const names = (split: SplitName) => shardNames(src.kind, split, state.splits[split].length).map((f) => path.posix.join(area.prefix, f));
  const docsOut = await fs.promises.open(docsFile, 'a');
  try {
    await encodePass({
      src,
      range,
      from,
      after,
      tok,
      threads: o.threads,
      shardChars: o.shardChars,
      progress,
      openShard: (split, start) => openShardSet(o.root, names(split), start, tok),
      onShard: async (split, shard, end) => {
        const files = names(split);
        const file = files[0];
        const entry = await finishShards(files, shard, end, area.part);
        const lines = shard.docs.map((d) => `${split}\t${d}\t${file}\n`).join('');
        await docsOut.write(lines);
        await docsOut.sync();
        state.documentsTsvBytes += Buffer.byteLength(lines);
        state.splits[split].push(entry);
        await writeJsonAtomic(progressFile, state);
        report({
          ...progress.event(`${file}: ${entry.documents} documents, ${entry.tokens} tokens`),
          phase: 'shard',
          done: state.splits.train.length + state.splits.valid.length,
        });
      },
    });
  } finally {
    await docsOut.close();
  }
  state.complete = true;
  await writeJsonAtomic(progressFile, state);
  return state;
}

function emptySplit(): SplitManifest {
  return { documents: 0, tokens: 0, shards: [] };
}

/** manifest.json and documents.tsv from the parts' progress, once every part is complete. */
async function assemble(
  root: string,
  src: DocSource,
  key: string,
  parts: { area: WorkArea; progress: PartProgress }[],
  tokInfo: CorpusManifest['tokenizer'],
): Promise<CorpusManifest> {
  const manifest: CorpusManifest = {
    format: 'trainlarge-corpus',
    version: 2,
    name: src.name,
    kind: src.kind,
    complete: false,
    createdAt: new Date().toISOString(),
    inputs: key,
    sources: src.sources,
    tokenizer: tokInfo,
    separator: 'eos',
    split: src.split,
    parts: parts.length,
    splits: { train: emptySplit(), valid: emptySplit() },
    heldOut: src.heldOut,
    checksum: '',
  };
  for (const { progress } of parts) {
    for (const s of SPLITS) {
      const m = manifest.splits[s];
      for (const e of progress.splits[s]) {
        m.shards.push(e);
        m.documents += e.documents;
        m.tokens += e.tokens + (e.target?.tokens ?? 0);
      }
    }
  }
  if (manifest.splits.train.documents === 0) throw new Error('source: no training documents');
  if (manifest.splits.valid.documents === 0) throw new Error('source: no validation documents (give valid files or more documents)');
  // documents.tsv: the parts' index lines in order, streamed.
  const tmp = path.join(root, `${DOCUMENTS}.tmp-${process.pid}`);
  const out = fs.createWriteStream(tmp);
  const wrote = new Promise<void>((resolve, reject) => {
    out.on('finish', resolve);
    out.on('error', reject);
  });
  out.write(src.kind === 'translate' ? 'split\tid\tsource_tokens\ttarget_tokens\tshard\n' : 'split\tid\ttokens\tshard\n');
  for (const { area } of parts) {
    for await (const chunk of fs.createReadStream(path.join(area.dir, `${DOCUMENTS}.partial`))) {
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
  }
  out.end();
  await wrote;
  const fd = await fs.promises.open(tmp, 'r');
  await fd.sync();
  await fd.close();
  await fs.promises.rename(tmp, path.join(root, DOCUMENTS));
  const all = [...manifest.splits.train.shards, ...manifest.splits.valid.shards];
  manifest.checksum = sha256(tokInfo.sha256 + all.map((s) => s.sha256 + (s.target?.sha256 ?? '')).join(''));
  manifest.complete = true;
  await writeJsonAtomic(path.join(root, MANIFEST), manifest);
  return manifest;
}

/** Whether a shard (and its targets' shard) is on disk with the size and sha256 its entry names. */
async function shardIntact(root: string, e: ShardEntry): Promise<boolean> {
  for (const f of e.target ? [e, e.target] : [e]) {
    const file = path.join(root, f.file);
    if (!fs.existsSync(file) || fs.statSync(file).size !== f.bytes || (await fileDigest(file)).sha256 !== f.sha256) return false;
  }
  return true;
}

/** The shards of a complete corpus that are missing or fail their checksum, rebuilt from their recorded start. */
async function repairShards(
  root: string,
  manifest: CorpusManifest,
  src: DocSource,
  tok: Tokenizer,
  threads: number,
  report: (e: PrepareEvent) => void,
): Promise<void> {
  const all = SPLITS.flatMap((s) => manifest.splits[s].shards.map((e) => ({ split: s, e })));
  let checked = 0;
  for (const { split, e } of all) {
    const file = path.join(root, e.file);
    const ok = await shardIntact(root, e);
    checked++;
    if (ok) {
      report({ phase: 'shard', message: `${e.file}: unchanged, skipped`, done: checked, total: all.length, skipped: true });
      continue;
    }
    const progress = new PassProgress(src, [0, src.units], () => {}, 'read', 'rebuilding');
    const after = { train: e.start, valid: e.start };
    await encodePass({
      src,
      range: [0, src.units],
      from: e.start,
      after,
      tok,
      threads,
      shardChars: Number.MAX_SAFE_INTEGER,
      progress,
      stopAfter: { split, documents: e.documents },
      openShard: (_s, start) => openShardSet(root, e.target ? [e.file, e.target.file] : [e.file], start, tok),
      onShard: async (_s, shard, end) => {
        const rebuilt = await finishShards(e.target ? [e.file, e.target.file] : [e.file], shard, end, e.part);
        if (rebuilt.sha256 !== e.sha256 || rebuilt.target?.sha256 !== e.target?.sha256)
          throw new Error(`${file}: rebuilt, but not to the bytes the manifest names; the inputs changed: prepare into a new directory`);
      },
    });
    report({ phase: 'shard', message: `${e.file}: rebuilt`, done: checked, total: all.length });
  }
}

/**
 * A tokenized pretraining corpus on disk: token shards (uint16 when the vocabulary fits) that the engine
 * memory-maps, the tokenizer, documents.tsv (split, id, tokens, shard of every document) and a manifest with
 * sources, package versions, checksums and counts.
 */
export class Corpus {
  private unigramModel?: Unigram;

  private constructor(
    readonly dir: string,
    readonly manifest: CorpusManifest,
    readonly tokenizer: Tokenizer,
  ) {}

  /**
   * Streams the source into shards with memory that does not grow with it: trains a tokenizer on a sample of
   * the training split (unless given), encodes on every core, writes each shard as it fills. Resumable and
   * crash-safe: a rerun after a kill goes on from the last finished shard and gives byte-identical shards; a
   * rerun of a complete corpus checks every shard and rebuilds only the missing or damaged ones. With `part`,
   * prepares a share of the input files as one of several jobs: the corpus is complete when every part is,
   * and the job that finishes last assembles it (Corpus.prepare then returns it; before, it throws
   * PartPending... see preparePart for the share's result).
   */
  static async prepare(opts: CorpusPrepareOptions): Promise<Corpus> {
    const r = await Corpus.prepareShare(opts);
    if (!r.corpus)
      throw new Error(
        `Corpus.prepare: part ${r.part + 1} of ${r.parts} is done; the corpus is complete when parts ${r.pending.map((p) => p + 1).join(', ')} are`,
      );
    return r.corpus;
  }

  /**
   * One job's share of a prepare split across jobs (`part: { index, count }`; every job gives the same source
   * and options). Returns the corpus when every part is complete (this job assembled it), else which parts
   * are still pending.
   */
  static async prepareShare(opts: CorpusPrepareOptions): Promise<{ corpus?: Corpus; part: number; parts: number; pending: number[] }> {
    if (!opts || typeof opts !== 'object') throw new TypeError('Corpus.prepare: expected { source, dir, ... }');
    const { source, dir: given, tokenizer, tokenizerOptions, onProgress, ...rest } = opts;
    const o = parseConfig(PrepareSchema, rest, 'Corpus.prepare');
    if (typeof given !== 'string' || !given) throw new TypeError('dir: expected the output directory');
    const dir = path.resolve(given);
    const report = onProgress ?? (() => {});
    await fs.promises.mkdir(dir, { recursive: true });
    const src = await resolveSource(source);
    const parts = o.part?.count ?? 1;
    const part = o.part?.index ?? 0;
    const range = partRange(src, part, parts);
    const key = sha256(`${src.key}\0${o.shardChars}\0${parts}`);
    const { tokenizer: tok, info } = await prepareTokenizer(dir, src, { tokenizer, tokenizerOptions }, o.sampleChars, report);
    const areaOf = (i: number): WorkArea =>
      parts === 1
        ? { dir, prefix: '', parts }
        : { dir: path.join(dir, `part-${i + 1}-of-${parts}`), prefix: `part-${i + 1}-of-${parts}`, part: i, parts };
    const area = areaOf(part);
    // A complete corpus from the same inputs and options: check every shard, rebuild what is damaged.
    const previous = fs.existsSync(path.join(dir, MANIFEST))
      ? await readJson<CorpusManifest>(path.join(dir, MANIFEST), 'corpus manifest').catch(() => undefined)
      : undefined;
    const current = (m: CorpusManifest | undefined): m is CorpusManifest =>
      !!m?.complete && m.version === 2 && m.inputs === key && m.tokenizer.sha256 === tok.sha256;
    if (current(previous)) {
      const lockFile = path.join(dir, PREPARE_LOCK);
      await withLock(lockFile, () => repairShards(dir, previous, src, tok, o.threads, report), { what: 'Corpus.prepare' });
      report({ phase: 'done', message: `${dir}: complete, every shard checked` });
      return { corpus: new Corpus(dir, previous, tok), part, parts, pending: [] };
    }
    // The lock lives in the part's directory, so that directory is made first.
    await fs.promises.mkdir(area.dir, { recursive: true });
    await withLock(path.join(area.dir, PREPARE_LOCK), () => preparePart(src, range, area, tok, { ...o, root: dir, key }, report), {
      what: 'Corpus.prepare',
    });
    // The last part to finish assembles the corpus.
    return withLock(
      path.join(dir, PREPARE_LOCK),
      async () => {
        // Another job may have assembled it meanwhile (both finished their parts at once).
        const now = fs.existsSync(path.join(dir, MANIFEST))
          ? await readJson<CorpusManifest>(path.join(dir, MANIFEST), 'corpus manifest').catch(() => undefined)
          : undefined;
        if (current(now)) return { corpus: new Corpus(dir, now, tok), part, parts, pending: [] };
        const states: { area: WorkArea; progress: PartProgress }[] = [];
        const pending: number[] = [];
        for (let i = 0; i < parts; i++) {
          const a = areaOf(i);
          const p = fs.existsSync(path.join(a.dir, PROGRESS))
            ? await readJson<PartProgress>(path.join(a.dir, PROGRESS), 'corpus progress').catch(() => undefined)
            : undefined;
          if (p?.complete && p.inputs === key && p.tokenizer === tok.sha256) states.push({ area: a, progress: p });
          else pending.push(i);
        }
        if (pending.length > 0) {
          report({
            phase: 'done',
            message: `part ${part + 1} of ${parts} complete; waiting for parts ${pending.map((p) => p + 1).join(', ')}`,
          });
          return { part, parts, pending };
        }
        const manifest = await assemble(dir, src, key, states, info);
        for (const { area: a } of states) {
          await fs.promises.rm(path.join(a.dir, `${DOCUMENTS}.partial`), { force: true });
          await fs.promises.rm(path.join(a.dir, PROGRESS), { force: true });
        }
        report({
          phase: 'done',
          message: `${manifest.splits.train.tokens} training and ${manifest.splits.valid.tokens} validation tokens in ${dir}`,
        });
        return { corpus: new Corpus(dir, manifest, tok), part, parts, pending: [] };
      },
      { what: 'Corpus.prepare' },
    );
  }

  /**
   * A prepared corpus. Shard sizes are always checked; `verify: true` also hashes every shard against the
   * manifest (what `trainlarge data verify` does), `false` never; by default ('auto') shards are hashed when
   * they total at most 512 MiB, so a corpus of 100 GB opens at once.
   */
  static async open(dir: string, opts: { verify?: boolean | 'auto' } = {}): Promise<Corpus> {
    const { verify } = parseConfig(OpenSchema, opts, 'Corpus.open');
    const root = path.resolve(dir);
    if (!fs.existsSync(path.join(root, MANIFEST)) && fs.existsSync(path.join(root, PROGRESS)))
      throw new Error(`corpus: ${root} was not prepared completely; run Corpus.prepare again (it resumes)`);
    const manifest = await readJson<CorpusManifest>(path.join(root, MANIFEST), 'corpus');
    if (manifest.format !== 'trainlarge-corpus') throw new Error(`corpus: ${root}/${MANIFEST} is not a trainlarge corpus manifest`);
    if (!manifest.complete) throw new Error(`corpus: ${root} was not prepared completely; run Corpus.prepare again (it resumes)`);
    const shards = [...manifest.splits.train.shards, ...manifest.splits.valid.shards].flatMap((s) => (s.target ? [s, s.target] : [s]));
    const total = shards.reduce((n, s) => n + s.bytes, 0);
    const hash = verify === true || (verify === 'auto' && total <= OPEN_VERIFY_BYTES);
    for (const s of shards) {
      const file = path.join(root, s.file);
      if (!fs.existsSync(file))
        throw new Error(`corpus: shard ${file} is missing; run Corpus.prepare again (it rebuilds only what is missing)`);
      if (fs.statSync(file).size !== s.bytes) throw new Error(`corpus: shard ${file} has the wrong size; run Corpus.prepare again`);
      if (hash && (await fileDigest(file)).sha256 !== s.sha256)
        throw new Error(`corpus: shard ${file} fails its checksum; run Corpus.prepare again`);
    }
    const tokenizer = Tokenizer.load(path.join(root, manifest.tokenizer.file));
    if (tokenizer.sha256 !== manifest.tokenizer.sha256)
      throw new Error(`corpus: ${manifest.tokenizer.file} is not the tokenizer the shards were made with`);
    return new Corpus(root, manifest, tokenizer);
  }

  /** Hashes every shard against the manifest; returns the damaged ones (empty when the corpus is sound). */
  async verify(onShard?: (file: string, ok: boolean) => void): Promise<string[]> {
    const bad: string[] = [];
    for (const s of [...this.manifest.splits.train.shards, ...this.manifest.splits.valid.shards]) {
      const ok = await shardIntact(this.dir, s);
      if (!ok) bad.push(s.file);
      onShard?.(s.file, ok);
    }
    return bad;
  }

  private requireMlm(): void {
    if (this.kind !== 'mlm') throw new Error(`corpus: ${this.dir} holds translation pairs; use pairs('train' | 'valid')`);
  }

  /** Summaries of the corpora prepared under `root` (one per directory holding a manifest). */
  static list(
    root: string,
  ): { dir: string; name: string; complete: boolean; trainTokens: number; validTokens: number; vocabSize: number }[] {
    if (!fs.existsSync(root)) return [];
    return fs
      .readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory() && fs.existsSync(path.join(root, e.name, MANIFEST)))
      .map((e) => {
        const m = JSON.parse(fs.readFileSync(path.join(root, e.name, MANIFEST), 'utf8')) as CorpusManifest;
        return {
          dir: path.join(root, e.name),
          name: m.name,
          complete: m.complete,
          trainTokens: m.splits.train.tokens,
          validTokens: m.splits.valid.tokens,
          vocabSize: m.tokenizer.vocabSize,
        };
      });
  }

  /** 'mlm' (documents) or 'translate' (pairs); corpora prepared before kinds existed are 'mlm'. */
  get kind(): 'mlm' | 'translate' {
    return this.manifest.kind ?? 'mlm';
  }

  shardPaths(split: 'train' | 'valid'): string[] {
    return this.manifest.splits[split].shards.map((s) => path.join(this.dir, s.file));
  }

  /**
   * A translation corpus's pairs for training or evaluation: source and target shards memory-mapped, batched
   * by token count as Dataset.parallel's are; only the pair index (about 20 bytes a pair) is in memory.
   */
  pairs(split: 'train' | 'valid', options: { maxLen?: number } = {}): ParallelDataset {
    if (this.kind !== 'translate')
      throw new Error(`corpus: ${this.dir} holds documents (kind 'mlm'); use train()/valid() for masked-LM blocks`);
    const shards = this.manifest.splits[split].shards;
    if (shards.length === 0) throw new Error(`corpus: ${this.dir} has no ${split} pairs`);
    return ParallelDataset.fromShards(
      shards.map((s) => path.join(this.dir, s.file)),
      shards.map((s) => path.join(this.dir, s.target!.file)),
      { maxLen: options.maxLen ?? DEFAULT_MAX_LEN, tokenizer: this.tokenizer },
    );
  }

  /** A split's token ids, one array per shard (e.g. for unigramEntropy). */
  tokens(split: 'train' | 'valid'): ArrayLike<number>[] {
    return this.shardPaths(split).map((f) => native().readTokenShard(f).ids);
  }

  /** The unigram model of the training split: the baseline a model that ignores context reaches. */
  unigram(): Unigram {
    if (!this.unigramModel) {
      // Shard by shard, so a large corpus is never in the JS heap at once.
      const counts = new Float64Array(this.tokenizer.vocabSize);
      for (const f of this.shardPaths('train')) {
        const ids = native().readTokenShard(f).ids;
        for (let i = 0; i < ids.length; i++) counts[ids[i]]++;
      }
      this.unigramModel = new Unigram(counts);
    }
    return this.unigramModel;
  }

  /** Training blocks, memory-mapped from the shards, masked dynamically per batch. */
  train(options: MlmOptions = {}): MlmDataset {
    this.requireMlm();
    return MlmDataset.fromShards(this.shardPaths('train'), this.tokenizer, options);
  }

  /**
   * Validation blocks; evaluation masks them with a fixed seed, so perplexities compare across runs. They carry
   * the training split's unigram model, so evaluate reports the baseline of the targets it scored.
   */
  valid(options: MlmOptions = {}): MlmDataset {
    this.requireMlm();
    const d = MlmDataset.fromShards(this.shardPaths('valid'), this.tokenizer, options);
    d.unigram = this.unigram();
    return d;
  }
}
