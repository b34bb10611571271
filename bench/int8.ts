/**
 * fp32 vs int8 inference latency of a classifier, side by side in one run (part of `npm run bench`).
 *
 *   node dist/bench/int8.js [--quick] [--no-write]
 *
 * int8 = toInt8(): the encoder's Linear layers on libtorch's dynamic-quantized kernels (int8 weights per
 * output channel, activations quantized per call). Each configuration is timed with the thread setting
 * that is fastest for it (both candidates are measured and shown), medians over repeated calls; fp32 and
 * int8 alternate per round. Writes the "## Int8 inference" section of BENCHMARKS.md.
 */
import * as fs from 'fs';
import * as os from 'os';
import { compressedSize, engineInfo, quantize, setThreads, toInt8, Transformer } from '../lib';
import { cpuName, median, publish, runMain } from './report';

interface Shape {
  name: string;
  dModel: number;
  layers: number;
  heads: number;
}
const SIZES: Shape[] = [
  { name: 'medium', dModel: 256, layers: 4, heads: 4 },
  { name: 'large', dModel: 512, layers: 8, heads: 8 },
];
const THREADS: Array<[number, number]> = [
  [1, 2],
  [2, 1],
  [2, 2],
]; // [libtorch intra-op, OpenBLAS]

/**
 * Each call gets different token ids of the same shape. The dynamic int8 path derives the activations'
 * scale from each input, and oneDNN builds a new primitive when that changes: repeating one input hides
 * that cost (measured 5.6 ms vs 11.1 ms a call, medium model, 1 x 17 tokens).
 */
function batchOf(batch: number, length: number, call: number): number[][] {
  return Array.from({ length: batch }, (_, b) => Array.from({ length }, (_, i) => 5 + ((b * 7919 + i * 104729 + call * 15485863) % 7990)));
}

async function latency(model: Transformer, shape: { batch: number; length: number }, reps: number): Promise<number[]> {
  await model.predict(batchOf(shape.batch, shape.length, 0));
  const out: number[] = [];
  for (let i = 1; i <= reps; i++) {
    const ids = batchOf(shape.batch, shape.length, i);
    const t = process.hrtime.bigint();
    await model.predict(ids);
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return out;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const write = !process.argv.includes('--no-write');
  const cpu = cpuName();
  const flags = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:\s*(.*)$/m)?.[1] ?? '';
  const isa = ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8'].filter((f) => flags.split(' ').includes(f)).join(', ');
  const info = engineInfo();
  const rounds = quick ? 2 : 3;
  const reps = quick ? 3 : 5;
  const cases: Array<{ batch: number; length: number }> = [
    { batch: 1, length: 16 },
    { batch: 1, length: 128 },
    { batch: 8, length: 128 },
    { batch: 32, length: 128 },
  ];
  const lines: string[] = [];
  const rows: string[] = [];
  for (const s of quick ? SIZES.slice(0, 1) : SIZES) {
    const fp32 = await Transformer.create(
      { task: 'classify', numLabels: 2, vocabSize: 8000, maxLen: 128, dModel: s.dModel, layers: s.layers, heads: s.heads },
      { seed: 1 },
    );
    const q8 = await quantize(fp32, { bits: 8 }); // the 8-bit model the int8 kernels run exactly
    const int8 = await toInt8(q8);
    const sizes = { fp32: (await compressedSize(fp32)).bytes, q8: (await compressedSize(q8)).bytes };
    for (const c of cases) {
      const ids = batchOf(c.batch, c.length, 0);
      const times: Record<string, number[]> = {};
      for (let r = 0; r < rounds; r++) {
        for (const [th, blas] of THREADS) {
          setThreads({ threads: th, blasThreads: blas });
          const order = r % 2 === 0 ? ['fp32', 'int8'] : ['int8', 'fp32'];
          for (const which of order) {
            const key = `${which} ${th}+${blas}`;
            (times[key] ??= []).push(...(await latency(which === 'fp32' ? fp32 : int8, c, reps)));
          }
        }
      }
      const best = (which: string) =>
        THREADS.map(([th, blas]) => ({ key: `${th}+${blas}`, ms: median(times[`${which} ${th}+${blas}`]) })).sort((a, b) => a.ms - b.ms)[0];
      const f = best('fp32'),
        i8 = best('int8');
      const a = await fp32.predict(ids.slice(0, 1)),
        b = await int8.predict(ids.slice(0, 1)),
        qa = await q8.predict(ids.slice(0, 1));
      const diff = Math.max(...Array.from(qa.data).map((x, k) => Math.abs(x - b.data[k])));
      const drift = Math.max(...Array.from(a.data).map((x, k) => Math.abs(x - b.data[k])));
      const all = Object.entries(times)
        .map(([k, v]) => `${k} ${median(v).toFixed(1)}`)
        .join('; ');
      lines.push(`${s.name} B${c.batch} T${c.length}: ${all}`);
      rows.push(
        `| ${s.name} (${s.dModel}/${s.layers}/${s.heads}) | ${c.batch} x ${c.length} | ${f.ms.toFixed(1)} (${f.key}) | ${i8.ms.toFixed(1)} (${i8.key}) | **${(f.ms / i8.ms).toFixed(2)}x** | ${drift.toExponential(1)} | ${diff.toExponential(1)} |`,
      );
      console.log(rows[rows.length - 1]);
    }
    rows.push(
      `| ${s.name} file | | fp32 ${(sizes.fp32 / 1e6).toFixed(2)} MB | 8-bit packed ${(sizes.q8 / 1e6).toFixed(2)} MB | ${(sizes.fp32 / sizes.q8).toFixed(2)}x smaller | | |`,
    );
    [fp32, q8, int8].forEach((m) => m.dispose());
  }
  setThreads({ threads: 1, blasThreads: 2 });
  const section = [
    '## Int8 inference',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpu} (${os.cpus().length} hardware threads; ISA: ${isa || 'unknown'}); libtorch ${info.torchVersion}, quantized engine ${'onednn'} (available: ${info.quantizedEngines.join(', ')}).`,
    `Command: \`node dist/bench/int8.js${quick ? ' --quick' : ''}\` (part of \`npm run bench\`). Classifier forward (predict), vocab 8000; medians of ${rounds} rounds x ${reps} calls, each call a different batch of token ids (dynamic int8 re-derives activation scales per input);`,
    'fp32 and int8 alternate within each round; each side is shown with its faster thread setting (intra-op + OpenBLAS threads).',
    "int8 = `toInt8(quantize(model, { bits: 8 }))`: the encoder's 4 Linear layers per block on libtorch's dynamic int8 kernels; attention",
    'matmuls, softmax, GELU, LayerNorm and the heads stay fp32. "drift" = max |logit| difference vs the fp32 model; "kernel" = vs the 8-bit',
    "fake-quantized model (same weights, fp32 kernels): the activation quantization's share.",
    '',
    '| model (d/layers/heads) | batch x tokens | fp32 ms | int8 ms | speed-up | drift | kernel |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'All timings (ms, median):',
    '',
    ...lines.map((l) => `- ${l}`),
    '',
  ].join('\n');
  publish(section, write);
}

runMain(main);
