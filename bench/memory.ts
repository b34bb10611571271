/**
 * Peak memory (part of `npm run bench`): the peak RSS of a medium training step and of serving a medium
 * classifier as fp32, int8 and from a packed 8-bit file, each measured in a fresh process.
 *
 *   node dist/bench/memory.js [--quick] [--no-write]
 *
 * Every measurement is a child Node process (this script with --child CASE DIR STEPS) that loads the addon,
 * does one thing and reports its own VmHWM (the kernel's high-water mark of resident memory) from
 * /proc/self/status, after loading the model and at the end. A child that only loads the addon and runs one
 * tiny forward is the baseline every row is compared with (Node, V8, libtorch's code and thread pools).
 * Each case runs twice: with glibc's malloc as it is, and with MALLOC_ARENA_MAX=2. Every job runs on one of
 * libuv's pool threads, each with its own OpenMP team, and glibc gives threads their own arenas (up to 8 per
 * core), each keeping its share of the largest activations: the peak climbs over the first calls or steps
 * before it levels off, so a case runs enough of them to reach that level.
 * Full mode runs each case twice (medians; --quick once, with fewer steps) and writes the "## Memory"
 * section of BENCHMARKS.md.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cpuHasNativeBf16, engineInfo, MlmDataset, quantize, setThreads, toInt8, Trainer, Transformer } from '../lib';
import { benchTokenizer, cpuName, median, publish, runMain } from './report';
import { shapeOf, SIZES } from './sizes';

const VOCAB = 8000;
const MAX_LEN = 128;
const MEDIUM = { ...shapeOf(SIZES.medium), vocabSize: VOCAB, maxLen: MAX_LEN };
const TRAIN_BATCH = 16;
/**
 * Steps of training and calls per serving shape. Measured (medium, 2 threads): the fp32 training peak rose
 * 537 -> 1486 MiB over the first 8 steps, then 1486 -> 1610 over the next 12; serving 32 x 128 rose for ~16
 * calls (285 -> 641 MiB), then stayed at ~650.
 */
const STEPS = { full: { train: 12, serve: 20 }, quick: { train: 6, serve: 8 } };
/** The shapes a served model sees: one short request, then the largest batch the service forms (max batch 32). */
const SERVE_SHAPES = [
  { batch: 1, length: 16 },
  { batch: 32, length: MAX_LEN },
];
/** The environments every case runs in: glibc as it is, and at most 2 malloc arenas. */
const ENVS: { name: string; env: Record<string, string> }[] = [
  { name: 'default', env: {} },
  { name: 'arenas2', env: { MALLOC_ARENA_MAX: '2' } },
];

interface Case {
  name: string;
  what: string;
}

function cases(steps: { train: number; serve: number }): Case[] {
  const train = (p: string): Case => ({
    name: `train-${p}`,
    what:
      `medium MLM training, ${steps.train} steps of ${TRAIN_BATCH} x ${MAX_LEN} (${p}${p === 'bf16' ? ' autocast' : ''}; ` +
      'model, gradients, AdamW state, activations)',
  });
  const serve = `then ${steps.serve} predicts each of ${SERVE_SHAPES.map((s) => `${s.batch} x ${s.length}`).join(', then ')}`;
  return [
    { name: 'baseline', what: 'the addon loaded, one forward of a 1-layer d16 model (Node, V8, libtorch, its thread pools)' },
    train('fp32'),
    ...(cpuHasNativeBf16() ? [train('bf16')] : []),
    { name: 'serve-fp32', what: `Transformer.load of the fp32 file, ${serve}` },
    { name: 'serve-int8', what: `Transformer.load of the fp32 file, toInt8 (the fp32 model disposed, as the service does), ${serve}` },
    { name: 'serve-packed', what: `Transformer.load of the packed 8-bit file (dequantized to fp32 weights), ${serve}` },
    { name: 'serve-packed-int8', what: `Transformer.load of the packed 8-bit file, toInt8, ${serve}` },
  ];
}

function peakBytes(): number {
  const kb = /^VmHWM:\s*(\d+)\s*kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
  if (!kb) throw new Error('no VmHWM in /proc/self/status');
  return Number(kb) * 1024;
}

function batchOf(batch: number, length: number, call: number): number[][] {
  return Array.from({ length: batch }, (_, b) => Array.from({ length }, (_, i) => 5 + ((b * 7919 + i * 104729 + call * 15485863) % 7990)));
}

const tokenizerLike = benchTokenizer(VOCAB);

/** One measurement, in this (fresh) process: prints { loaded, peak } in bytes as the last line. */
async function child(name: string, dir: string, steps: number): Promise<void> {
  const threads = engineInfo().hardwareThreads;
  setThreads({ threads });
  let loaded = 0;
  if (name === 'baseline') {
    const m = await Transformer.create({ task: 'classify', numLabels: 2, vocabSize: 16, maxLen: 8, dModel: 16, layers: 1, heads: 1 });
    await m.predict([[1, 5, 6, 2]]);
    m.dispose();
    loaded = peakBytes();
  } else if (name.startsWith('train-')) {
    const precision = name.slice('train-'.length) as 'fp32' | 'bf16';
    const stream = Int32Array.from({ length: 200_000 }, (_, i) => 5 + ((i * 104729) % (VOCAB - 5)));
    const data = MlmDataset.fromStream(stream, tokenizerLike, { maxLen: MAX_LEN });
    const model = await Transformer.create({ task: 'mlm', ...MEDIUM }, { seed: 1 });
    loaded = peakBytes();
    const trainer = new Trainer(model, { maxSteps: steps, batchSize: TRAIN_BATCH, precision, threads, lr: 5e-4, warmupSteps: 0 });
    await trainer.fit(data, { evalEvery: 1e9 });
    trainer.dispose();
    model.dispose();
  } else if (name.startsWith('serve-')) {
    const packed = name.startsWith('serve-packed');
    let model = await Transformer.load(path.join(dir, packed ? 'packed' : 'fp32'));
    if (name.endsWith('-int8')) {
      const fp32 = model;
      model = await toInt8(fp32);
      fp32.dispose();
    }
    loaded = peakBytes();
    let call = 0;
    for (const s of SERVE_SHAPES) for (let i = 0; i < steps; i++) await model.predict(batchOf(s.batch, s.length, call++));
    model.dispose();
  } else {
    throw new Error(`--child: unknown case '${name}'`);
  }
  console.log(JSON.stringify({ loaded, peak: peakBytes() }));
}

function measure(name: string, dir: string, steps: number, env: Record<string, string>): { loaded: number; peak: number } {
  const r = spawnSync(process.execPath, [__filename, '--child', name, dir, String(steps)], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    env: { ...process.env, ...env },
  });
  if (r.status !== 0)
    throw new Error(`memory child '${name}' failed (exit ${r.status}, signal ${r.signal}): ${r.stderr.trim().slice(-2000)}`);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as { loaded: number; peak: number };
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--child');
  if (at >= 0) return child(process.argv[at + 1], process.argv[at + 2], Number(process.argv[at + 3]));
  const quick = process.argv.includes('--quick');
  const write = !quick && !process.argv.includes('--no-write');
  const reps = quick ? 1 : 2;
  const started = Date.now();
  const info = engineInfo();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainlarge-memory-bench-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const model = await Transformer.create({ task: 'classify', numLabels: 2, ...MEDIUM }, { seed: 1 });
  await model.save(path.join(dir, 'fp32'));
  const q8 = await quantize(model, { bits: 8 });
  await q8.save(path.join(dir, 'packed'));
  const parameters = model.parameterCount;
  [model, q8].forEach((m) => m.dispose());
  const fileMb = (d: string): string => (fs.statSync(path.join(dir, d, 'model.safetensors')).size / 1e6).toFixed(2);

  const steps = quick ? STEPS.quick : STEPS.full;
  const all = cases(steps);
  // results[env][case]
  const results: Record<string, Record<string, { loaded: number[]; peak: number[] }>> = {};
  for (let r = 0; r < reps; r++) {
    for (const c of all) {
      for (const e of ENVS) {
        const m = measure(c.name, dir, c.name.startsWith('train') ? steps.train : steps.serve, e.env);
        const slot = ((results[e.name] ??= {})[c.name] ??= { loaded: [], peak: [] });
        slot.loaded.push(m.loaded);
        slot.peak.push(m.peak);
        console.log(`${c.name} (${e.name}): peak ${(m.peak / 2 ** 20).toFixed(1)} MiB (after load ${(m.loaded / 2 ** 20).toFixed(1)} MiB)`);
      }
    }
  }
  const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
  const peak = (n: string, env = 'default'): number => median(results[env][n].peak);
  const above = (n: string, env = 'default'): number => peak(n, env) - peak('baseline', env);
  const rows = all.map((c) => {
    const cells = ENVS.map((e) => {
      const l = median(results[e.name][c.name].loaded);
      return `${mib(l)} | **${mib(peak(c.name, e.name))}** | ${c.name === 'baseline' ? '' : mib(above(c.name, e.name))}`;
    });
    return `| ${c.name} | ${c.what} | ${cells.join(' | ')} |`;
  });
  const vs = (a: string, b: string): string =>
    `${a} ${mib(above(a))} vs ${b} ${mib(above(b))} MiB (${mib(above(a, 'arenas2'))} vs ${mib(above(b, 'arenas2'))} with 2 arenas)`;
  const bf16 = all.some((c) => c.name === 'train-bf16');
  const section = [
    '## Memory',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpuName()} (${info.hardwareThreads} hardware threads); libtorch ${info.torchVersion}, ` +
      `${info.hardwareThreads} intra-op threads. Command: \`node dist/bench/memory.js${quick ? ' --quick' : ''}\` (part of \`npm run bench\`; ` +
      `run took ${((Date.now() - started) / 60_000).toFixed(1)} min).`,
    '',
    `Each row is a fresh Node process (\`node dist/bench/memory.js --child CASE DIR N\`) that does one thing; peak RSS = its VmHWM from ` +
      `/proc/self/status (the kernel's high-water mark of resident memory) when done; "after load" = VmHWM once the model is loaded ` +
      `(before training or the first predict); "above baseline" = peak minus the baseline process's peak. MiB, median of ${reps} ` +
      `process${reps > 1 ? 'es' : ''} per cell. Model: medium (d 256, 4 layers, 4 heads, maxLen ${MAX_LEN}, vocab ${VOCAB}; the classifier ` +
      `${(parameters / 1e6).toFixed(2)} M parameters, random init); files: fp32 ${fileMb('fp32')} MB, packed 8-bit ` +
      `(\`quantize(model, { bits: 8 })\` saved) ${fileMb('packed')} MB. Each case runs with glibc's malloc as it is and with ` +
      "`MALLOC_ARENA_MAX=2`: every job runs on one of libuv's pool threads (each with its own OpenMP team) and glibc gives threads " +
      'their own arenas, each keeping its share of the largest activations, so the peak climbs over the first steps or calls and ' +
      'levels off; the cases run past that.',
    '',
    '| case | what the process does | after load | **peak RSS** | above baseline | after load, 2 arenas | **peak RSS, 2 arenas** | above baseline, 2 arenas |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `Training: ${bf16 ? vs('train-bf16', 'train-fp32') : `fp32 ${mib(above('train-fp32'))} MiB above the baseline (no bf16 row: the CPU lacks AVX512-BF16/AMX)`}. ` +
      `Serving: ${vs('serve-int8', 'serve-fp32')}; ${vs('serve-packed', 'serve-fp32')}; ${vs('serve-packed-int8', 'serve-fp32')}.`,
    'A loaded model holds fp32 weights whatever its file: a packed file is unpacked to fp32 on load (its compression state kept for ' +
      'saving and further training), and an int8 model keeps its fp32 weights beside the int8 packs (libtorch prepacks from them; ' +
      'clone, save and weight() read them). The packed file saves disk and download, not resident memory.',
    '',
  ].join('\n');
  publish(section, write);
}

runMain(main);
