/**
 * Load benchmark of the HTTP inference service (examples/service): throughput and latency under a fixed
 * number of concurrent connections, fp32 vs int8, per micro-batch limit; and whether the server's memory
 * stays flat over many requests.
 *
 *   node dist/bench/service.js [--quick] [--no-write] [--finetune-steps N] [--fp32-threads T] [--int8-threads T]
 *                              [--memory-only] [--rss-warmup N] [--rss-requests N]
 *
 * Each configuration is a fresh server process (dist/examples/service/main.js) on a medium classifier
 * (d 256, 4 layers, 4 heads, maxLen 128, vocab of the english-prose tokenizer), loaded by autocannon from
 * this process with POST /v1/models/m/classify, every request a different real sentiment sentence
 * ("truncate": true). fp32 and int8 run back to back per batch limit (the order alternates). The batch
 * sizes the server actually formed come from its /metrics (trainlarge_batch_size_sum / _count over the
 * measured window). The target: int8 serves >= 1.3x the fp32 requests/s at every max batch. Full mode writes
 * the "## Service load (examples/service)" section of BENCHMARKS.md.
 */
import type autocannon from 'autocannon';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { engineInfo, Tokenizer } from '../lib';
import { cpuName, int8AutoEngine, median, publish, readMetric, runMain } from './report';
import {
  arg,
  buildModel,
  CONNECTIONS,
  MAIN,
  MAX_QUEUE,
  MAX_WAIT_MS,
  measure,
  MODEL,
  Run,
  ROUTE,
  rssOf,
  sanity,
  scrape,
  sentences,
  startServer,
  stopServer,
  Threads,
  threadsArg,
  trainlargeServer,
  load,
} from './service-load';

/** int8 req/s >= TARGET x fp32 req/s at every max batch (issue 15). */
const TARGET = 1.3;
/**
 * Intra-op threads per server. The server shares the 2 cores with the load generator: --quick runs on
 * libtorch 2.13 (req/s at max batch 1 / 8 / 32) gave fp32 147-166 / 182-237 / 195-247 with 1 thread against
 * 124 / 224 / 165 with 2, and int8 348-352 / 452-456 / 360-430 against 153 / 364 / 422.
 */
const DEFAULT_THREADS = { fp32: '1', int8: '1' };

/** Requests/s and latency of fp32 against int8 at each max batch: the table's rows, per-run details and problems. */
async function throughput(
  dir: string,
  threads: { fp32: Threads; int8: Threads },
  batchSizes: number[],
  bodies: string[],
  seconds: number,
): Promise<{ rows: string[]; details: string[]; problems: string[]; ratios: { maxBatch: number; ratio: number }[] }> {
  const variants = [
    { name: 'fp32', modelArg: dir, threads: threads.fp32 },
    { name: 'int8', modelArg: `${dir}:int8`, threads: threads.int8 },
  ] as const;
  const rows: string[] = [];
  const details: string[] = [];
  const problems: string[] = [];
  const ratios: { maxBatch: number; ratio: number }[] = [];
  for (const [i, maxBatch] of batchSizes.entries()) {
    const runs: Record<string, Run> = {};
    for (const v of i % 2 === 0 ? variants : [...variants].reverse()) {
      const r = await measure(trainlargeServer(v.modelArg, maxBatch, v.threads), bodies, seconds);
      runs[v.name] = r;
      details.push(
        `max-batch ${maxBatch} ${v.name}: ${r.completed} answered 2xx in ${seconds} s, ${r.batches} native calls of ` +
          `${r.meanBatch.toFixed(2)} inputs, ${r.callMs.toFixed(1)} ms each (mean)`,
      );
      console.log(
        `max-batch ${maxBatch} ${v.name}: ${r.rps.toFixed(1)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.completed} answered, ` +
          `${r.batches} batches (mean ${r.meanBatch.toFixed(2)} inputs, ${r.callMs.toFixed(1)} ms per native call), failed ${r.failed}${r.failures ? ` (${r.failures})` : ''}, server ${r.exit}`,
      );
      if (r.failed) problems.push(`max-batch ${maxBatch} ${v.name}: ${r.failures}`);
      if (r.exit !== 'exit 0') problems.push(`max-batch ${maxBatch} ${v.name} server: ${r.exit}`);
    }
    const f = runs.fp32,
      q = runs.int8;
    const ratio = q.rps / f.rps;
    ratios.push({ maxBatch, ratio });
    rows.push(
      `| ${maxBatch} | ${f.rps.toFixed(1)} | ${f.p50} | ${f.p99} | ${q.rps.toFixed(1)} | ${q.p50} | ${q.p99} | **${ratio.toFixed(2)}x** | ` +
        `${ratio >= TARGET ? 'met' : '**not met**'} | ${(f.p99 / q.p99).toFixed(2)}x | ${f.meanBatch.toFixed(2)} / ${q.meanBatch.toFixed(2)} | ${f.failed} / ${q.failed} |`,
    );
  }

  return { rows, details, problems, ratios };
}

/**
 * Memory over many requests: one fp32 server at max-batch 16. RSS climbs while glibc's per-thread arenas
 * meet every batch shape (measured: 437 MB after 1k requests, 501 MB at 15k, 502 MB at 30k), so a warm-up
 * of `warm` requests comes first; then RSS at quarters of the `rssRequests` measured ones.
 */
async function memory(
  dir: string,
  threads: Threads,
  bodies: string[],
  warm: number,
  rssRequests: number,
): Promise<{ lines: string[]; problems: string[] }> {
  const problems: string[] = [];
  const marks = [0, 0.25, 0.5, 0.75, 1].map((f) => warm + Math.round(f * rssRequests)).filter((m) => m > 0);
  const server = await startServer(trainlargeServer(dir, 16, threads));
  const points: { requests: number; rss: number; heap: Promise<number> }[] = [];
  const samples: number[] = [];
  let rssRun: autocannon.Result;
  let rssExit: string;
  try {
    await sanity(server.url, bodies[0]);
    const startRss = rssOf(server.pid);
    const sampler = setInterval(() => samples.push(rssOf(server.pid)), 250);
    let done = 0;
    try {
      rssRun = await load(server.url, bodies, {
        amount: warm + rssRequests,
        onResponse: () => {
          done++;
          if (marks.includes(done)) {
            points.push({
              requests: done,
              rss: rssOf(server.pid),
              heap: scrape(server.url).then((t) => readMetric(t, 'nodejs_heap_used_bytes')),
            });
          }
        },
      });
    } finally {
      clearInterval(sampler);
    }
    samples.unshift(startRss);
    await Promise.all(points.map((p) => p.heap));
  } finally {
    rssExit = await stopServer(server);
  }
  const heaps = await Promise.all(points.map((p) => p.heap));
  const mb = (b: number): string => (b / 2 ** 20).toFixed(1);
  const rssFailed = rssRun.errors + rssRun.non2xx;
  if (rssFailed) problems.push(`memory run: errors ${rssRun.errors}, non-2xx ${rssRun.non2xx}`);
  if (rssExit !== 'exit 0') problems.push(`memory run server: ${rssExit}`);
  const first = points[0],
    last = points[points.length - 1];
  const lines = [
    `Memory: one fp32 server at max-batch 16, ${warm.toLocaleString('en-US')} warm-up requests then ${rssRequests.toLocaleString('en-US')} measured ` +
      `(${CONNECTIONS} connections, ${rssRun['2xx']} answered 2xx, ${rssFailed} failed, ${rssRun.requests.mean.toFixed(1)} req/s); server RSS from ` +
      '/proc/PID/status when the Nth answer arrived, V8 heap in use from its /metrics (nodejs_heap_used_bytes) right after:',
    '',
    `- RSS before load ${mb(samples[0])} MB; ${points.map((p) => `after ${p.requests.toLocaleString('en-US')} requests ${mb(p.rss)} MB`).join('; ')}; ` +
      `peak of ${samples.length} samples (every 250 ms) ${mb(Math.max(...samples))} MB`,
    `- **RSS growth over the ${rssRequests.toLocaleString('en-US')} measured requests (${first.requests.toLocaleString('en-US')} -> ` +
      `${last.requests.toLocaleString('en-US')}): ${((last.rss - first.rss) / 2 ** 20).toFixed(1)} MB**`,
    `- heap used: ${points.map((p, k) => `${p.requests.toLocaleString('en-US')}: ${mb(heaps[k])} MB`).join('; ')}`,
    `- server shutdown after SIGTERM: ${rssExit}`,
  ];

  return { lines, problems };
}

/** Whether int8 met the target at every max batch measured, with the ratios. */
function targetLine(ratios: { maxBatch: number; ratio: number }[], batchSizes: number[]): string {
  const missed = ratios.filter((r) => r.ratio < TARGET);
  const unmeasured = [1, 2, 4, 8, 16, 32].filter((b) => !batchSizes.includes(b));
  return `Target (int8 >= ${TARGET}x the fp32 requests/s at every max batch 1..32, with p99 shown): **${
    ratios.length === 0
      ? 'not measured'
      : missed.length
        ? 'not met'
        : unmeasured.length
          ? `met where measured (max batch ${unmeasured.join(', ')} not run)`
          : 'met'
  }** (${ratios.map((r) => `${r.maxBatch}: ${r.ratio.toFixed(2)}x`).join(', ')}${
    missed.length ? `; below target at max batch ${missed.map((r) => r.maxBatch).join(', ')}` : ''
  }).`;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const write = !quick && !process.argv.includes('--no-write') && !process.argv.includes('--memory-only');
  const seconds = quick ? 2 : 6;
  // --memory-only: just the RSS run (e.g. to compare allocator settings), never written to BENCHMARKS.md.
  const memoryOnly = process.argv.includes('--memory-only');
  const batchSizes = memoryOnly ? [] : quick ? [1, 8, 32] : [1, 2, 4, 8, 16, 32];
  const rssRequests = Number(arg('rss-requests') ?? (quick ? 2000 : 10_000));
  const rssWarmup = Number(arg('rss-warmup') ?? (quick ? 1000 : 10_000));
  const finetuneSteps = Number(arg('finetune-steps') ?? 0);
  // One fixed setting per variant (DEFAULT_THREADS; override with --fp32-threads / --int8-threads).
  const threads = { fp32: threadsArg('fp32-threads', DEFAULT_THREADS.fp32), int8: threadsArg('int8-threads', DEFAULT_THREADS.int8) };
  const info = engineInfo();
  const int8Engine = await int8AutoEngine();
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npx tsc -p tsconfig.json first`);
  const cpu = cpuName();
  const started = Date.now();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainlarge-service-bench-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const built = await buildModel(dir, finetuneSteps);
  const texts = await sentences();
  const bodies = texts.map((text) => JSON.stringify({ text, truncate: true }));
  const tok = Tokenizer.load(path.join(dir, 'tokenizer.model'));
  const lengths = (await tok.encodeBatch(texts, 1)).map((ids) => Math.min(ids.length + 2, MODEL.maxLen));
  const tokensLine =
    `median ${median(lengths)} tokens, p90 ${[...lengths].sort((a, b) => a - b)[Math.floor(lengths.length * 0.9)]}, ` +
    `longest ${Math.max(...lengths)} with the special tokens`;
  const modelLine =
    `medium classifier (d ${MODEL.dModel}, ${MODEL.layers} layers, ${MODEL.heads} heads, maxLen ${MODEL.maxLen}; ` +
    `${(built.parameters / 1e6).toFixed(2)} M parameters, ${(built.bytes / 1e6).toFixed(1)} MB safetensors), ${built.note}`;
  console.log(modelLine);

  const { rows, details, problems, ratios } = await throughput(dir, threads, batchSizes, bodies, seconds);
  const rss = await memory(dir, threads.fp32, bodies, rssWarmup, rssRequests);
  problems.push(...rss.problems);
  const rssLines = rss.lines;
  const target = targetLine(ratios, batchSizes);
  const threadsText = (t: { threads: number; blas: number }): string => `${t.threads} intra-op${t.blas ? ` + ${t.blas} OpenBLAS` : ''}`;
  const section = [
    '## Service load (examples/service)',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpu} (${os.cpus().length} hardware threads, shared by the server and the load generator). ` +
      `Command: \`node dist/bench/service.js${quick ? ' --quick' : ''}\` (run took ${((Date.now() - started) / 60_000).toFixed(1)} min); ` +
      `libtorch ${info.torchVersion}, int8 engine ${int8Engine} (toInt8's 'auto').`,
    '',
    target,
    '',
    `Model: ${modelLine}. Each row is two fresh server processes (\`dist/examples/service/main.js --model m=DIR[:int8] --max-batch B ` +
      `--max-wait-ms ${MAX_WAIT_MS} --max-queue ${MAX_QUEUE}\`), fp32 and int8 back to back (order alternating per row). Threads per server (\`--threads\`; ` +
      `${info.blasThreads >= 0 ? "this libtorch's BLAS is OpenBLAS, sized by --blas-threads" : "pip's libtorch runs its MKL GEMMs and the int8 kernels on the intra-op pool"}): ` +
      `fp32 ${threadsText(threads.fp32)}, int8 ${threadsText(threads.int8)}. Load: autocannon, in the bench's process, ${CONNECTIONS} connections, ` +
      `pipelining 1, 1 s warm-up then ${seconds} s measured; POST ${ROUTE} with ${bodies.length} real sentiment sentences in rotation ` +
      `(every request a different sentence, "truncate": true; ${tokensLine}). req/s = autocannon's mean of per-second counts; ` +
      'latencies (ms) of 2xx answers; "mean formed batch" = inputs per native call over the measured window, from the server\'s ' +
      '/metrics (trainlarge_batch_size_sum / _count), fp32 / int8; "failed" = connection errors + non-2xx, fp32 / int8. A batch is ' +
      `formed from the requests that arrived while the previous one ran, so with ${CONNECTIONS} connections (each waiting for its answer) ` +
      'formed batches stay below the connection count.',
    '',
    '| max batch | fp32 req/s | fp32 p50 | fp32 p99 | int8 req/s | int8 p50 | int8 p99 | int8/fp32 throughput | target | p99 fp32/int8 | mean formed batch | failed |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    "Per run (server side: native calls completed from the end of the warm-up's queue to the end of the measured window; " +
      'trainlarge_batch_size and trainlarge_batch_duration_seconds from /metrics):',
    '',
    ...details.map((d) => `- ${d}`),
    '',
    ...rssLines,
    '',
    problems.length
      ? `Problems: ${problems.join('; ')}`
      : 'No request failed (0 connection errors, 0 non-2xx) and every server exited 0 on SIGTERM.',
    '',
  ].join('\n');
  publish(section, write);
}

runMain(main);
