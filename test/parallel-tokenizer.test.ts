// Dataset.parallel's shared tokenizer is trained once per train split and options, kept in the cache and
// loaded by the next call with the same pairs and options (real data: a bible-en-es subset).
import * as fs from 'fs';
import * as path from 'path';
import { Dataset, ParallelTask, Tokenizer } from '../lib';
import { sharedTokenizerDir } from '../lib/data/translation';

jest.setTimeout(120_000);

// A seed no earlier run used, so the first call below finds no cache entry and trains.
const seed = (process.pid * 7919 + Date.now()) % 0xffffffff;
const opts = { source: 'bible-en-es', vocabSize: 700, maxLen: 64, maxPairs: 2500, maxChars: 200, tokenizerOptions: { seed } } as const;
const made: ParallelTask[] = [];

async function load(o: Parameters<typeof Dataset.parallel>[0]): Promise<{ task: ParallelTask; seconds: number }> {
  const started = Date.now();
  const task = await Dataset.parallel(o);
  made.push(task);
  return { task, seconds: (Date.now() - started) / 1000 };
}

const vocab = (t: Tokenizer) => t.pieces(Int32Array.from({ length: t.vocabSize }, (_, i) => i));

afterAll(() => {
  for (const t of made) {
    if (t.tokenizerCache) fs.rmSync(sharedTokenizerDir(t.tokenizerCache.key), { recursive: true, force: true });
    t.dispose();
  }
});

test('a second Dataset.parallel with the same pairs and options loads the cached tokenizer instead of training one', async () => {
  const first = await load(opts);
  const c1 = first.task.tokenizerCache!;
  expect(c1.reused).toBe(false);
  expect(path.dirname(c1.file)).toBe(sharedTokenizerDir(c1.key));
  const mtime = fs.statSync(c1.file).mtimeMs;

  const second = await load(opts);
  const c2 = second.task.tokenizerCache!;
  console.log(`shared tokenizer: trained in ${first.seconds.toFixed(2)} s, loaded from the cache in ${second.seconds.toFixed(2)} s`);
  expect(c2).toEqual({ file: c1.file, key: c1.key, reused: true });
  expect(fs.statSync(c2.file).mtimeMs).toBe(mtime); // not rewritten
  expect(second.task.tokenizer.sha256).toBe(first.task.tokenizer.sha256);
  expect(vocab(second.task.tokenizer)).toEqual(vocab(first.task.tokenizer));
  // The same ids for the same pairs.
  expect(Array.from(second.task.tokenizer.encode(first.task.pairs.test.target[0]))).toEqual(
    Array.from(first.task.tokenizer.encode(first.task.pairs.test.target[0])),
  );

  // Other options or other train pairs: another entry, trained.
  const otherSize = await load({ ...opts, vocabSize: 600 });
  expect(otherSize.task.tokenizerCache!.reused).toBe(false);
  expect(otherSize.task.tokenizerCache!.key).not.toBe(c1.key);
  expect(otherSize.task.tokenizer.vocabSize).toBe(600);
  const otherPairs = await load({ ...opts, maxPairs: 2000 });
  expect(otherPairs.task.tokenizerCache!.reused).toBe(false);
  expect(otherPairs.task.tokenizerCache!.key).not.toBe(c1.key);

  // An entry whose file was changed on disk no longer matches its checksum: trained again, not trusted.
  fs.writeFileSync(c1.file, fs.readFileSync(otherSize.task.tokenizerCache!.file));
  const third = await load(opts);
  expect(third.task.tokenizerCache!.reused).toBe(false);
  expect(third.task.tokenizer.vocabSize).toBe(700);
  expect(vocab(third.task.tokenizer)).toEqual(vocab(first.task.tokenizer)); // SentencePiece training is deterministic

  // A tokenizer you give is used as it is: no cache entry.
  const given = await load({ source: 'bible-en-es', tokenizer: first.task.tokenizer, maxLen: 64, maxPairs: 100 });
  expect(given.task.tokenizerCache).toBeUndefined();
});
