// The service's micro-batcher on its own: batch limits, the wait window, at most one full batch handed over
// behind the running one, the bounded queue, failures reaching every caller of a batch, and close() answering
// what was admitted.
import { ClosedError, MicroBatcher, QueueFullError } from '../lib/serve/batcher';
import { lengthParts } from '../lib/serve/models';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A runBatch that records its batches and takes `ms` per call; doubles each input. */
function recorder(ms = 5) {
  const batches: number[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const run = async (items: number[]) => {
    batches.push(items);
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    await sleep(ms);
    inFlight--;
    return items.map((x) => x * 2);
  };
  return { batches, run, maxInFlight: () => maxInFlight };
}

test('concurrent inputs form batches of at most maxBatch, at most two calls in flight, answers in order', async () => {
  const r = recorder(10);
  const b = new MicroBatcher<number, number>({ maxBatch: 4, maxWaitMs: 5, maxQueue: 100 }, r.run);
  const inputs = Array.from({ length: 10 }, (_, i) => i);
  const outs = await Promise.all(inputs.flatMap((x) => b.submit([x])));
  expect(outs).toEqual(inputs.map((x) => x * 2));
  expect(r.batches.map((x) => x.length)).toEqual([4, 4, 2]);
  expect(r.batches.flat()).toEqual(inputs); // first come, first served
  expect(r.maxInFlight()).toBe(2); // [5..8] was full, so it went behind [1..4] at once; [9, 10] waited for both
});

test('a full batch is handed over at once while one runs; a partial one waits for it to end', async () => {
  const r = recorder(20);
  const b = new MicroBatcher<number, number>({ maxBatch: 2, maxWaitMs: 1000, maxQueue: 100 }, r.run);
  const all = [...b.submit([1, 2])]; // full: runs at once, without the 1 s window
  expect(r.batches).toEqual([[1, 2]]);
  all.push(...b.submit([3])); // partial: waits for [1, 2] to end
  expect(r.batches).toEqual([[1, 2]]);
  expect(b.depth).toBe(1);
  all.push(...b.submit([4])); // now full: handed over behind [1, 2], still counted as waiting
  expect(r.batches).toEqual([
    [1, 2],
    [3, 4],
  ]);
  expect(b.depth).toBe(2);
  all.push(...b.submit([5, 6])); // two in flight: even a full batch waits in the queue
  expect(r.batches).toHaveLength(2);
  expect(b.depth).toBe(4);
  expect(await Promise.all(all)).toEqual([2, 4, 6, 8, 10, 12]);
  expect(r.batches).toEqual([
    [1, 2],
    [3, 4],
    [5, 6],
  ]);
  expect(r.maxInFlight()).toBe(2);
  expect(b.depth).toBe(0);
});

test('maxBatch 1: every input is its own batch, handed over without the window, at most two in flight', async () => {
  const r = recorder(5);
  const b = new MicroBatcher<number, number>({ maxBatch: 1, maxWaitMs: 1000, maxQueue: 100 }, r.run);
  const outs = [1, 2, 3, 4].flatMap((x) => b.submit([x]));
  expect(r.batches).toEqual([[1], [2]]); // synchronously: no timer was waited for
  expect(await Promise.all(outs)).toEqual([2, 4, 6, 8]);
  expect(r.batches).toEqual([[1], [2], [3], [4]]);
  expect(r.maxInFlight()).toBe(2);
});

test('a lone input waits at most maxWaitMs for company; inputs arriving during a call go next, together', async () => {
  const r = recorder(30);
  const b = new MicroBatcher<number, number>({ maxBatch: 8, maxWaitMs: 20, maxQueue: 100 }, r.run);
  const t0 = Date.now();
  const first = b.submit([1])[0];
  await sleep(25); // the window closed: [1] is running
  const later = [2, 3, 4].flatMap((x) => b.submit([x]));
  expect(await first).toBe(2);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(45); // 20 ms window + 30 ms call (timers may only be late)
  await Promise.all(later);
  expect(r.batches).toEqual([[1], [2, 3, 4]]);
});

test('maxWaitMs 0 runs what is queued at once', async () => {
  const r = recorder(1);
  const b = new MicroBatcher<number, number>({ maxBatch: 8, maxWaitMs: 0, maxQueue: 100 }, r.run);
  await Promise.all(b.submit([1, 2, 3]));
  expect(r.batches).toEqual([[1, 2, 3]]);
});

test('the queue is bounded: a request that does not fit is refused whole, and the rest are answered', async () => {
  const r = recorder(20);
  const b = new MicroBatcher<number, number>({ maxBatch: 2, maxWaitMs: 0, maxQueue: 3 }, r.run);
  const running = b.submit([1, 2]); // taken at once into the running batch
  const queued = b.submit([3, 4]); // full: handed over behind it, and still counted as waiting
  expect(b.depth).toBe(2);
  expect(() => b.submit([5, 6])).toThrow(QueueFullError);
  expect(() => b.submit([5, 6])).toThrow(/queue is full \(2 waiting, maxQueue 3\)/);
  const fits = b.submit([7]);
  expect(await Promise.all([...running, ...queued, ...fits])).toEqual([2, 4, 6, 8, 14]);
  expect(r.batches.flat()).not.toContain(5);
});

test('a failing call rejects every input of its batch, and the next batch still runs', async () => {
  let calls = 0;
  const b = new MicroBatcher<number, number>({ maxBatch: 2, maxWaitMs: 0, maxQueue: 10 }, async (items) => {
    if (calls++ === 0) throw new Error('engine: out of memory');
    return items;
  });
  const [a, c] = b.submit([1, 2]);
  const [d] = b.submit([3]);
  await expect(a).rejects.toThrow('engine: out of memory');
  await expect(c).rejects.toThrow('engine: out of memory');
  await expect(d).resolves.toBe(3);
  const wrong = new MicroBatcher<number, number>({ maxBatch: 2, maxWaitMs: 0, maxQueue: 10 }, async () => [1]);
  await expect(Promise.all(wrong.submit([1, 2]))).rejects.toThrow('runBatch returned 1 outputs for 2 inputs');
});

test('close() answers every admitted input, then refuses new ones', async () => {
  const r = recorder(10);
  const b = new MicroBatcher<number, number>({ maxBatch: 2, maxWaitMs: 1000, maxQueue: 10 }, r.run);
  const admitted = [1, 2, 3, 4, 5].flatMap((x) => b.submit([x]));
  const closing = b.close(); // does not wait out the 1 s window
  expect(() => b.submit([6])).toThrow(ClosedError);
  await closing;
  expect(await Promise.all(admitted)).toEqual([2, 4, 6, 8, 10]);
  expect(r.batches).toEqual([[1, 2], [3, 4], [5]]);
  await b.close(); // idle: returns at once
});

test('bad options name the field', () => {
  const run = async (x: number[]) => x;
  expect(() => new MicroBatcher({ maxBatch: 0, maxWaitMs: 0, maxQueue: 1 }, run)).toThrow('maxBatch: must be an integer >= 1, got 0');
  expect(() => new MicroBatcher({ maxBatch: 1, maxWaitMs: -1, maxQueue: 1 }, run)).toThrow('maxWaitMs: must be >= 0, got -1');
  expect(() => new MicroBatcher({ maxBatch: 1, maxWaitMs: 0, maxQueue: 1.5 }, run)).toThrow('maxQueue: must be an integer >= 1, got 1.5');
});

test("an aborted request's waiting inputs leave the queue and are never run; the batch in flight finishes", async () => {
  const r = recorder(40);
  const b = new MicroBatcher<number, number>({ maxBatch: 8, maxWaitMs: 0, maxQueue: 100 }, r.run);
  const running = b.submit([1])[0]; // runs at once: [1] is in flight
  const abort = new AbortController();
  const late = b.submit([2, 3], abort.signal);
  const other = b.submit([4])[0];
  expect(b.depth).toBe(3);
  abort.abort(new Error('timed out'));
  for (const p of late) await expect(p).rejects.toThrow('timed out');
  expect(b.depth).toBe(1); // only [4] waits
  expect(await running).toBe(2);
  expect(await other).toBe(8);
  expect(r.batches).toEqual([[1], [4]]);
  // An aborted signal admits nothing; close() still resolves once idle.
  expect(() => b.submit([5], abort.signal)).toThrow('timed out');
  await b.close();
});

test('aborting the only waiting request empties the queue, and close() resolves', async () => {
  const r = recorder(1);
  const b = new MicroBatcher<number, number>({ maxBatch: 8, maxWaitMs: 1000, maxQueue: 100 }, r.run);
  const abort = new AbortController();
  const [p] = b.submit([1], abort.signal); // waits for the 1 s window
  abort.abort(new Error('gone'));
  await expect(p).rejects.toThrow('gone');
  await b.close();
  expect(r.batches).toEqual([]);
});

test("a classify batch's parts: sorted lengths cut where a separate call costs less than the padding it saves", () => {
  expect(lengthParts(Array(16).fill(20))).toEqual([16]); // equal lengths: one call
  // 15 short inputs and one long: padded together 16 x 128 slots; apart 15 x 16 + 1 x 128 plus one more call.
  expect(lengthParts([...Array(15).fill(16), 128])).toEqual([15, 16]);
  expect(lengthParts([10, 11, 12, 13])).toEqual([4]); // what a part would save is less than a call
  expect(lengthParts([1, 1, 2, 2, 3], 0)).toEqual([2, 4, 5]); // free calls: one part per length
  expect(lengthParts([1, 5, 100], 1e9)).toEqual([3]); // dear calls: one part
  expect(lengthParts([7])).toEqual([1]);
});
