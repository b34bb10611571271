import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { fileDigest, readJson, writeFileAtomic, writeJsonAtomic } from '../io';
import { native } from '../native';
import { MlmDataset, MlmOptions } from './dataset';
import { DocumentFormat, readDocuments } from './files';
import { builtinCorpus, CORPUS_SOURCES, CorpusSourceName } from './builtin/sources';
import { Document } from './documents';
import { Unigram } from './tokens';

export { CORPUS_SOURCES, CorpusSourceName };
import { Tokenizer, TokenizerOptions, TokenizerOptionsSchema } from './tokenizer';
import { withLock } from '../lock';

/** Files of your own (the paper's Wikipedia + BookCorpus role). */
export interface CorpusFiles {
  files: string[];
  format?: DocumentFormat;
  textField?: string | number;
  /** text format: one document per file (default), per blank-line block, or per line. */
  split?: 'file' | 'blank-line' | 'line';
}

export interface CustomCorpus {
  name: string;
  train: CorpusFiles;
  /** Validation documents; without it every `validEvery`-th training document is held out whole. */
  valid?: CorpusFiles;
  validEvery?: number;
}

export interface PrepareEvent {
  phase: 'read' | 'tokenizer' | 'shard' | 'done';
  message: string;
  /** shard phase: shards finished (written or skipped) and in all */
  done?: number;
  total?: number;
  skipped?: boolean;
}

export interface CorpusPrepareOptions {
  source: CorpusSourceName | CustomCorpus;
  /** Output directory: shards, the tokenizer's files (tokenizer.model, or HF's tokenizer.json + config), documents.tsv, manifest.json. */
  dir: string;
  /**
   * Tokenize with this tokenizer (SentencePiece, or an HF byte-level BPE from Tokenizer.fromHF); by default a
   * SentencePiece one is trained on the training split (tokenizerOptions).
   */
  tokenizer?: Tokenizer;
  tokenizerOptions?: TokenizerOptions;
  /** Characters of text per shard (approximate: whole documents). */
  shardChars?: number;
  /** Native threads for encoding. */
  threads?: number;
  onProgress?: (e: PrepareEvent) => void;
}

const PrepareSchema = z.object({
  shardChars: z.number().int().min(1000).default(8_000_000),
  threads: z.number().int().positive().default(2),
});

export interface ShardEntry {
  file: string;
  /** sha256 of the inputs (tokenizer + documents): a shard with the same key need not be rebuilt. */
  key: string;
  /** sha256 of the file. */
  sha256: string;
  bytes: number;
  tokens: number;
  tokenBytes: number;
  documents: number;
}

export interface SplitManifest {
  documents: number;
  tokens: number;
  shards: ShardEntry[];
}

export interface CorpusManifest {
  format: 'trainlarge-corpus';
  version: 1;
  name: string;
  complete: boolean;
  createdAt: string;
  sources: { package?: string; version?: string; integrity?: string; license?: string; file?: string; bytes?: number; sha256?: string }[];
  tokenizer: { file: string; sha256: string; vocabSize: number; options?: Record<string, unknown>; trainedOn?: string };
  /** Documents are followed by the eos token in the token stream (RoBERTa's FULL-SENTENCES input). */
  separator: 'eos';
  splits: { train: SplitManifest; valid: SplitManifest };
  /** Document ids kept out of both splits (e.g. a downstream task's test documents). */
  heldOut: string[];
  /** sha256 over the shard checksums and the tokenizer: one value that names this exact corpus. */
  checksum: string;
}

const MANIFEST = 'manifest.json';
const TOKENIZER_FILE = 'tokenizer.model';

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function digestDocuments(docs: Document[], salt: string): string {
  const h = createHash('sha256').update(salt);
  for (const d of docs) h.update(d.id).update('\0').update(d.text).update('\0');
  return h.digest('hex');
}

/** Tokens of each document in a shard (eos-separated), or undefined when the shard does not hold `docs` documents. */
function documentLengths(file: string, eos: number, docs: number): number[] | undefined {
  const { ids } = native().readTokenShard(file);
  const lengths: number[] = [];
  let start = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === eos) {
      lengths.push(i - start);
      start = i + 1;
    }
  }
  return lengths.length === docs && start === ids.length ? lengths : undefined;
}

/** Consecutive documents grouped into shards of about `chars` characters. */
function planShards(docs: Document[], chars: number): Document[][] {
  const groups: Document[][] = [];
  let current: Document[] = [];
  let size = 0;
  for (const d of docs) {
    current.push(d);
    size += d.text.length;
    if (size >= chars) {
      groups.push(current);
      current = [];
      size = 0;
    }
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

async function resolveDocuments(source: CorpusSourceName | CustomCorpus): Promise<{
  name: string;
  train: Document[];
  valid: Document[];
  heldOut: string[];
  sources: CorpusManifest['sources'];
}> {
  if (typeof source === 'string') {
    if (!Object.prototype.hasOwnProperty.call(CORPUS_SOURCES, source)) {
      throw new Error(
        `source: '${source}' is not a built-in corpus; expected one of: ${Object.keys(CORPUS_SOURCES).join(', ')}, ` +
          'or { name, train: { files } } for your own files',
      );
    }
    return { name: source, ...(await builtinCorpus(source)) };
  }
  if (!source || typeof source.name !== 'string' || !source.name || !source.train) {
    throw new TypeError('source: expected a built-in corpus name or { name, train: { files }, valid?: { files } }');
  }
  const read = (spec: CorpusFiles) =>
    readDocuments({ files: spec.files, format: spec.format, textField: spec.textField, split: spec.split });
  let train = await read(source.train);
  let valid: Document[];
  if (source.valid) {
    valid = await read(source.valid);
  } else {
    const every = source.validEvery ?? 20;
    if (!Number.isInteger(every) || every < 2) throw new RangeError(`source.validEvery: must be an integer >= 2, got ${every}`);
    valid = train.filter((_, i) => i % every === every - 1);
    train = train.filter((_, i) => i % every !== every - 1);
  }
  const files = [...source.train.files, ...(source.valid?.files ?? [])];
  const sources = await Promise.all(files.map(async (f) => ({ file: path.resolve(f), ...(await fileDigest(f)) })));
  return { name: source.name, train, valid, heldOut: [], sources };
}

/**
 * Corpus.prepare's tokenizer, saved in `dir`: the one given, or the one a previous prepare trained on the same
 * documents with the same options (reused), or one trained now on `train`.
 */
async function prepareTokenizer(
  dir: string,
  train: Document[],
  opts: Pick<CorpusPrepareOptions, 'tokenizer' | 'tokenizerOptions'>,
  previous: CorpusManifest | undefined,
  report: (e: PrepareEvent) => void,
): Promise<{ tokenizer: Tokenizer; info: CorpusManifest['tokenizer'] }> {
  const tokFile = path.join(dir, TOKENIZER_FILE);
  if (opts.tokenizer) {
    const given = opts.tokenizer;
    if (!(given instanceof Tokenizer)) throw new TypeError('tokenizer: expected a Tokenizer (Tokenizer.train, load, fromHF or fromDir)');
    await given.saveTo(dir);
    // A SentencePiece model left by an earlier prepare would be found first by Tokenizer.fromDir(dir).
    if (given.kind !== 'sentencepiece') await fs.promises.rm(tokFile, { force: true });
    return { tokenizer: given, info: { file: given.files[0], sha256: given.sha256, vocabSize: given.vocabSize } };
  }
  const options = parseConfig(TokenizerOptionsSchema, opts.tokenizerOptions ?? {}, 'tokenizerOptions');
  const trainedOn = digestDocuments(train, JSON.stringify(options));
  let tokenizer: Tokenizer | undefined;
  if (previous?.tokenizer.trainedOn === trainedOn && fs.existsSync(tokFile)) {
    tokenizer = Tokenizer.load(tokFile);
    if (tokenizer.sha256 !== previous.tokenizer.sha256)
      tokenizer = undefined; // changed on disk: retrain
    else report({ phase: 'tokenizer', message: `reusing ${TOKENIZER_FILE} (same documents and options)`, skipped: true });
  }
  if (!tokenizer) {
    report({ phase: 'tokenizer', message: `training a ${options.model} tokenizer, ${options.vocabSize} pieces` });
    tokenizer = await Tokenizer.train({ ...options, texts: train.map((d) => d.text) });
    await tokenizer.save(tokFile);
  }
  return { tokenizer, info: { file: TOKENIZER_FILE, sha256: tokenizer.sha256, vocabSize: tokenizer.vocabSize, options, trainedOn } };
}

/** The tokens of each document of a shard a previous prepare wrote, when the file is still the one its entry names; else undefined. */
async function unchangedShard(target: string, old: ShardEntry, eos: number, docs: number): Promise<number[] | undefined> {
  return fs.existsSync(target) && (await fileDigest(target)).sha256 === old.sha256 ? documentLengths(target, eos, docs) : undefined;
}

/** Encodes `docs` and writes them as one shard, documents joined by eos; returns its entry and each document's tokens. */
async function writeShard(
  dir: string,
  file: string,
  key: string,
  docs: Document[],
  tok: Tokenizer,
  threads: number,
): Promise<{ entry: ShardEntry; counts: number[] }> {
  const target = path.join(dir, file);
  const { ids, offsets } = await tok.encodeFlat(
    docs.map((d) => d.text),
    threads,
  );
  const counts = docs.map((_, d) => offsets[d + 1] - offsets[d]);
  // Documents joined by eos: the stream RoBERTa's FULL-SENTENCES blocks are cut from.
  const stream = new Int32Array(ids.length + docs.length);
  for (let d = 0, at = 0; d < docs.length; d++) {
    const piece = ids.subarray(offsets[d], offsets[d + 1]);
    stream.set(piece, at);
    at += piece.length;
    stream[at++] = tok.special.eos;
  }
  const info = await native().writeTokenShard(target, stream, tok.vocabSize);
  const digest = await fileDigest(target);
  const entry: ShardEntry = {
    file,
    key,
    sha256: digest.sha256,
    bytes: digest.bytes,
    tokens: info.tokens,
    tokenBytes: info.tokenBytes,
    documents: docs.length,
  };
  return { entry, counts };
}

/**
 * Every planned shard in order, kept when unchanged since a previous prepare or written, added to `manifest`;
 * the manifest is saved after each (with the previous run's finished shards, see carryOver). Returns the
 * lines of documents.tsv.
 */
async function writeShards(
  dir: string,
  plans: Record<'train' | 'valid', Document[][]>,
  tok: Tokenizer,
  threads: number,
  manifest: CorpusManifest,
  previous: CorpusManifest | undefined,
  report: (e: PrepareEvent) => void,
): Promise<string[]> {
  const done = new Map<string, ShardEntry>();
  for (const s of [...(previous?.splits.train.shards ?? []), ...(previous?.splits.valid.shards ?? [])]) done.set(s.key, s);
  const total = plans.train.length + plans.valid.length;
  let finished = 0;
  const docLines: string[] = ['split\tid\ttokens\tshard'];
  for (const split of ['train', 'valid'] as const) {
    for (const [i, docs] of plans[split].entries()) {
      const file = `${split}-${String(i).padStart(5, '0')}.tok`;
      const key = digestDocuments(docs, `${tok.sha256}\0${file}`);
      const old = done.get(key);
      const counts = old && old.file === file ? await unchangedShard(path.join(dir, file), old, tok.special.eos, docs.length) : undefined;
      let entry: ShardEntry;
      let docTokens: number[];
      if (old && counts) {
        entry = old;
        docTokens = counts;
        report({ phase: 'shard', message: `${file}: unchanged, skipped`, done: ++finished, total, skipped: true });
      } else {
        ({ entry, counts: docTokens } = await writeShard(dir, file, key, docs, tok, threads));
        report({ phase: 'shard', message: `${file}: ${docs.length} documents, ${entry.tokens} tokens`, done: ++finished, total });
      }
      docs.forEach((d, k) => docLines.push(`${split}\t${d.id}\t${docTokens[k]}\t${file}`));
      const s = manifest.splits[split];
      s.shards.push(entry);
      s.documents += docs.length;
      s.tokens += entry.tokens;
      await writeJsonAtomic(path.join(dir, MANIFEST), { ...manifest, splits: { ...manifest.splits, ...carryOver(previous, manifest) } });
    }
  }
  return docLines;
}

/** The last step of a prepare: documents.tsv, the corpus checksum, shards of an earlier, larger plan removed, the manifest saved complete. */
async function completeCorpus(dir: string, manifest: CorpusManifest, docLines: string[], tok: Tokenizer): Promise<void> {
  await writeFileAtomic(path.join(dir, 'documents.tsv'), docLines.join('\n') + '\n');
  const all = [...manifest.splits.train.shards, ...manifest.splits.valid.shards];
  manifest.checksum = sha256(tok.sha256 + all.map((s) => s.sha256).join(''));
  manifest.complete = true;
  // Shards of an earlier, larger plan that this one no longer uses.
  const keep = new Set(all.map((s) => s.file));
  for (const f of fs.readdirSync(dir)) if (/^(train|valid)-\d{5}\.tok$/.test(f) && !keep.has(f)) fs.rmSync(path.join(dir, f));
  await writeJsonAtomic(path.join(dir, MANIFEST), manifest);
}

/**
 * A tokenized pretraining corpus on disk: token shards (uint16 when the vocabulary fits) that the engine
 * memory-maps, the tokenizer, and a manifest with sources, package versions, checksums and counts.
 */
/** Held while a process prepares (or checks) a corpus directory. */
const PREPARE_LOCK = '.prepare.lock';

export class Corpus {
  private unigramModel?: Unigram;

  private constructor(
    readonly dir: string,
    readonly manifest: CorpusManifest,
    readonly tokenizer: Tokenizer,
  ) {}

  /**
   * Reads the source, splits whole documents into train/valid, trains a tokenizer on the training split
   * (unless given), and writes the shards. Resumable: shards whose inputs and file checksum are unchanged
   * are skipped, so a rerun after a crash or with more shards only does the missing work.
   */
  static async prepare(opts: CorpusPrepareOptions): Promise<Corpus> {
    const { shardChars, threads } = parseConfig(PrepareSchema, { shardChars: opts.shardChars, threads: opts.threads }, 'Corpus.prepare');
    if (typeof opts.dir !== 'string' || !opts.dir) throw new TypeError('dir: expected the output directory');
    const dir = path.resolve(opts.dir);
    const report = opts.onProgress ?? (() => {});
    await fs.promises.mkdir(dir, { recursive: true });
    // Jobs that share a corpus (a sweep split across scheduler tasks) prepare it one at a time; the later ones
    // find it done and only check it.
    return withLock(path.join(dir, PREPARE_LOCK), () => Corpus.prepareInto(dir, opts, report, shardChars, threads), {
      what: 'Corpus.prepare',
    });
  }

  private static async prepareInto(
    dir: string,
    opts: CorpusPrepareOptions,
    report: (e: PrepareEvent) => void,
    shardChars: number,
    threads: number,
  ): Promise<Corpus> {
    report({ phase: 'read', message: 'reading and splitting documents' });
    const src = await resolveDocuments(opts.source);
    if (src.train.length === 0) throw new Error('source: no training documents');
    if (src.valid.length === 0) throw new Error('source: no validation documents (give valid files or more documents)');
    const previous = fs.existsSync(path.join(dir, MANIFEST))
      ? await readJson<CorpusManifest>(path.join(dir, MANIFEST), 'corpus manifest')
      : undefined;

    const { tokenizer: tok, info: tokenizerInfo } = await prepareTokenizer(dir, src.train, opts, previous, report);
    const plans = { train: planShards(src.train, shardChars), valid: planShards(src.valid, shardChars) };
    const manifest: CorpusManifest = {
      format: 'trainlarge-corpus',
      version: 1,
      name: src.name,
      complete: false,
      createdAt: new Date().toISOString(),
      sources: src.sources,
      tokenizer: tokenizerInfo,
      separator: 'eos',
      splits: { train: { documents: 0, tokens: 0, shards: [] }, valid: { documents: 0, tokens: 0, shards: [] } },
      heldOut: src.heldOut,
      checksum: '',
    };
    const docLines = await writeShards(dir, plans, tok, threads, manifest, previous, report);
    await completeCorpus(dir, manifest, docLines, tok);
    report({
      phase: 'done',
      message: `${manifest.splits.train.tokens} training and ${manifest.splits.valid.tokens} validation tokens in ${dir}`,
    });
    return new Corpus(dir, manifest, tok);
  }

  /**
   * A prepared corpus. Every shard is hashed against the manifest's sha256 (a corrupted shard is an error
   * here, not a quiet stream of wrong tokens; ~0.1 s for english-prose); `verify: false` checks sizes only.
   */
  static async open(dir: string, opts: { verify?: boolean } = {}): Promise<Corpus> {
    const root = path.resolve(dir);
    const manifest = await readJson<CorpusManifest>(path.join(root, MANIFEST), 'corpus');
    if (manifest.format !== 'trainlarge-corpus') throw new Error(`corpus: ${root}/${MANIFEST} is not a trainlarge corpus manifest`);
    if (!manifest.complete) throw new Error(`corpus: ${root} was not prepared completely; run Corpus.prepare again (it resumes)`);
    for (const s of [...manifest.splits.train.shards, ...manifest.splits.valid.shards]) {
      const file = path.join(root, s.file);
      if (!fs.existsSync(file))
        throw new Error(`corpus: shard ${file} is missing; run Corpus.prepare again (it rebuilds only what is missing)`);
      if (fs.statSync(file).size !== s.bytes) throw new Error(`corpus: shard ${file} has the wrong size; run Corpus.prepare again`);
      if ((opts.verify ?? true) && (await fileDigest(file)).sha256 !== s.sha256)
        throw new Error(`corpus: shard ${file} fails its checksum; run Corpus.prepare again`);
    }
    const tokenizer = Tokenizer.load(path.join(root, manifest.tokenizer.file));
    if (tokenizer.sha256 !== manifest.tokenizer.sha256)
      throw new Error(`corpus: ${manifest.tokenizer.file} is not the tokenizer the shards were made with`);
    return new Corpus(root, manifest, tokenizer);
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

  shardPaths(split: 'train' | 'valid'): string[] {
    return this.manifest.splits[split].shards.map((s) => path.join(this.dir, s.file));
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
    return MlmDataset.fromShards(this.shardPaths('train'), this.tokenizer, options);
  }

  /**
   * Validation blocks; evaluation masks them with a fixed seed, so perplexities compare across runs. They carry
   * the training split's unigram model, so evaluate reports the baseline of the targets it scored.
   */
  valid(options: MlmOptions = {}): MlmDataset {
    const d = MlmDataset.fromShards(this.shardPaths('valid'), this.tokenizer, options);
    d.unigram = this.unigram();
    return d;
  }
}

// While a prepare is in progress the manifest keeps the previous run's finished shards too, so a crash
// in the middle loses no finished work.
function carryOver(previous: CorpusManifest | undefined, current: CorpusManifest): Partial<CorpusManifest['splits']> {
  if (!previous) return {};
  const have = new Set([...current.splits.train.shards, ...current.splits.valid.shards].map((s) => s.key));
  const out: Partial<CorpusManifest['splits']> = {};
  for (const split of ['train', 'valid'] as const) {
    const extra = previous.splits[split].shards.filter((s) => !have.has(s.key));
    out[split] = { ...current.splits[split], shards: [...current.splits[split].shards, ...extra] };
  }
  return out;
}
