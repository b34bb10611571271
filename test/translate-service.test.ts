// The inference service's translate route (lib/serve, examples/service/main.js): a translator trained here
// briefly on real data (bible-en-es), served on 127.0.0.1 beside its int8 and 8-bit packed selves; concurrent
// requests are micro-batched and every answer is checked against Transformer.translate of the same inputs.
import * as fs from 'fs';
import * as path from 'path';
import { ParallelTask, quantize, toInt8, Transformer } from '../lib';
import { readMetric } from '../bench/report';
import { createService, Service } from '../lib/serve/server';
import { bibleTask, startService, tempDir, trainTranslator } from './helpers';

jest.setTimeout(240_000);

const MODEL = { task: 'translate', encoderLayers: 2, decoderLayers: 2, dModel: 64, heads: 4, ffn: 256, maxLen: 64 } as const;

let dir: string;
let data: ParallelTask;
let mt: Transformer;
let sources: string[];
let service: Service;
let base: string;

async function post(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function batches(model: string): Promise<number> {
  return readMetric(await (await fetch(`${base}/metrics`)).text(), 'trainlarge_batch_size_count', `model="${model}"`);
}

beforeAll(async () => {
  dir = tempDir('mt-service');
  data = await bibleTask();
  mt = await Transformer.create({ ...MODEL, vocabSize: data.tokenizer.vocabSize }, { seed: 1 });
  await trainTranslator(mt, data.train, 250);
  await mt.save(path.join(dir, 'mt'), { tokenizer: data.tokenizer });
  const q8 = await quantize(mt, { bits: 8 });
  await q8.save(path.join(dir, 'mt-q8'), { tokenizer: data.tokenizer });
  q8.dispose();
  // A masked-LM on the same tokenizer (untrained: only its routes are checked).
  const mlm = await Transformer.create({ task: 'mlm', vocabSize: data.tokenizer.vocabSize, maxLen: 64, dModel: 32, layers: 1, heads: 2 });
  await mlm.save(path.join(dir, 'mlm'), { tokenizer: data.tokenizer });
  mlm.dispose();
  // Sources that fit maxLen (63 tokens and </s>): longer ones are a 400 without "truncate" (tested below).
  sources = data.test!.source.filter((t) => data.tokenizer.encode(t).length < MODEL.maxLen).slice(0, 48);
  service = await createService({
    models: [
      { name: 'mt', dir: path.join(dir, 'mt') },
      { name: 'mt-int8', dir: path.join(dir, 'mt'), int8: true },
      { name: 'mt-q8', dir: path.join(dir, 'mt-q8') },
      { name: 'mlm', dir: path.join(dir, 'mlm') },
    ],
    maxBatch: 16,
    maxWaitMs: 5,
  });
  await service.app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(service.app.server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await service?.close();
  mt?.dispose();
  data?.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('translate route', () => {
  test('lists translate models with their depths, compression and int8', async () => {
    const { models } = (await (await fetch(`${base}/v1/models`)).json()) as { models: any[] };
    const by = Object.fromEntries(models.map((m) => [m.name, m]));
    expect(by.mt.task).toBe('translate');
    expect(by.mt.layers).toBe(2);
    expect(by.mt.decoderLayers).toBe(2);
    expect(by.mt.compression).toBeNull();
    expect(by['mt-int8'].int8).toBe(true);
    const quantized = Object.values<{ bits: number }>(by['mt-q8'].compression.quantized);
    expect(quantized).toHaveLength(2 * 4 + 2 * 7 + 1); // the decoder's matrices too, and the shared token embedding
    expect(quantized.every((q) => q.bits === 8)).toBe(true);
    expect(by.mlm.decoderLayers).toBeUndefined();
  });

  test('48 concurrent requests are batched and each equals Transformer.translate of the same input', async () => {
    const expected = await mt.translate(sources);
    const before = await batches('mt');
    const answers = await Promise.all(sources.map((text) => post(`${base}/v1/models/mt/translate`, { text })));
    const n = (await batches('mt')) - before;
    console.log(
      `48 single-sentence requests in ${n} native batches; e.g. "${sources[0]}" -> "${answers[0].body.results[0].translation_text}"`,
    );
    for (let i = 0; i < sources.length; i++) {
      expect(answers[i].status).toBe(200);
      expect(answers[i].body.model).toBe('mt');
      expect(answers[i].body.results).toHaveLength(1);
      expect(answers[i].body.results[0].translation_text).toBe(expected[i]);
      expect(answers[i].body.results[0].translation_text.trim().length).toBeGreaterThan(0);
    }
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(sources.length); // more than one sentence per native call on average
  });

  test('many texts, nbest with scores, and mixed search options in one batch', async () => {
    const texts = sources.slice(0, 12);
    const direct = await mt.translate(texts, { beam: 3, nbest: 2, scores: true });
    const greedy = await mt.translate(texts, { beam: 1 });
    const [many, single] = await Promise.all([
      post(`${base}/v1/models/mt/translate`, { text: texts, beam: 3, nbest: 2 }),
      ...texts.map((text) => post(`${base}/v1/models/mt/translate`, { text, beam: 1 })),
    ]).then((all) => [all[0], all.slice(1)] as const);
    expect(many.status).toBe(200);
    expect(many.body.results).toHaveLength(12);
    many.body.results.forEach((r: any, i: number) => {
      expect(r.translation_text).toBe(direct[i].text);
      expect(r.score).toBeCloseTo(direct[i].score, 4);
      expect(r.nbest.map((h: any) => h.translation_text)).toEqual(direct[i].nbest.map((h) => h.text));
      expect(r.nbest[0].score).toBeGreaterThanOrEqual(r.nbest[1].score);
    });
    single.forEach((a, i) => {
      expect(a.status).toBe(200);
      expect(a.body.results[0].translation_text).toBe(greedy[i]);
      expect(a.body.results[0].nbest).toBeUndefined();
    });
  });

  test('int8 and 8-bit packed translators answer like their directly loaded selves', async () => {
    const texts = sources.slice(0, 16);
    const q8 = await Transformer.load(path.join(dir, 'mt-q8'));
    const fp32 = await Transformer.load(path.join(dir, 'mt'));
    const int8 = await toInt8(fp32);
    const [rq, ri] = await Promise.all([
      post(`${base}/v1/models/mt-q8/translate`, { text: texts }),
      post(`${base}/v1/models/mt-int8/translate`, { text: texts }),
    ]);
    expect(rq.body.results.map((r: any) => r.translation_text)).toEqual(await q8.translate(texts));
    expect(ri.body.results.map((r: any) => r.translation_text)).toEqual(await int8.translate(texts));
    for (const m of [q8, fp32, int8]) m.dispose();
  });

  test('over-long sources: 400 naming the token count and maxLen, or cut with truncate', async () => {
    const long = data.test!.source.slice(0, 12).join(' ');
    const r = await post(`${base}/v1/models/mt/translate`, { text: ['In the beginning', long] });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/^body\/text\[1\]: \d+ tokens with <\/s>, more than model 'mt' accepts \(maxLen 64\)/);
    const cut = await post(`${base}/v1/models/mt/translate`, { text: ['In the beginning', long], truncate: true });
    expect(cut.status).toBe(200);
    expect(cut.body.results.map((x: any) => x.translation_text)).toEqual(await mt.translate(['In the beginning', long]));
  });

  const cases: [string, string, unknown, RegExp][] = [
    ['beam zero', 'mt', { text: 'a', beam: 0 }, /^body\/beam: must be >= 1$/],
    ['beam too wide', 'mt', { text: 'a', beam: 17 }, /^body\/beam: must be <= 16$/],
    ['beam a string', 'mt', { text: 'a', beam: '4' }, /^body\/beam: must be integer$/],
    ['nbest beyond beam', 'mt', { text: 'a', beam: 2, nbest: 3 }, /^body\/nbest: must be <= beam \(2\)$/],
    ['lengthPenalty negative', 'mt', { text: 'a', lengthPenalty: -1 }, /^body\/lengthPenalty: must be >= 0$/],
    [
      'unknown field',
      'mt',
      { text: 'a', temperature: 1 },
      /^body: unknown field 'temperature' \(allowed: text, beam, nbest, lengthPenalty, truncate\)$/,
    ],
    ['text a number', 'mt', { text: 5 }, /^body\/text: must be a string of 1\.\.10000 characters, or an array/],
    ['empty text in an array', 'mt', { text: ['fine', ''] }, /^body\/text\[1\]: must be a string/],
    ['text missing', 'mt', { beam: 2 }, /text/],
  ];
  test.each(cases)('bad request: %s', async (_name, model, body, message) => {
    const r = await post(`${base}/v1/models/${model}/translate`, body);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(message);
  });

  test('other routes name the route each model answers', async () => {
    const c = await post(`${base}/v1/models/mt/classify`, { text: 'a' });
    expect(c.status).toBe(400);
    expect(c.body.error).toBe("model 'mt' is a translation model; use /v1/models/mt/translate");
    const f = await post(`${base}/v1/models/mt/fill-mask`, { text: 'a <mask>' });
    expect(f.body.error).toBe("model 'mt' is a translation model; use /v1/models/mt/translate");
    const t = await post(`${base}/v1/models/mlm/translate`, { text: 'a' });
    expect(t.status).toBe(400);
    expect(t.body.error).toBe("model 'mlm' is a masked-LM; use /v1/models/mlm/fill-mask");
    expect((await post(`${base}/v1/models/nope/translate`, { text: 'a' })).status).toBe(404);
    expect((await post(`${base}/v1/models/mt/translate`, { text: 'still here' })).status).toBe(200);
  });

  test('examples/service/main.js serves the translate route', async () => {
    const main = path.join(__dirname, '..', 'dist', 'examples', 'service', 'main.js');
    const { child, address, exited } = await startService(main, ['--model', `en-es=${path.join(dir, 'mt')}`, '--port', '0']);
    try {
      const texts = sources.slice(0, 6);
      const r = await post(`${address}/v1/models/en-es/translate`, { text: texts, beam: 2 });
      expect(r.status).toBe(200);
      expect(r.body.results.map((x: any) => x.translation_text)).toEqual(await mt.translate(texts, { beam: 2 }));
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
