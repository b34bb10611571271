// Token shards as a prepare writes them: a shard file filled document by document and flushed as it grows,
// written in sets (one file, or sources and targets for translation), finished with its checksum and reader
// positions; leftovers of an interrupted run removed; a finished shard checked against its entry.
import * as fs from 'fs';
import * as path from 'path';
import { fileDigest } from '../io';
import { Position } from './stream';
import { Tokenizer } from './tokenizer';
import { ShardEntry, SplitName } from './corpus-manifest';
import { DocSource } from './corpus-sources';

/**
 * A token shard being written (the engine's .tok format: native/data/token_stream.h): tokens are appended as
 * batches are encoded, to a temporary file; finish() writes the header, fsyncs and renames it into place, so a
 * shard is either whole or absent. Memory holds one batch, not the shard.
 */
export class ShardFile {
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

export const SHARD_HEADER = 32;

/** The shards one split is writing: one (documents), or two (the sources and targets of pairs). */
export class ShardSet {
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

export interface WorkArea {
  /** Where this job's shards, progress.json and documents.tsv go: the corpus directory, or part-I-of-N/ in it. */
  dir: string;
  /** Shard paths are relative to the corpus directory. */
  prefix: string;
  part?: number;
  parts: number;
}

/** A shard's file names: train-00000.tok, or train-00000.src.tok and train-00000.tgt.tok for pairs. */
export function shardNames(kind: DocSource['kind'], split: SplitName, n: number): string[] {
  const stem = `${split}-${String(n).padStart(5, '0')}`;
  return kind === 'translate' ? [`${stem}.src.tok`, `${stem}.tgt.tok`] : [`${stem}.tok`];
}

export const SHARD_FILE = /^(train|valid)-\d{5}(\.src|\.tgt)?\.tok$/;

/** A split's next shard set, its files under `root`. */
export async function openShardSet(root: string, files: string[], start: Position, tok: Tokenizer): Promise<ShardSet> {
  return new ShardSet(await Promise.all(files.map((f) => ShardFile.create(path.join(root, f), start, tok.vocabSize))));
}

/** Finishes a shard (header, fsync, rename), then reads it back for its digest, checking its size. */
export async function finishFile(shard: ShardFile): Promise<{ sha256: string; bytes: number; tokens: number; tokenBytes: number }> {
  const info = await shard.finish();
  const digest = await fileDigest(shard.target);
  const expected = SHARD_HEADER + info.tokens * info.tokenBytes;
  if (digest.bytes !== expected) throw new Error(`${shard.target}: ${digest.bytes} bytes on disk after writing ${expected}`);
  return { ...digest, ...info };
}

/** The entry of a finished shard (and its targets' shard for pairs); `files` are the paths relative to the corpus. */
export async function finishShards(files: string[], set: ShardSet, end: Position, part: number | undefined): Promise<ShardEntry> {
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
export function removeLeftovers(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir)) if (/\.tmp/.test(f) && !f.startsWith('.')) fs.rmSync(path.join(dir, f), { force: true });
}

/** Whether a shard (and its targets' shard) is on disk with the size and sha256 its entry names. */
export async function shardIntact(root: string, e: ShardEntry): Promise<boolean> {
  for (const f of e.target ? [e, e.target] : [e]) {
    const file = path.join(root, f.file);
    if (!fs.existsSync(file) || fs.statSync(file).size !== f.bytes || (await fileDigest(file)).sha256 !== f.sha256) return false;
  }
  return true;
}
