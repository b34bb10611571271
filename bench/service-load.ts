/**
 * What the service benchmarks share (bench/service.ts: fp32 against int8; bench/service-onnx.ts: against ONNX
 * Runtime): the medium classifier they serve, server processes (started, scraped, stopped; every child killed
 * when this process exits), the sentiment sentences and the autocannon load, one measured run.
 */
import autocannon from 'autocannon';
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as readline from 'readline';
import { classificationExamples, Corpus, Dataset, Trainer, Transformer } from '../lib';
import { ROOT, readMetric } from './report';
import { shapeOf, SIZES } from './sizes';

export const MODEL = { task: 'classify' as const, numLabels: 2, maxLen: 128, ...shapeOf(SIZES.medium) };
export const LABELS = ['negative', 'positive'];
export const CONNECTIONS = 32;
export const MAX_WAIT_MS = 2;
export const MAX_QUEUE = 1024;
export const ROUTE = '/v1/models/m/classify';
export const MAIN = path.join(ROOT, 'dist', 'examples', 'service', 'main.js');

export function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/**
 * "T": libtorch's intra-op threads. pip's libtorch runs its GEMMs (MKL) and the int8 kernels on that one
 * pool. "T+B" also sizes OpenBLAS's pool, for a libtorch built on OpenBLAS (TORCH_DIR; ignored otherwise).
 */
export function threadsArg(name: string, fallback: string): { threads: number; blas: number; text: string } {
  const text = arg(name) ?? fallback;
  const m = /^(\d+)(?:\+(\d+))?$/.exec(text);
  if (!m || Number(m[1]) < 1) throw new Error(`--${name}: expected T (intra-op threads) or T+B (+ OpenBLAS threads), got '${text}'`);
  return { threads: Number(m[1]), blas: Number(m[2] ?? 0), text };
}

export type Threads = { threads: number; blas: number; text: string };

// ---------------------------------------------------------------------------------------------------
// Server processes: every child is killed when this process exits, however it exits.

const children = new Set<ChildProcess>();
function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

export interface Server {
  child: ChildProcess;
  pid: number;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: string[];
}

/** A server process: a script run by this Node with its arguments (it prints {"event":"listening"} on stdout when ready). */
export interface ServerCommand {
  script: string;
  args: string[];
}

export async function startServer({ script, args }: ServerCommand): Promise<Server> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const stderr: string[] = [];
  child.stderr.setEncoding('utf8').on('data', (s: string) => stderr.push(s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  const lines = readline.createInterface({ input: child.stdout });
  const listening = await new Promise<{ address: string; pid: number }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`service did not listen within 120 s (args ${args.join(' ')}); stderr: ${stderr.join('')}`)),
      120_000,
    );
    lines.on('line', (line) => {
      try {
        const ev = JSON.parse(line) as { event?: string; address?: string; pid?: number };
        if (ev.event === 'listening' && ev.address && ev.pid) {
          clearTimeout(timer);
          resolve({ address: ev.address, pid: ev.pid });
        }
      } catch {
        // not a JSON line
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`service exited (code ${code}, signal ${signal}) before listening; stderr: ${stderr.join('')}`));
    });
  });
  return { child, pid: listening.pid, url: listening.address, exited, stderr };
}

/** SIGTERM (the service drains and exits 0); SIGKILL after 30 s. Returns how it exited. */
export async function stopServer(s: Server): Promise<string> {
  if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 30_000)));
  const r = await Promise.race([s.exited, killed]);
  clearTimeout(timer);
  if (r === 'timeout') {
    s.child.kill('SIGKILL');
    await s.exited;
    return 'did not exit within 30 s of SIGTERM (killed)';
  }
  return r.code === 0 ? 'exit 0' : `exit code ${r.code} signal ${r.signal}; stderr: ${s.stderr.join('').trim().slice(-500)}`;
}

export async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  return res.text();
}

export function batchStats(text: string): { sum: number; count: number; seconds: number } {
  return {
    sum: readMetric(text, 'trainlarge_batch_size_sum', 'model="m"'),
    count: readMetric(text, 'trainlarge_batch_size_count', 'model="m"'),
    seconds: readMetric(text, 'trainlarge_batch_duration_seconds_sum', 'model="m"'),
  };
}

/** /metrics once every admitted input has been through a native call (the warm-up's leftovers are done). */
export async function settled(url: string): Promise<{ sum: number; count: number; seconds: number }> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await scrape(url);
    const stats = batchStats(text);
    if (readMetric(text, 'trainlarge_inputs_admitted_total', 'model="m"') === stats.sum) return stats;
    if (Date.now() > deadline) throw new Error('the server did not finish its queued inputs within 30 s of the warm-up');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function rssOf(pid: number): number {
  const kb = /^VmRSS:\s*(\d+)\s*kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

// ---------------------------------------------------------------------------------------------------
// Load

/** Request bodies: every sentiment sentence once, in a fixed shuffled order (so lengths mix evenly). */
export async function sentences(): Promise<string[]> {
  const { splits } = await classificationExamples('sentiment');
  const texts = [...splits.train, ...splits.valid, ...splits.test].map((e) => e.text);
  let seed = 12345;
  const rand = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let i = texts.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [texts[i], texts[j]] = [texts[j], texts[i]];
  }
  return texts;
}

let nextBody = 0;

export function load(
  url: string,
  bodies: string[],
  opts: { duration?: number; amount?: number; onResponse?: (status: number) => void },
): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        connections: CONNECTIONS,
        pipelining: 1,
        timeout: 60,
        ...(opts.amount ? { amount: opts.amount } : { duration: opts.duration ?? 1 }),
        requests: [
          {
            method: 'POST',
            path: ROUTE,
            headers: { 'content-type': 'application/json' },
            // A shared counter across the connections: consecutive requests carry consecutive sentences.
            setupRequest: (req) => ({ ...req, body: bodies[nextBody++ % bodies.length] }),
          },
        ],
      },
      (err: Error | null, result) => (err ? reject(err) : resolve(result)),
    );
    if (opts.onResponse) instance.on('response', (_client, status) => opts.onResponse!(status));
  });
}

/** One request by hand: the service answers 200 with a label of the model. */
export async function sanity(url: string, body: string): Promise<void> {
  const res = await fetch(`${url}${ROUTE}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const json = (await res.json()) as { results?: { label?: string }[] };
  if (res.status !== 200 || !LABELS.includes(json.results?.[0]?.label ?? '')) {
    throw new Error(`sanity request: status ${res.status}, body ${JSON.stringify(json)}`);
  }
}

export interface Run {
  rps: number;
  p50: number;
  p99: number;
  completed: number;
  failed: number;
  failures: string;
  meanBatch: number;
  batches: number;
  /** Mean time of one native call (trainlarge_batch_duration_seconds), ms. */
  callMs: number;
  exit: string;
}

/** The command line of a trainlarge server (examples/service/main.js) on model directory `modelArg` (`DIR` or `DIR:int8`). */
export function trainlargeServer(modelArg: string, maxBatch: number, threads: { threads: number; blas: number }): ServerCommand {
  return {
    script: MAIN,
    args: [
      '--model',
      `m=${modelArg}`,
      '--port',
      '0',
      ...batchingArgs(maxBatch, threads.threads),
      ...(threads.blas ? ['--blas-threads', String(threads.blas)] : []),
    ],
  };
}

/** The flags every server of these benches takes alike: its batching window, queue and threads. */
export function batchingArgs(maxBatch: number, threads: number): string[] {
  return [
    '--max-batch',
    String(maxBatch),
    '--max-wait-ms',
    String(MAX_WAIT_MS),
    '--max-queue',
    String(MAX_QUEUE),
    '--threads',
    String(threads),
  ];
}

/** A fresh server process for `command`, a 1 s warm-up, then `seconds` of load; the server stopped after. */
export async function measure(command: ServerCommand, bodies: string[], seconds: number): Promise<Run> {
  const server = await startServer(command);
  let run: Omit<Run, 'exit'> | undefined;
  let exit = '';
  try {
    await sanity(server.url, bodies[0]);
    await load(server.url, bodies, { duration: 1 }); // warm-up
    const before = await settled(server.url);
    const r = await load(server.url, bodies, { duration: seconds });
    const after = batchStats(await scrape(server.url));
    const batches = after.count - before.count;
    const failed = r.errors + r.non2xx;
    const failures = failed ? `errors ${r.errors} (timeouts ${r.timeouts}), non-2xx ${r.non2xx} (4xx ${r['4xx']}, 5xx ${r['5xx']})` : '';
    run = {
      rps: r.requests.mean,
      p50: r.latency.p50,
      p99: r.latency.p99,
      completed: r['2xx'],
      failed,
      failures,
      meanBatch: batches > 0 ? (after.sum - before.sum) / batches : 0,
      batches,
      callMs: batches > 0 ? ((after.seconds - before.seconds) / batches) * 1000 : 0,
    };
  } finally {
    exit = await stopServer(server);
    if (exit !== 'exit 0') console.error(`warning: server (${command.args.join(' ')}) ${exit}`);
  }
  return { ...run, exit };
}
// ---------------------------------------------------------------------------------------------------

export async function buildModel(dir: string, steps: number): Promise<{ parameters: number; bytes: number; note: string }> {
  const corpus = await Corpus.prepare({ source: 'english-prose', dir: path.join(ROOT, 'data', 'english-prose') });
  const tok = corpus.tokenizer;
  const model = await Transformer.create({ ...MODEL, vocabSize: tok.vocabSize }, { seed: 1 });
  let note = 'random init (not fine-tuned; weights do not change the work per request)';
  if (steps > 0) {
    const task = await Dataset.classification({ source: 'sentiment', tokenizer: tok, maxLen: MODEL.maxLen });
    const t0 = process.hrtime.bigint();
    const trainer = new Trainer(model, { lr: 5e-4, batchSize: 16, maxSteps: steps, warmupSteps: Math.max(1, Math.round(steps * 0.1)) });
    const r = await trainer.fit(task.train, { validData: task.valid, evalEvery: steps });
    trainer.dispose();
    task.dispose();
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    note =
      `random init + ${steps} fine-tuning steps on sentiment (batch 16, ${secs.toFixed(0)} s; valid accuracy ` +
      `${r.lastEval?.accuracy?.toFixed(3) ?? 'n/a'}: weights do not change the work per request)`;
  }
  await model.save(dir, { labels: LABELS });
  await tok.save(path.join(dir, 'tokenizer.model'));
  const parameters = model.parameterCount;
  model.dispose();
  return { parameters, bytes: fs.statSync(path.join(dir, 'model.safetensors')).size, note: `vocab ${tok.vocabSize}; ${note}` };
}
