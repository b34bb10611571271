/**
 * `trainlarge serve` against an ONNX Runtime service (bench/peer_ort_service.ts: fastify + onnxruntime-node)
 * on the same model, tokenizer, route, load and batching window (part of `npm run bench`).
 *
 *   node dist/bench/service-onnx.js [--quick] [--no-write] [--rounds N] [--seconds S] [--threads T] [--no-int8] [--batches 1,8,32]
 *
 * The medium classifier of bench/service.ts (random init, the english-prose tokenizer), saved, then exported
 * with exportOnnx (fp32, and int8 for the int8 pair). Each configuration is a fresh server process with
 * --max-batch B --max-wait-ms 2 --max-queue 1024 and T intra-op threads (default 1: the server shares the
 * cores with the load generator); autocannon from this process, 32 connections, every request a different real
 * sentiment sentence. Per max batch (1, 8, 32; --batches: only those, never written) the sides take turns,
 * the first rotating from round to round; each figure is the median over the rounds. Full mode writes the
 * "## Service against ONNX Runtime" section of BENCHMARKS.md.
 */
import * as fs from 'fs';
import * as ort from 'onnxruntime-node';
import * as os from 'os';
import * as path from 'path';
import { engineInfo, exportOnnx, Transformer } from '../lib';
import { cpuName, median, publish, ROOT, runMain } from './report';
import {
  arg,
  batchingArgs,
  buildModel,
  CONNECTIONS,
  LABELS,
  MAX_QUEUE,
  MAX_WAIT_MS,
  measure,
  MODEL,
  ROUTE,
  Run,
  sentences,
  ServerCommand,
  trainlargeServer,
} from './service-load';

const PEER = path.join(ROOT, 'dist', 'bench', 'peer_ort_service.js');
const BATCHES = [1, 8, 32];

function ortServer(dir: string, maxBatch: number, threads: number): ServerCommand {
  return {
    script: PEER,
    args: ['--dir', dir, ...batchingArgs(maxBatch, threads)],
  };
}

function positiveInt(name: string, fallback: number): number {
  const v = Number(arg(name) ?? fallback);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer, got '${arg(name)}'`);
  return v;
}

/** --batches B1,B2,...: the max batches to measure (default all of BATCHES). */
function batchesArg(): number[] {
  const text = arg('batches');
  if (text === undefined) return BATCHES;
  const list = text.split(',').map(Number);
  if (list.some((b) => !Number.isInteger(b) || b < 1))
    throw new Error(`--batches: expected positive integers separated by commas, got '${text}'`);
  return list;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const rounds = positiveInt('rounds', quick ? 1 : 3);
  const seconds = positiveInt('seconds', quick ? 2 : 5);
  const threads = positiveInt('threads', 1);
  const int8 = !process.argv.includes('--no-int8');
  const batches = batchesArg();
  const write = !quick && !process.argv.includes('--no-write') && batches === BATCHES;
  for (const f of [PEER, trainlargeServer('', 1, { threads: 1, blas: 0 }).script]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run node node_modules/typescript/bin/tsc -p tsconfig.json first`);
  }
  const started = Date.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'trainlarge-service-onnx-'));
  process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
  const dir = path.join(work, 'model');
  const built = await buildModel(dir, 0);
  const model = await Transformer.load(dir);
  await exportOnnx(model, path.join(work, 'onnx-fp32'), { labels: LABELS });
  if (int8) await exportOnnx(model, path.join(work, 'onnx-int8'), { labels: LABELS, int8: true });
  model.dispose();
  const bodies = (await sentences()).map((text) => JSON.stringify({ text, truncate: true }));

  const sides = [
    { name: 'trainlarge fp32', server: (b: number) => trainlargeServer(dir, b, { threads, blas: 0 }) },
    { name: 'ORT fp32', server: (b: number) => ortServer(path.join(work, 'onnx-fp32'), b, threads) },
    ...(int8
      ? [
          { name: 'trainlarge int8', server: (b: number) => trainlargeServer(`${dir}:int8`, b, { threads, blas: 0 }) },
          { name: 'ORT int8', server: (b: number) => ortServer(path.join(work, 'onnx-int8'), b, threads) },
        ]
      : []),
  ];
  const rows: string[] = [];
  const problems: string[] = [];
  for (const maxBatch of batches) {
    const runs = new Map<string, Run[]>();
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < sides.length; k++) {
        const side = sides[(k + r) % sides.length];
        const run = await measure(side.server(maxBatch), bodies, seconds);
        runs.set(side.name, [...(runs.get(side.name) ?? []), run]);
        console.log(
          `max-batch ${maxBatch} ${side.name} (round ${r + 1}): ${run.rps.toFixed(1)} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms, ` +
            `${run.batches} batches of ${run.meanBatch.toFixed(2)} (${run.callMs.toFixed(1)} ms per call), failed ${run.failed}, server ${run.exit}`,
        );
        if (run.failed) problems.push(`max-batch ${maxBatch} ${side.name}: ${run.failures}`);
        if (run.exit !== 'exit 0') problems.push(`max-batch ${maxBatch} ${side.name} server: ${run.exit}`);
      }
    }
    const med = (name: string, f: (r: Run) => number): number => median(runs.get(name)!.map(f));
    const cells = (name: string): string =>
      `${med(name, (r) => r.rps).toFixed(1)} | ${med(name, (r) => r.p50)} | ${med(name, (r) => r.p99)} | ${med(name, (r) => r.meanBatch).toFixed(1)}`;
    const ratio = (a: string, b: string): string => `**${(med(a, (r) => r.rps) / med(b, (r) => r.rps)).toFixed(2)}x**`;
    const row =
      `| ${maxBatch} | ${cells('trainlarge fp32')} | ${cells('ORT fp32')} | ${ratio('trainlarge fp32', 'ORT fp32')} |` +
      (int8 ? ` ${cells('trainlarge int8')} | ${cells('ORT int8')} | ${ratio('trainlarge int8', 'ORT int8')} |` : '');
    rows.push(row);
    console.log(row);
  }

  const cols = (p: string): string => `${p} req/s | ${p} p50 | ${p} p99 | ${p} batch`;
  const header =
    `| max batch | ${cols('trainlarge fp32')} | ${cols('ORT fp32')} | trainlarge / ORT |` +
    (int8 ? ` ${cols('trainlarge int8')} | ${cols('ORT int8')} | trainlarge / ORT |` : '');
  const section = [
    '## Service against ONNX Runtime',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpuName()} (${os.cpus().length} hardware threads, shared by the servers and the load generator). ` +
      `Command: \`node dist/bench/service-onnx.js${quick ? ' --quick' : ''}\` (part of \`npm run bench\`; run took ${((Date.now() - started) / 60_000).toFixed(1)} min); ` +
      `libtorch ${engineInfo().torchVersion}, onnxruntime-node ${ort.env.versions.common}.`,
    '',
    `Model: medium classifier (d ${MODEL.dModel}, ${MODEL.layers} layers, ${MODEL.heads} heads, maxLen ${MODEL.maxLen}; ${(built.parameters / 1e6).toFixed(2)} M parameters), ${built.note}. ` +
      '`trainlarge serve` (`dist/examples/service/main.js --model m=DIR[:int8]`) against `dist/bench/peer_ort_service.js`, a minimal fastify + ' +
      'onnxruntime-node service on the `exportOnnx` files of the same model (fp32; int8: the int8 export against `toInt8`) with the same route, ' +
      "tokenizer (trainlarge's SentencePiece on both) and batching window (lib/serve/batcher.ts's); trainlarge hands a full batch to its " +
      'engine thread behind the running one and runs a batch in length-sorted parts, each padded to its own longest input, where the peer ' +
      "pads a batch to its longest input and runs it on the JS thread (onnxruntime-node's `session.run`). Both: " +
      `--max-batch B --max-wait-ms ${MAX_WAIT_MS} --max-queue ${MAX_QUEUE}, ${threads} intra-op thread(s) (ONNX Runtime: sequential, graph optimization 'all'). ` +
      `Load: autocannon, ${CONNECTIONS} connections, 1 s warm-up then ${seconds} s measured per server; POST ${ROUTE}, every request a different ` +
      `real sentiment sentence ("truncate": true). Each figure is the median over ${rounds} round(s), the sides taking turns; req/s = autocannon's ` +
      'mean of per-second counts, latencies in ms, "batch" = the mean batch the server formed (its /metrics). "trainlarge / ORT" above 1 ' +
      'means trainlarge serves more requests per second.',
    '',
    header,
    `|${'---|'.repeat(header.split('|').length - 2)}`,
    ...rows,
    '',
    problems.length ? `Problems: ${problems.join('; ')}` : 'No request failed and every server exited 0 on SIGTERM.',
    '',
  ].join('\n');
  publish(section, write);
}

runMain(main);
