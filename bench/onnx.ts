/**
 * trainlarge against ONNX Runtime on the same model and the same inputs (part of `npm run bench`): a
 * classifier's forward pass, trainlarge `predict` fp32 and int8 (toInt8) against onnxruntime-node running
 * the model's ONNX exports (exportOnnx, fp32 and int8), at 1x16, 1x128, 8x128 and 32x128.
 *
 *   node dist/bench/onnx.js [--quick] [--no-write] [--rounds N] [--reps N] [--sizes medium,large] [--shapes 1x16,8x128]
 *
 * Random-init classifiers (vocab 8000, maxLen 128; medium and large, --quick medium only). --sizes and
 * --shapes run a subset (e.g. `--shapes 1x16` for the per-call path alone); a subset is never written. Each round runs
 * the four sides in turn, the first rotating from round to round, at each thread count (1 and every core):
 * libtorch's intra-op threads for trainlarge, intraOpNumThreads for ONNX Runtime (sequential execution, one
 * inter-op thread, graph optimization 'all'), so both use the same cores. Inputs are built before the clock
 * starts on both sides (trainlarge's { ids: Int32Array, batch, length }, ONNX Runtime's int64 tensors), every
 * call a new batch of ids (dynamic int8 takes its activation scale from each input). Each side is shown at
 * its faster thread count. Writes the "## Inference against ONNX Runtime" section of BENCHMARKS.md (not with
 * --quick or --no-write).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { engineInfo, exportOnnx, setThreads, toInt8, Transformer } from '../lib';
import { cpuName, median, publish, runMain } from './report';
import { ModelSize, shapeOf, SIZES } from './sizes';

// The sizes of every other benchmark (bench/sizes.ts).
const BENCH_SIZES: ModelSize[] = [SIZES.medium, SIZES.large];
const SHAPES = [
  { batch: 1, length: 16 },
  { batch: 1, length: 128 },
  { batch: 8, length: 128 },
  { batch: 32, length: 128 },
];
const VOCAB = 8000;
const SIDES = ['trainlarge fp32', 'ORT fp32', 'trainlarge int8', 'ORT int8'] as const;
type Side = (typeof SIDES)[number];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function positiveInt(name: string, fallback: number): number {
  const v = Number(arg(name) ?? fallback);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer, got '${arg(name)}'`);
  return v;
}

/** One batch's inputs for both sides: the same ids (no padding: every sequence is `length` long). */
function inputsOf(batch: number, length: number, call: number) {
  const ids = new Int32Array(batch * length);
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < length; i++) ids[b * length + i] = 5 + ((b * 7919 + i * 104729 + call * 15485863) % (VOCAB - 10));
  const ones = new BigInt64Array(ids.length).fill(1n);
  return {
    trainlarge: { ids, batch, length },
    ort: {
      input_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(ids, (v) => BigInt(v)),
        [batch, length],
      ),
      attention_mask: new ort.Tensor('int64', ones, [batch, length]),
    },
  };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** --sizes / --shapes: a subset of BENCH_SIZES and SHAPES, by name and by 'BxT'. */
function subset<T>(name: string, all: T[], key: (x: T) => string): T[] {
  const text = arg(name);
  if (text === undefined) return all;
  return text.split(',').map((k) => {
    const found = all.find((x) => key(x) === k);
    if (!found) throw new Error(`--${name}: '${k}' is not one of ${all.map(key).join(', ')}`);
    return found;
  });
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const sizes = subset('sizes', quick ? BENCH_SIZES.slice(0, 1) : BENCH_SIZES, (s) => s.name);
  const shapes = subset('shapes', SHAPES, (s) => `${s.batch}x${s.length}`);
  const write = !quick && !process.argv.includes('--no-write') && arg('sizes') === undefined && arg('shapes') === undefined;
  const rounds = positiveInt('rounds', quick ? 1 : 3);
  const reps = positiveInt('reps', quick ? 2 : 10);
  const started = Date.now();
  const cores = engineInfo().hardwareThreads;
  const threads = [...new Set([1, cores])];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'trainlarge-bench-onnx-'));
  const rows: string[] = [];
  let calls = 1;
  try {
    for (const s of sizes) {
      const fp32 = await Transformer.create({ task: 'classify', numLabels: 2, vocabSize: VOCAB, maxLen: 128, ...shapeOf(s) }, { seed: 1 });
      const int8 = await toInt8(fp32);
      await exportOnnx(fp32, path.join(work, `${s.name}-fp32`));
      await exportOnnx(fp32, path.join(work, `${s.name}-int8`), { int8: true });
      const sessions = new Map<number, Record<'fp32' | 'int8', ort.InferenceSession>>();
      for (const th of threads) {
        const opts: ort.InferenceSession.SessionOptions = {
          intraOpNumThreads: th,
          interOpNumThreads: 1,
          executionMode: 'sequential',
          graphOptimizationLevel: 'all',
        };
        sessions.set(th, {
          fp32: await ort.InferenceSession.create(path.join(work, `${s.name}-fp32`, 'model.onnx'), opts),
          int8: await ort.InferenceSession.create(path.join(work, `${s.name}-int8`, 'model.onnx'), opts),
        });
      }
      const run = async (side: Side, th: number, x: ReturnType<typeof inputsOf>): Promise<Float32Array> => {
        if (side === 'trainlarge fp32') return (await fp32.predict(x.trainlarge)).data;
        if (side === 'trainlarge int8') return (await int8.predict(x.trainlarge)).data;
        const session = sessions.get(th)![side === 'ORT fp32' ? 'fp32' : 'int8'];
        return (await session.run(x.ort)).logits.data as Float32Array;
      };
      for (const shape of shapes) {
        const times = new Map<string, number[]>();
        // The same input on every side: fp32 logits must agree (the export's parity, at this shape).
        const check = inputsOf(shape.batch, shape.length, 0);
        setThreads({ threads: cores });
        const drift = maxAbsDiff(await run('trainlarge fp32', cores, check), await run('ORT fp32', cores, check));
        for (let r = 0; r < rounds; r++) {
          for (const th of threads) {
            setThreads({ threads: th });
            const order = SIDES.map((_, k) => SIDES[(k + r) % SIDES.length]);
            for (const side of order) {
              const key = `${side} ${th}`;
              await run(side, th, inputsOf(shape.batch, shape.length, calls++)); // warm-up call
              for (let i = 0; i < reps; i++) {
                const x = inputsOf(shape.batch, shape.length, calls++);
                const t = process.hrtime.bigint();
                await run(side, th, x);
                const ms = Number(process.hrtime.bigint() - t) / 1e6;
                times.set(key, [...(times.get(key) ?? []), ms]);
              }
            }
          }
        }
        const best = (side: Side): { ms: number; threads: number } =>
          threads.map((th) => ({ threads: th, ms: median(times.get(`${side} ${th}`)!) })).sort((a, b) => a.ms - b.ms)[0];
        const show = (b: { ms: number; threads: number }): string => `${b.ms.toFixed(2)} (${b.threads})`;
        const [tf, of, ti, oi] = SIDES.map(best);
        const row =
          `| ${s.name} (${s.dModel}/${s.layers}/${s.heads}) | ${shape.batch} x ${shape.length} | ${show(tf)} | ${show(of)} | ` +
          `**${(of.ms / tf.ms).toFixed(2)}x** | ${show(ti)} | ${show(oi)} | **${(oi.ms / ti.ms).toFixed(2)}x** | ${drift.toExponential(1)} |`;
        rows.push(row);
        console.log(row);
      }
      for (const pair of sessions.values()) for (const session of Object.values(pair)) await session.release();
      int8.dispose();
      fp32.dispose();
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  setThreads({ threads: cores });

  const section = [
    '## Inference against ONNX Runtime',
    '',
    `Command: \`node dist/bench/onnx.js${quick ? ' --quick' : ''}\` (part of \`npm run bench\`; run took ${((Date.now() - started) / 60_000).toFixed(1)} min). ` +
      `CPU: ${cpuName()}, ${cores} hardware threads; onnxruntime-node ${ort.env.versions.common}, libtorch ${engineInfo().torchVersion}.`,
    '',
    `A classifier's forward pass (vocab ${VOCAB}, random init), trainlarge \`predict\` against onnxruntime-node on the model's ` +
      '`exportOnnx` files, fp32 and int8 (trainlarge: `toInt8`; ONNX Runtime: the int8 export, dynamic quantization that it runs on ' +
      `DynamicQuantizeMatMul). Milliseconds per call, medians of ${rounds} round(s) x ${reps} calls, the four sides taking turns; ` +
      `each at ${threads.join(' and ')} intra-op threads (the same on both sides) and shown at its faster one (in brackets). ` +
      '"ORT / trainlarge" above 1 means trainlarge is faster. Inputs are built before the clock starts on both sides; ' +
      '"fp32 max diff" is |trainlarge - ORT| over the logits of one batch.',
    '',
    '| model (dModel/layers/heads) | batch x length | trainlarge fp32 ms | ORT fp32 ms | ORT / trainlarge | trainlarge int8 ms | ORT int8 ms | ORT / trainlarge | fp32 max diff |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
  publish(section, write);
}

runMain(main);
