// The passes of Corpus.prepare (lib/data/corpus.ts): documents encoded into shards on every core (encodePass),
// one job's share of the inputs prepared and resumed from its progress (preparePart), the finished parts
// assembled into the manifest and documents.tsv (assemble), and a complete corpus's damaged shards rebuilt
// (repairShards).
import * as fs from 'fs';
import * as path from 'path';
import { readJson, writeJsonAtomic } from '../io';
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
import { DocSource } from './corpus-sources';
import { Position, StreamDoc } from './stream';
import { Tokenizer } from './tokenizer';

/** Characters of text encoded per native call (two are in flight: one encoding, one being read). */
const BATCH_CHARS = 4_000_000;
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
export async function preparePart(
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
export async function assemble(
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
export async function repairShards(
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
