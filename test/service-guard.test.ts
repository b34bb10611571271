// The inference service off loopback and under load (lib/serve, `trainlarge serve`): a bearer token required
// (401 without it, counted in /metrics), no binding off loopback without a token or `insecure`, the limits on
// body size, texts and time each answered with its 4xx/503, and 10,000 requests on 127.0.0.1 with flat RSS.
// The models are small and untrained: only the guards are under test here (test/service.test.ts checks answers).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import autocannon from 'autocannon';
import { Tokenizer, Transformer } from '../lib';
import { englishProseDocuments } from '../lib/data/builtin/sources';
import { readMetric } from '../bench/report';
import { createService } from '../lib/serve/server';
import { StartedService, startService, tempDir } from './helpers';

jest.setTimeout(300_000);

const CLI = path.join(__dirname, '..', 'dist', 'lib', 'cli.js');
const TOKEN = 'tl-3f9c2a7e61d84b05a2c4e7f1d9b3a6c8';

let dir: string;
let clf: string;
let big: string;
let texts: string[];

/** This machine's first non-loopback IPv4 address: where "off loopback" is tried (the suite skips those tests without one). */
const external = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
const offLoopback = external ? test : test.skip;

async function call(
  url: string,
  opts: { body?: unknown; token?: string; raw?: string } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const post = opts.body !== undefined || opts.raw !== undefined;
  const r = await fetch(url, {
    method: post ? 'POST' : 'GET',
    headers,
    ...(post ? { body: opts.raw ?? JSON.stringify(opts.body) } : {}),
  });
  const text = await r.text();
  return { status: r.status, body: text && r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text, headers: r.headers };
}

/** `trainlarge serve ARGS...` as a child; resolves once it prints its address. */
const serveCli = (args: string[]): Promise<StartedService> => startService(CLI, ['serve', ...args]);

beforeAll(async () => {
  dir = tempDir('service-guard');
  texts = (await englishProseDocuments()).train.slice(0, 60).map((d) => d.text);
  const tok = await Tokenizer.train({ texts, vocabSize: 400 });
  const save = async (name: string, config: { maxLen: number; dModel: number; layers: number }): Promise<string> => {
    const model = await Transformer.create({ task: 'classify', numLabels: 2, vocabSize: tok.vocabSize, heads: 4, ...config }, { seed: 1 });
    await model.save(path.join(dir, name), { labels: ['negative', 'positive'] });
    model.dispose();
    await tok.save(path.join(dir, name, 'tokenizer.model'));
    return path.join(dir, name);
  };
  clf = await save('clf', { maxLen: 32, dModel: 32, layers: 1 });
  // One call of 64 full-length inputs takes a while on this model: long enough to outlive a short timeout.
  big = await save('big', { maxLen: 128, dModel: 256, layers: 4 });
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('a bearer token', () => {
  offLoopback('off loopback: 401 without the token or with a wrong one, 200 with it; the 401s are counted', async () => {
    const svc = await createService({ models: [{ name: 'clf', dir: clf }], host: external!, port: 0, token: TOKEN });
    try {
      const base = await svc.listen();
      expect(base).toContain(external!);
      const route = `${base}/v1/models/clf/classify`;
      const none = await call(route, { body: { text: 'a fine day' } });
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="trainlarge"');
      expect(none.body.error).toBe("this service needs 'authorization: Bearer TOKEN'");
      const wrong = await call(route, { body: { text: 'a fine day' }, token: TOKEN.slice(0, -1) + 'x' });
      expect(wrong.status).toBe(401);
      expect(wrong.body.error).toBe('the bearer token is wrong');
      expect((await call(route, { body: { text: 'a fine day' }, token: `${TOKEN}extra` })).status).toBe(401);
      const ok = await call(route, { body: { text: 'a fine day' }, token: TOKEN });
      expect(ok.status).toBe(200);
      expect(['negative', 'positive']).toContain(ok.body.results[0].label);
      // Every other route needs it too, unknown ones included; /health answers without it, naming no model.
      expect((await call(`${base}/v1/models`)).status).toBe(401);
      expect((await call(`${base}/metrics`)).status).toBe(401);
      expect((await call(`${base}/nope`)).status).toBe(401);
      const health = await call(`${base}/health`);
      expect(health.status).toBe(200);
      expect(health.body).not.toHaveProperty('models');
      expect((await call(`${base}/health`, { token: TOKEN })).body.models).toEqual(['clf']);
      const metrics = (await call(`${base}/metrics`, { token: TOKEN })).body as string;
      expect(readMetric(metrics, 'trainlarge_refused_total', 'reason="unauthorized"')).toBe(6);
      expect(readMetric(metrics, 'trainlarge_requests_total', 'model="clf",route="/v1/models/:name/classify",status="401"')).toBe(3);
      expect(readMetric(metrics, 'trainlarge_inputs_admitted_total', 'model="clf"')).toBe(1); // the 401s never reached the model
    } finally {
      await svc.close();
    }
  });

  test('on loopback a token is required all the same', async () => {
    const svc = await createService({ models: [{ name: 'clf', dir: clf }], port: 0, token: TOKEN });
    try {
      const base = await svc.listen();
      expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await call(`${base}/v1/models/clf/classify`, { body: { text: 'a' } })).status).toBe(401);
      expect((await call(`${base}/v1/models/clf/classify`, { body: { text: 'a' }, token: TOKEN })).status).toBe(200);
    } finally {
      await svc.close();
    }
  });

  test('binding off loopback without a token or insecure is refused before any model loads', async () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.7', 'example.org']) {
      await expect(createService({ models: [{ name: 'clf', dir: '/no/such/dir' }], host })).rejects.toThrow(
        new RegExp(`service config: token: host ${host.replace(/\./g, '\\.')} is not loopback: give a token`),
      );
    }
    await expect(createService({ models: [{ name: 'clf', dir: clf }], token: '' })).rejects.toThrow(/token: must not be empty/);
    // Loopback in any spelling needs nothing; insecure: true binds anywhere.
    for (const host of ['127.0.0.1', '127.8.0.1', '::1', 'localhost', '[::1]']) {
      const svc = await createService({ models: [{ name: 'clf', dir: clf }], host });
      await svc.close();
    }
    const open = await createService({ models: [{ name: 'clf', dir: clf }], host: '0.0.0.0', insecure: true });
    await open.close();
  });

  offLoopback('a tokenless service that someone binds off loopback with app.listen answers 403 there', async () => {
    const svc = await createService({ models: [{ name: 'clf', dir: clf }] });
    try {
      await svc.app.listen({ host: external!, port: 0 });
      const port = (svc.app.server.address() as { port: number }).port;
      const r = await call(`http://${external!}:${port}/v1/models/clf/classify`, { body: { text: 'a' } });
      expect(r.status).toBe(403);
      expect(r.body.error).toMatch(/no token, so it answers on loopback only/);
      expect(svc.metrics.refused.get({ reason: 'not_loopback' })).toBe(1);
    } finally {
      await svc.close();
    }
  });

  test('trainlarge serve: --host off loopback needs --token-file or --insecure; an empty token file is refused', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'serve', clf, '--port', '0', ...args], { encoding: 'utf8' });
    const bare = run('--host', '0.0.0.0');
    expect(bare.status).toBe(2);
    expect(bare.stderr).toMatch(/--token-file: host 0\.0\.0\.0 is not loopback: give a token/);
    const empty = path.join(dir, 'empty.txt');
    fs.writeFileSync(empty, '\n');
    const e = run('--host', '0.0.0.0', '--token-file', empty);
    expect(e.status).toBe(2);
    expect(e.stderr).toMatch(/--token-file .*empty\.txt: the file is empty/);
    const missing = run('--token-file', path.join(dir, 'missing.txt'));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/--token-file .*missing\.txt: ENOENT/);
  });

  offLoopback('trainlarge serve --token-file: 401 without, 200 with; --insecure warns', async () => {
    const file = path.join(dir, 'secret.txt');
    fs.writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const s = await serveCli([clf, '--host', external!, '--port', '0', '--token-file', file]);
    try {
      const route = `${s.address}/v1/models/clf/classify`;
      expect((await call(route, { body: { text: 'a' } })).status).toBe(401);
      expect((await call(route, { body: { text: 'a' }, token: TOKEN })).status).toBe(200);
    } finally {
      s.child.kill('SIGTERM');
    }
    expect(await s.exited).toBe(0);
    expect(s.err()).not.toMatch(/WARNING/);
    const open = await serveCli([clf, '--host', external!, '--port', '0', '--insecure']);
    try {
      expect((await call(`${open.address}/v1/models/clf/classify`, { body: { text: 'a' } })).status).toBe(200);
      expect(open.err()).toMatch(/WARNING: listening on .* without a token \(--insecure\): anyone who reaches .* can use these models/);
    } finally {
      open.child.kill('SIGTERM');
    }
    expect(await open.exited).toBe(0);
  });
});

describe('limits, each answered with its status and counted', () => {
  test('body size (413), texts per request and characters per text (413), the server keeps serving', async () => {
    const svc = await createService({ models: [{ name: 'clf', dir: clf }], port: 0, bodyLimit: 2048, maxItems: 4, maxTextChars: 100 });
    try {
      const base = await svc.listen();
      const route = `${base}/v1/models/clf/classify`;
      const large = await call(route, { raw: JSON.stringify({ text: 'a'.repeat(3000) }) });
      expect(large.status).toBe(413);
      expect(large.body.error).toBe('body: larger than bodyLimit (2048 bytes)');
      const many = await call(route, { body: { text: ['a', 'b', 'c', 'd', 'e'] } });
      expect(many.status).toBe(413);
      expect(many.body.error).toBe('body/text: more than maxItems (4) texts; send them in several requests');
      const manyPairs = await call(route, { body: { text: ['a'], pair: ['a', 'b', 'c', 'd', 'e'] } });
      expect(manyPairs.status).toBe(413);
      expect(manyPairs.body.error).toMatch(/^body\/pair: more than maxItems \(4\)/);
      const long = await call(route, { body: { text: 'a'.repeat(101) } });
      expect(long.status).toBe(413);
      expect(long.body.error).toBe('body/text: longer than maxTextChars (100 characters)');
      const longItem = await call(route, { body: { text: ['fine', 'a'.repeat(101)] } });
      expect(longItem.status).toBe(413);
      expect(longItem.body.error).toBe('body/text[1]: longer than maxTextChars (100 characters)');
      // At the limits: answered.
      expect((await call(route, { body: { text: ['a b c', 'd', 'e', 'a'.repeat(100)], truncate: true } })).status).toBe(200);
      const metrics = (await call(`${base}/metrics`)).body as string;
      expect(readMetric(metrics, 'trainlarge_refused_total', 'reason="body_limit"')).toBe(1);
      expect(readMetric(metrics, 'trainlarge_refused_total', 'reason="max_items"')).toBe(2);
      expect(readMetric(metrics, 'trainlarge_refused_total', 'reason="max_text_chars"')).toBe(2);
    } finally {
      await svc.close();
    }
  });

  test('a request past requestTimeoutMs gets 503 at its deadline; the inputs it left queued are never run', async () => {
    const svc = await createService({ models: [{ name: 'big', dir: big }], port: 0, maxBatch: 64, maxWaitMs: 0, requestTimeoutMs: 150 });
    const base = await svc.listen();
    const route = `${base}/v1/models/big/classify`;
    const long = texts.join(' ').slice(0, 2000); // well over maxLen 128 tokens: cut by truncate
    const t0 = Date.now();
    const first = call(route, { body: { text: Array(64).fill(long), truncate: true } });
    // Once the first request's batch runs, five more queue behind it and time out there.
    for (let i = 0; i < 2000 && svc.metrics.admitted.get({ model: 'big' }) < 64; i++) await new Promise((r) => setTimeout(r, 2));
    expect(svc.metrics.admitted.get({ model: 'big' })).toBe(64);
    const queued = await Promise.all(Array.from({ length: 5 }, () => call(route, { body: { text: 'short', truncate: true } })));
    const r = await first;
    const answered = Date.now() - t0;
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.body.error).toBe(
      'the request took longer than requestTimeoutMs (150 ms); its waiting inputs were dropped. Retry later or send fewer texts',
    );
    for (const q of queued) expect(q.status).toBe(503);
    await svc.close(); // waits for the batch in flight
    const batchMs = svc.metrics.batchSeconds.sum({ model: 'big' }) * 1000;
    console.log(`timeout: the first request answered after ${answered} ms; its batch ran ${batchMs.toFixed(0)} ms`);
    expect(batchMs).toBeGreaterThan(150); // the test's premise: the batch outlived the deadline
    expect(svc.metrics.batchSize.count({ model: 'big' })).toBe(1); // the five queued inputs were dropped, not run
    expect(svc.metrics.refused.get({ reason: 'timeout' })).toBe(6);
  });
});

describe('load', () => {
  test('10,000 requests with a token on 127.0.0.1: all 200, and the server process RSS stays flat', async () => {
    const file = path.join(dir, 'load-token.txt');
    fs.writeFileSync(file, TOKEN);
    const s = await serveCli([clf, '--port', '0', '--token-file', file, '--max-batch', '16']);
    const rss = async (): Promise<number> =>
      readMetric((await call(`${s.address}/metrics`, { token: TOKEN })).body as string, 'process_resident_memory_bytes');
    const bodies = texts.map((t) => JSON.stringify({ text: t.slice(0, 200), truncate: true }));
    let next = 0;
    const load = (amount: number): Promise<autocannon.Result> =>
      new Promise((resolve, reject) =>
        autocannon(
          {
            url: s.address,
            connections: 32,
            amount,
            timeout: 30,
            requests: [
              {
                method: 'POST',
                path: '/v1/models/clf/classify',
                headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
                setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }),
              },
            ],
          },
          (err: Error | null, result) => (err ? reject(err) : resolve(result)),
        ),
      );
    try {
      const warm = await load(2_000); // glibc's arenas and V8's heap meet the batch shapes
      expect(warm.non2xx + warm.errors).toBe(0);
      const before = await rss();
      const run = await load(10_000);
      const after = await rss();
      const mb = (b: number) => (b / 2 ** 20).toFixed(1);
      console.log(
        `load: 10,000 requests, ${run.requests.average.toFixed(0)} requests/s, p99 ${run.latency.p99} ms; ` +
          `server RSS ${mb(before)} MB before, ${mb(after)} MB after (${mb(after - before)} MB)`,
      );
      expect(run.requests.sent).toBeGreaterThanOrEqual(10_000);
      expect(run['2xx']).toBe(10_000);
      expect(run.non2xx + run.errors + run.timeouts).toBe(0);
      expect(after - before).toBeLessThan(40 * 2 ** 20);
    } finally {
      s.child.kill('SIGTERM');
    }
    expect(await s.exited).toBe(0);
  });
});
