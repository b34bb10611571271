// The inference service (lib/serve, started by `trainlarge serve` and examples/service/main.js): real models trained here on real text, served on
// 127.0.0.1, hit with concurrent HTTP requests whose every answer is checked against the model called
// directly; bad requests, a full queue, the event loop during inference, and graceful shutdown.
import * as fs from 'fs';
import * as path from 'path';
import { Dataset, MlmDataset, prune, quantize, Tokenizer, Trainer, Transformer } from '../lib';
import { ClassificationTask } from '../lib/data/task';
import { classificationExamples, englishProseDocuments } from '../lib/data/builtin/sources';
import { readMetric } from '../bench/report';
import { createService, Service } from '../lib/serve/server';
import { startService, tempDir } from './helpers';

jest.setTimeout(300_000);

let dir: string;
let tok: Tokenizer;
let task: ClassificationTask;
let testTexts: { text: string; label: number }[];
let service: Service;
let base: string;

const MAXLEN = 48;

async function post(url: string, body: unknown, raw = false): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: raw ? (body as string) : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null, headers: r.headers };
}

function softmax(row: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(row));
  const e = Array.from(row, (v) => Math.exp(v - max));
  const z = e.reduce((a, v) => a + v, 0);
  return e.map((v) => v / z);
}

/** The classifier's probabilities for one text, one sequence at a time, no service and no padding (cut as truncate: true does). */
async function direct(model: Transformer, text: string): Promise<number[]> {
  const ids = [tok.special.cls, ...Array.from(tok.encode(text)).slice(0, MAXLEN - 2), tok.special.eos];
  const { data } = await model.predict([ids]);
  return softmax(data);
}

beforeAll(async () => {
  dir = tempDir('service');
  const docs = (await englishProseDocuments()).train.slice(0, 120).map((d) => d.text);
  tok = await Tokenizer.train({ texts: docs, vocabSize: 1000 });
  const tokFile = path.join(dir, 'tokenizer.model');
  await tok.save(tokFile);

  // A masked-LM pretrained briefly on real prose.
  const mlm = await Transformer.create(
    { task: 'mlm', vocabSize: tok.vocabSize, maxLen: MAXLEN, dModel: 64, layers: 2, heads: 4 },
    { seed: 1 },
  );
  const pre = new Trainer(mlm, { maxSteps: 60, batchSize: 16, lr: 2e-3, warmupSteps: 5 });
  await pre.fit(
    MlmDataset.fromDocuments(
      docs.map((d) => tok.encode(d)),
      tok,
      { maxLen: MAXLEN },
    ),
    { evalEvery: 1000 },
  );
  pre.dispose();
  await mlm.save(path.join(dir, 'mlm'));
  mlm.dispose();

  // A sentiment classifier fine-tuned on the real task; its label names saved beside it.
  task = await Dataset.classification({ source: 'sentiment', tokenizer: tok, maxLen: MAXLEN });
  const clf = await Transformer.create(
    { task: 'classify', numLabels: 2, vocabSize: tok.vocabSize, maxLen: MAXLEN, dModel: 64, layers: 2, heads: 4, dropout: 0 },
    { seed: 3 },
  );
  const ft = new Trainer(clf, { maxSteps: 80, batchSize: 32, lr: 1e-3, warmupSteps: 5 });
  await ft.fit(task.train, { evalEvery: 1000 });
  ft.dispose();
  await clf.save(path.join(dir, 'clf'), { labels: task.labels });
  // The same classifier pruned to 50% and quantized to 4 bits: a packed file.
  const small = await quantize(await prune(clf, { sparsity: 0.5 }), { bits: 4 });
  await small.save(path.join(dir, 'clf-small'), { labels: task.labels });
  small.dispose();
  clf.dispose();
  for (const d of ['mlm', 'clf', 'clf-small']) fs.copyFileSync(tokFile, path.join(dir, d, 'tokenizer.model'));

  // Real sentences from the task's test split, which the classifier never saw.
  testTexts = (await classificationExamples('sentiment')).splits.test.map((e) => ({ text: e.text, label: e.label }));
  service = await createService({
    models: [
      { name: 'mlm', dir: path.join(dir, 'mlm') },
      { name: 'clf', dir: path.join(dir, 'clf') },
      { name: 'clf-int8', dir: path.join(dir, 'clf'), int8: true },
      { name: 'clf-small', dir: path.join(dir, 'clf-small') },
    ],
    maxBatch: 16,
    maxWaitMs: 5,
  });
  await service.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = service.app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  base = `http://127.0.0.1:${addr.port}`;
});

afterAll(async () => {
  await service?.close();
  task?.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('serving', () => {
  test('lists its models: task, labels, compression, int8', async () => {
    const r = await fetch(`${base}/v1/models`);
    const { models } = (await r.json()) as { models: any[] };
    const by = Object.fromEntries(models.map((m) => [m.name, m]));
    expect(Object.keys(by).sort()).toEqual(['clf', 'clf-int8', 'clf-small', 'mlm']);
    expect(by.mlm.task).toBe('mlm');
    expect(by.clf.labels).toEqual(task.labels);
    expect(by.clf.int8).toBe(false);
    expect(by['clf-int8'].int8).toBe(true);
    expect(by.clf.compression).toBeNull();
    const pruned = Object.values<{ sparsity: number }>(by['clf-small'].compression.pruned);
    expect(pruned.length).toBe(9); // 2 layers x 4 matrices and the token embedding
    for (const p of pruned) expect(p.sparsity).toBeCloseTo(0.5, 2);
    expect(Object.values(by['clf-small'].compression.quantized).every((q: any) => q.bits === 4)).toBe(true);
    expect((await (await fetch(`${base}/health`)).json()).status).toBe('ok');
  });

  test('64 concurrent classify requests: every answer equals the model called alone, and they were batched', async () => {
    const model = await Transformer.load(path.join(dir, 'clf'));
    const batchesBefore = readMetric(await (await fetch(`${base}/metrics`)).text(), 'trainlarge_batch_size_count', 'model="clf"');
    const picked = testTexts.slice(0, 64);
    const t0 = Date.now();
    const answers = await Promise.all(picked.map((x) => post(`${base}/v1/models/clf/classify`, { text: x.text, truncate: true })));
    expect(Date.now() - t0).toBeLessThan(60_000);
    let correct = 0;
    for (let i = 0; i < picked.length; i++) {
      expect(answers[i].status).toBe(200);
      const [r] = answers[i].body.results;
      const p = await direct(model, picked[i].text);
      // Padding inside a batch must not change an answer.
      expect(r.scores.negative ?? r.scores[task.labels[0]]).toBeCloseTo(p[0], 4);
      expect(r.label).toBe(task.labels[p.indexOf(Math.max(...p))]);
      expect(r.score).toBeCloseTo(Math.max(...p), 4);
      if (r.label === task.labels[picked[i].label]) correct++;
    }
    // The fine-tuned model learned something real: better than chance on unseen sentences.
    expect(correct / picked.length).toBeGreaterThan(0.55);
    const m = await (await fetch(`${base}/metrics`)).text();
    const batches = readMetric(m, 'trainlarge_batch_size_count', 'model="clf"') - batchesBefore;
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(64); // more than one input per native call on average
    expect(readMetric(m, 'trainlarge_requests_total', 'model="clf",route="/v1/models/:name/classify",status="200"')).toBeGreaterThanOrEqual(
      64,
    );
    model.dispose();
  });

  test('a request with many texts (and pairs) answers each in order', async () => {
    const model = await Transformer.load(path.join(dir, 'clf'));
    const texts = testTexts.slice(100, 120).map((x) => x.text);
    const r = await post(`${base}/v1/models/clf/classify`, { text: texts, truncate: true });
    expect(r.status).toBe(200);
    expect(r.body.results).toHaveLength(20);
    for (let i = 0; i < texts.length; i++) expect(r.body.results[i].score).toBeCloseTo(Math.max(...(await direct(model, texts[i]))), 4);
    const short = testTexts.map((x) => x.text).filter((t) => tok.encode(t).length <= 18);
    const pair = await post(`${base}/v1/models/clf/classify`, { text: [short[0], short[1]], pair: [short[2], short[3]] });
    expect(pair.status).toBe(200);
    const ids = [tok.special.cls, ...tok.encode(short[0]), tok.special.eos, tok.special.eos, ...tok.encode(short[2]), tok.special.eos];
    expect(pair.body.results[0].scores[task.labels[1]]).toBeCloseTo(softmax((await model.predict([ids])).data)[1], 4);
    model.dispose();
  });

  test("fill-mask: concurrent requests get the model's own top-k at each <mask>", async () => {
    const model = await Transformer.load(path.join(dir, 'mlm'));
    const sentences = testTexts.slice(0, 24).map((x) => x.text.split(' ').slice(0, 12));
    const masked = sentences.map((w, i) => w.map((x, j) => (j === 1 + (i % Math.max(1, w.length - 2)) ? '<mask>' : x)).join(' '));
    const answers = await Promise.all(masked.map((text, i) => post(`${base}/v1/models/mlm/fill-mask`, { text, topK: 1 + (i % 5) })));
    for (let i = 0; i < masked.length; i++) {
      expect(answers[i].status).toBe(200);
      const [r] = answers[i].body.results;
      const [before, after] = masked[i].split('<mask>');
      const ids = [tok.special.cls, ...tok.encode(before), tok.special.mask, ...tok.encode(after), tok.special.eos];
      const [own] = await model.fillMask([ids], { topK: 1 + (i % 5) });
      expect(r.masks).toHaveLength(1);
      expect(r.masks[0].position).toBe(own.position);
      // transformers' fill-mask fields: token the id, token_str the decoded word, sequence the text with it; piece beside them.
      expect(r.masks[0].candidates.map((c: any) => c.token)).toEqual(own.ids);
      r.masks[0].candidates.forEach((c: any, k: number) => {
        expect(Object.keys(c).sort()).toEqual(['piece', 'score', 'sequence', 'token', 'token_str']);
        expect(c.score).toBeCloseTo(own.probs[k], 4);
        expect(c.piece).toBe(tok.piece(c.token));
        expect(c.token_str).toBe(tok.decode([c.token]));
        expect(c.token_str).not.toContain('▁');
        expect(c.sequence).toBe(tok.decode([...tok.encode(before), c.token, ...tok.encode(after)]));
      });
      expect(r.sequence).toBe(r.masks[0].candidates[0].sequence);
      expect(r.sequence).not.toContain('<mask>');
    }
    // Two masks in one text, several texts in one request.
    const two = await post(`${base}/v1/models/mlm/fill-mask`, { text: ['The <mask> of the <mask> .', 'It was <mask> .'] });
    expect(two.status).toBe(200);
    expect(two.body.results[0].masks).toHaveLength(2);
    expect(two.body.results[1].masks).toHaveLength(1);
    expect(two.body.results[0].masks[0].candidates).toHaveLength(5);
    model.dispose();
  });

  test("Transformer.fillMask equals the softmax top-k of predict's full logits, and checks its arguments", async () => {
    const model = await Transformer.load(path.join(dir, 'mlm'));
    const seqs = testTexts.slice(0, 3).map((x) => [tok.special.cls, ...Array.from(tok.encode(x.text)).slice(0, 20), tok.special.eos]);
    seqs[0][3] = tok.special.mask;
    seqs[2][1] = tok.special.mask;
    seqs[2][5] = tok.special.mask;
    const fm = await model.fillMask(seqs, { topK: 4 });
    expect(fm.map((p) => [p.sequence, p.position])).toEqual([
      [0, 3],
      [2, 1],
      [2, 5],
    ]);
    const { data, dims } = await model.predict(seqs);
    const [, T, V] = dims;
    for (const p of fm) {
      const probs = softmax(data.subarray((p.sequence * T + p.position) * V, (p.sequence * T + p.position + 1) * V));
      const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a]).slice(0, 4);
      expect(p.ids).toEqual(order);
      p.probs.forEach((q, k) => expect(q).toBeCloseTo(probs[order[k]], 5));
    }
    await expect(model.fillMask(seqs, { topK: 0 })).rejects.toThrow(/topK: must be an integer in 1\.\.1000, got 0/);
    await expect(model.fillMask(seqs, { positions: [[3, 0]] })).rejects.toThrow(/positions: \[3, 0\] is outside the batch/);
    expect(await model.fillMask([[1, 5, 2]])).toEqual([]);
    model.dispose();
  });

  test('int8 and compressed models answer like their fp32 and directly-loaded selves', async () => {
    // Every test sentence, in requests of 64 (the default maxItems): int8 gives the fp32 label on >= 98%.
    const all = testTexts.map((x) => x.text);
    const classify = async (model: string): Promise<any[]> => {
      const out: any[] = [];
      for (let i = 0; i < all.length; i += 64) {
        const r = await post(`${base}/v1/models/${model}/classify`, { text: all.slice(i, i + 64), truncate: true });
        expect(r.status).toBe(200);
        out.push(...r.body.results);
      }
      return out;
    };
    const fp32 = await classify('clf');
    const int8 = await classify('clf-int8');
    const agree = fp32.filter((r: any, i: number) => r.label === int8[i].label).length;
    expect(agree / all.length).toBeGreaterThanOrEqual(0.98);
    for (let i = 0; i < all.length; i++) expect(Math.abs(fp32[i].score - int8[i].score)).toBeLessThan(0.05);
    const texts = all.slice(200, 240);
    const small = await Transformer.load(path.join(dir, 'clf-small'));
    const served = (await post(`${base}/v1/models/clf-small/classify`, { text: texts, truncate: true })).body.results;
    for (let i = 0; i < texts.length; i++) expect(served[i].score).toBeCloseTo(Math.max(...(await direct(small, texts[i]))), 4);
    small.dispose();
  });
});

describe('bad requests get 400 (413 past a limit) with a message, and the server keeps serving', () => {
  const cases: [string, string, unknown, RegExp, number?][] = [
    ['bad JSON', 'clf/classify', '{"text": "unterminated', /JSON/i],
    [
      'text is a number',
      'clf/classify',
      { text: 5 },
      /^body\/text: must be a string of 1\.\.10000 characters, or an array of 1\.\.64 such strings$/,
    ],
    ['text array holds a number', 'clf/classify', { text: ['fine', 7] }, /^body\/text\[1\]: must be a string of 1\.\.10000 characters$/],
    ['text missing', 'clf/classify', {}, /text/],
    [
      'unknown field',
      'clf/classify',
      { text: 'a', temperature: 1 },
      /^body: unknown field 'temperature' \(allowed: text, pair, truncate\)$/,
    ],
    ['empty text', 'clf/classify', { text: '' }, /text/],
    [
      'too many characters',
      'clf/classify',
      { text: 'a'.repeat(10_001) },
      /^body\/text: longer than maxTextChars \(10000 characters\)$/,
      413,
    ],
    ['too many texts', 'clf/classify', { text: Array(65).fill('a') }, /^body\/text: more than maxItems \(64\) texts/, 413],
    ['truncate not a boolean', 'clf/classify', { text: 'a', truncate: 'yes' }, /^body\/truncate: must be boolean$/],
    ['pair of another shape', 'clf/classify', { text: ['a', 'b'], pair: ['c'] }, /pair.*same shape/],
    ['topK zero', 'mlm/fill-mask', { text: 'a <mask>', topK: 0 }, /^body\/topK: must be >= 1$/],
    ['topK a string', 'mlm/fill-mask', { text: 'a <mask>', topK: '5' }, /topK/],
    ['no <mask>', 'mlm/fill-mask', { text: 'nothing hidden here' }, /text\[0\].*<mask>/],
    ['classify on a masked-LM', 'mlm/classify', { text: 'a' }, /masked-LM.*fill-mask/],
    ['fill-mask on a classifier', 'clf/fill-mask', { text: 'a <mask>' }, /classifier.*classify/],
  ];
  test.each(cases)('%s', async (_name, route, body, message, status = 400) => {
    const r = await post(`${base}/v1/models/${route}`, body, typeof body === 'string');
    expect(r.status).toBe(status);
    expect(r.body.error).toMatch(message);
  });

  test('over-long inputs: 400 naming the token count and maxLen, or cut with truncate', async () => {
    const long = testTexts
      .slice(0, 30)
      .map((x) => x.text)
      .join(' ');
    const r = await post(`${base}/v1/models/clf/classify`, { text: ['short and fine', long] });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/^body\/text\[1\]: \d+ tokens .*maxLen 48/);
    const cut = await post(`${base}/v1/models/clf/classify`, { text: ['short and fine', long], truncate: true });
    expect(cut.status).toBe(200);
    const model = await Transformer.load(path.join(dir, 'clf'));
    const ids = [tok.special.cls, ...Array.from(tok.encode(long)).slice(0, MAXLEN - 2), tok.special.eos];
    expect(cut.body.results[1].score).toBeCloseTo(Math.max(...softmax((await model.predict([ids])).data)), 4);
    model.dispose();
    const mlm = await post(`${base}/v1/models/mlm/fill-mask`, { text: `${long} <mask>` });
    expect(mlm.status).toBe(400);
    expect(mlm.body.error).toMatch(/maxLen 48/);
  });

  test('unknown model: 404; the server still answers afterwards', async () => {
    const r = await post(`${base}/v1/models/nope/classify`, { text: 'a' });
    expect(r.status).toBe(404);
    expect(r.body.error).toMatch(/'nope' is not loaded \(loaded: mlm, clf, clf-int8, clf-small\)/);
    // A name is looked up among the loaded models only, never read as a path.
    for (const name of ['..%2Fclf', '%2E%2E', '..%2F..%2Fetc%2Fpasswd']) {
      expect((await post(`${base}/v1/models/${name}/classify`, { text: 'a' })).status).toBe(404);
    }
    expect((await post(`${base}/v1/models/clf/classify`, { text: 'still here' })).status).toBe(200);
  });

  test('a bad config names the field', async () => {
    await expect(createService({ models: [{ name: 'x', dir }], maxBatch: 0 })).rejects.toThrow(/maxBatch/);
    await expect(createService({ models: [] })).rejects.toThrow(/models/);
    await expect(createService({ models: [{ name: 'x', dir, device: 'tpu' as 'cpu' }] })).rejects.toThrow(/models\.0\.device/);
    await expect(createService({ models: [{ name: 'x', dir: path.join(dir, 'clf'), int8: true, device: 'cuda' }] })).rejects.toThrow(
      /models\.x: int8 runs on CPU only/,
    );
    // This build has no CUDA: the engine's own message says so.
    await expect(createService({ models: [{ name: 'x', dir: path.join(dir, 'clf'), device: 'cuda' }] })).rejects.toThrow(/CUDA/);
    await expect(
      createService({ models: [{ name: 'x', dir: path.join(dir, 'clf'), tokenizer: path.join(dir, 'missing.model') }] }),
    ).rejects.toThrow(/models\.x\.tokenizer: .*missing\.model does not exist/);
    await expect(createService({ models: [{ name: 'x', dir: path.join(dir, 'clf'), labels: ['a', 'b', 'c'] }] })).rejects.toThrow(
      /models\.x\.labels: 3 names for a model with 2 labels/,
    );
  });
});

describe('load', () => {
  test('a full queue answers 503 with Retry-After; everything admitted is answered', async () => {
    const tight = await createService({ models: [{ name: 'clf', dir: path.join(dir, 'clf') }], maxBatch: 1, maxWaitMs: 0, maxQueue: 4 });
    await tight.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (tight.app.server.address() as { port: number }).port;
    // Enough requests at once that some arrive while the queue is full whatever the machine's load (40 were
    // all admitted once on a busy machine: each was answered before the next was read).
    const texts = testTexts.slice(0, 200).map((x) => x.text);
    const answers = await Promise.all(
      texts.map((text) => post(`http://127.0.0.1:${port}/v1/models/clf/classify`, { text, truncate: true })),
    );
    const refused = answers.filter((a) => a.status === 503);
    const ok = answers.filter((a) => a.status === 200);
    expect(refused.length + ok.length).toBe(texts.length);
    expect(refused.length).toBeGreaterThan(0);
    expect(ok.length).toBeGreaterThan(4);
    for (const a of refused) {
      expect(a.headers.get('retry-after')).toBe('1');
      expect(a.body.error).toMatch(/queue is full.*maxQueue 4/);
    }
    const m = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(readMetric(m, 'trainlarge_rejected_total', 'model="clf"')).toBe(refused.length);
    expect(readMetric(m, 'trainlarge_inputs_admitted_total', 'model="clf"')).toBe(ok.length);
    await tight.close();
  });

  test('the event loop keeps answering while a long batch runs', async () => {
    // A larger model with full-length inputs, so one native call takes a while.
    const bigDir = path.join(dir, 'big');
    const big = await Transformer.create(
      { task: 'classify', numLabels: 2, vocabSize: tok.vocabSize, maxLen: 128, dModel: 256, layers: 4, heads: 4 },
      { seed: 5 },
    );
    await big.save(bigDir, { labels: task.labels });
    big.dispose();
    fs.copyFileSync(path.join(dir, 'tokenizer.model'), path.join(bigDir, 'tokenizer.model'));
    const svc = await createService({ models: [{ name: 'big', dir: bigDir }], maxBatch: 64, maxWaitMs: 20 });
    await svc.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(svc.app.server.address() as { port: number }).port}`;
    const long = testTexts
      .slice(0, 40)
      .map((x) => x.text)
      .join(' ');
    let batchDone = 0;
    const batch = post(`${url}/v1/models/big/classify`, { text: Array(64).fill(long), truncate: true }).then((r) => {
      batchDone = Date.now();
      return r;
    });
    await new Promise((r) => setTimeout(r, 60)); // the batch has started
    const healthTimes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = Date.now();
      expect((await fetch(`${url}/health`)).status).toBe(200);
      healthTimes.push(Date.now() - t);
    }
    const healthDone = Date.now();
    expect((await batch).status).toBe(200);
    // All five health checks were answered while the 64 x 128 batch was still running.
    expect(batchDone).toBeGreaterThan(healthDone);
    await svc.close();
  });

  test('SIGTERM: the process answers every admitted request, then exits 0', async () => {
    const main = path.join(__dirname, '..', 'dist', 'examples', 'service', 'main.js');
    const { child, address, out, exited } = await startService(main, [
      '--model',
      `clf=${path.join(dir, 'clf')}`,
      '--port',
      '0',
      '--max-batch',
      '2',
      '--max-wait-ms',
      '0',
    ]);
    const texts = testTexts.slice(0, 24).map((x) => x.text);
    const answers = Promise.all(texts.map((text) => post(`${address}/v1/models/clf/classify`, { text, truncate: true })));
    // Wait until the server has admitted all 24 (so they are in flight), then ask it to stop.
    for (let i = 0; i < 400; i++) {
      const m = await (await fetch(`${address}/metrics`)).text();
      if (readMetric(m, 'trainlarge_inputs_admitted_total', 'model="clf"') === 24) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGTERM');
    const done = await answers;
    expect(done.map((a) => a.status)).toEqual(texts.map(() => 200));
    expect(await exited).toBe(0);
    expect(out()).toMatch(/"event":"shutdown","signal":"SIGTERM"/);
    expect(out()).toMatch(/"event":"closed"/);
    await expect(fetch(`${address}/health`)).rejects.toThrow();
  });
});
