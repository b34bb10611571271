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
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { z } from 'zod';
import { DEFAULT_MAX_LEN } from '../config/model';
import { parseConfig } from '../config/parse';
import { fileDigest, readJson, writeJsonAtomic } from '../io';
import { withLock } from '../lock';
import { native } from '../native';
import { CORPUS_SOURCES, CorpusSourceName } from './builtin/sources';
import {
  comparePositions,
  CorpusManifest,
  DOCUMENTS,
  MANIFEST,
  PartProgress,
  PROGRESS,
  sha256,
  SplitManifest,
  SplitName,
  SPLITS,
} from './corpus-manifest';
import { PassProgress, PrepareEvent } from './corpus-progress';
import { finishShards, openShardSet, removeLeftovers, SHARD_FILE, shardIntact, shardNames, ShardSet, WorkArea } from './corpus-shards';
import { CustomCorpus, DocSource, partRange, resolveSource } from './corpus-sources';
import { prepareTokenizer } from './corpus-tokenizer';
import { MlmDataset, MlmOptions, ParallelDataset } from './dataset';
import { Position, StreamDoc } from './stream';
import { Unigram } from './tokens';
import { Tokenizer, TokenizerOptions } from './tokenizer';

export { CORPUS_SOURCES, CorpusSourceName };

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

const OpenSchema = z.object({ verify: z.union([z.boolean(), z.literal('auto')]).default('auto') }).strict();

/** Held while a process prepares (or checks) a corpus directory; parts hold their own. */
const PREPARE_LOCK = '.prepare.lock';
/** Characters of text encoded per native call (two are in flight: one encoding, one being read). */
const BATCH_CHARS = 4_000_000;
/** Shards total at most this many bytes for Corpus.open to hash them all by default. */
const OPEN_VERIFY_BYTES = 512 << 20;

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
