// Pretraining corpora as token shards, prepared from inputs of any size with flat memory:
//
//   inputs (built-in, or files/dirs/globs: text, JSONL, TSV, Parquet; .gz, .zst)      lib/data/inputs.ts, stream.ts
//     -> [tokenizer: trained once on a deterministic reservoir sample of the training lines]
//     -> batches of documents encoded on every core (native SentencePiece threads) while the next is read
//     -> one shard writer per split (train/valid): a shard is written when it holds shardChars characters
//     -> documents.tsv appended per shard; progress.json after each shard; manifest.json written last
//
// Resumable: each shard records the reader position before its first document and after its last; a rerun
// reads on from the earliest split's last finished shard (plain files and Parquet seek there; compressed
// files are decompressed and skipped up to it) and writes byte-identical shards. Splitting across jobs:
// `part: { index, count }` prepares a contiguous share of the input files into part-I-of-N/; the job that
// finishes the last part assembles the corpus. The passes themselves are lib/data/corpus-prepare.ts.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { z } from 'zod';
import { DEFAULT_MAX_LEN } from '../config/model';
import { parseConfig } from '../config/parse';
import { fileDigest, readJson } from '../io';
import { withLock } from '../lock';
import { native } from '../native';
import { CORPUS_SOURCES, CorpusSourceName } from './builtin/sources';
import { CorpusManifest, DOCUMENTS, MANIFEST, PartProgress, PROGRESS, sha256 } from './corpus-manifest';
import { assemble, preparePart, repairShards } from './corpus-prepare';
import { PrepareEvent } from './corpus-progress';
import { shardIntact, WorkArea } from './corpus-shards';
import { CustomCorpus, partRange, resolveSource } from './corpus-sources';
import { prepareTokenizer } from './corpus-tokenizer';
import { MlmDataset, MlmOptions, ParallelDataset } from './dataset';
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
/** Shards total at most this many bytes for Corpus.open to hash them all by default. */
const OPEN_VERIFY_BYTES = 512 << 20;

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
