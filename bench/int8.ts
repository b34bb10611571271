/**
 * fp32 vs int8 inference of a classifier (part of `npm run bench`): latency per shape and per quantized
 * engine, and what int8 costs in accuracy on the sentiment test set.
 *
 *   node dist/bench/int8.js [--quick] [--no-write] [--only speed|accuracy] [--finetune-steps N]
 *
 * Speed: random-init classifiers (vocab 8000, maxLen 128; medium and large, --quick medium only), fp32 against
 * toInt8 on each quantized engine of the libtorch (x86, fbgemm, onednn; qnnpack is left out: an ARM engine,
 * several times slower on x86), every call a new batch of token ids. fp32 and the int8 models take turns
 * within each round, each at every thread setting; each is shown at its faster one.
 * Accuracy: a medium classifier fine-tuned on the built-in sentiment task for a fixed number of steps, then
 * fp32, the 8-bit fake-quantized model and int8 (each engine) predict the test split.
 * Writes the "## Int8 inference" section of BENCHMARKS.md (not with --quick, --only or --no-write).
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  classificationExamples,
  classificationLayout,
  compressedSize,
  Corpus,
  cpuHasNativeBf16,
  Dataset,
  engineInfo,
  Int8Engine,
  quantize,
  setThreads,
  toInt8,
  Trainer,
  Transformer,
} from '../lib';
import { cpuName, int8AutoEngine, median, publish, ROOT, runMain } from './report';
import { shapeOf, SIZES } from './sizes';

interface Size {
  name: string;
  dModel: number;
  layers: number;
  heads: number;
}
const SPEED_SIZES: Size[] = [SIZES.medium, SIZES.large];
const SHAPES = [
  { batch: 1, length: 16, target: 1.3 },
  { batch: 1, length: 128, target: 1.3 },
  { batch: 8, length: 128, target: undefined },
  { batch: 32, length: 128, target: 2.0 },
];
/** The engines compared, in this order; 'auto' is whichever toInt8 picks (int8.cc's kAutoOrder). */
const ENGINES: Int8Engine[] = ['x86', 'fbgemm', 'onednn'];
const VOCAB = 8000;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/**
 * Each call gets different token ids of the same shape: dynamic int8 derives the activations' scale from
 * each input, and an engine that caches work per scale (oneDNN in libtorch 1.13 rebuilt its primitive) would
 * look faster on a repeated input than it is.
 */
function batchOf(batch: number, length: number, call: number): number[][] {
  return Array.from({ length: batch }, (_, b) => Array.from({ length }, (_, i) => 5 + ((b * 7919 + i * 104729 + call * 15485863) % 7990)));
}

let calls = 1;
async function latency(
  model: Transformer,
  shape: { batch: number; length: number },
  reps: number,
  precision: 'fp32' | 'bf16' = 'fp32',
): Promise<number[]> {
  await model.predict(batchOf(shape.batch, shape.length, calls++), { precision });
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const ids = batchOf(shape.batch, shape.length, calls++);
    const t = process.hrtime.bigint();
    await model.predict(ids, { precision });
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// ---------------------------------------------------------------------------------------------------
// Speed

interface SpeedResult {
  rows: string[];
  /** The engine columns: each single engine, and 'auto' where it runs two (fbgemm+onednn, split by rows). */
  engineColumns: string[];
  engineRows: string[];
  /** fp32 weights under bf16 autocast, where the CPU computes bf16 natively. */
  bf16Rows: string[];
  details: string[];
  /** Per size and shape: the speed-up and its target (undefined: none). */
  checks: { what: string; speedup: number; target?: number }[];
  fastest: { what: string; engine: string; autoRatio: number }[];
}

async function speed(opts: { sizes: Size[]; rounds: number; reps: number; threads: number[]; blasThreads: number }): Promise<SpeedResult> {
  const out: SpeedResult = { rows: [], engineColumns: [], engineRows: [], bf16Rows: [], details: [], checks: [], fastest: [] };
  const bf16 = cpuHasNativeBf16();
  const available = engineInfo().quantizedEngines.map((e) => e.toLowerCase());
  const engines = ENGINES.filter((e) => available.includes(e));
  for (const s of opts.sizes) {
    const fp32 = await Transformer.create(
      { task: 'classify', numLabels: 2, vocabSize: VOCAB, maxLen: 128, dModel: s.dModel, layers: s.layers, heads: s.heads },
      { seed: 1 },
    );
    const q8 = await quantize(fp32, { bits: 8 }); // the 8-bit model the int8 kernels run exactly
    const auto = await toInt8(q8);
    const autoEngine = auto.compression.int8!.engine;
    const models: Record<string, Transformer> = { fp32 };
    for (const e of engines) models[e] = e === autoEngine ? auto : await toInt8(q8, { engine: e });
    const columns: string[] = (engines as string[]).includes(autoEngine) ? [...engines] : [...engines, autoEngine];
    models[autoEngine] = auto;
    out.engineColumns = columns;
    if (bf16) models.bf16 = fp32; // predicted with { precision: 'bf16' }
    const sizes = { fp32: (await compressedSize(fp32)).bytes, q8: (await compressedSize(q8)).bytes };
    for (const c of SHAPES) {
      const times: Record<string, number[]> = {};
      const names = Object.keys(models);
      for (let r = 0; r < opts.rounds; r++) {
        for (const th of opts.threads) {
          setThreads({ threads: th, blasThreads: opts.blasThreads });
          // Rotate who goes first, so no side always runs right after the same other.
          const order = names.map((_, k) => names[(k + r) % names.length]);
          for (const which of order)
            (times[`${which} ${th}`] ??= []).push(...(await latency(models[which], c, opts.reps, which === 'bf16' ? 'bf16' : 'fp32')));
        }
      }
      const best = (which: string): { ms: number; threads: number } =>
        opts.threads.map((th) => ({ threads: th, ms: median(times[`${which} ${th}`]) })).sort((a, b) => a.ms - b.ms)[0];
      const show = (b: { ms: number; threads: number }): string => `${b.ms.toFixed(1)} (${b.threads})`;
      const f = best('fp32');
      const perEngine = columns.map((e) => ({ engine: e, ...best(e) }));
      const a = perEngine.find((p) => p.engine === autoEngine)!;
      const top = [...perEngine].sort((x, y) => x.ms - y.ms)[0];
      const ids = batchOf(1, c.length, 0);
      const [pf, pq, pa] = [await fp32.predict(ids), await q8.predict(ids), await auto.predict(ids)];
      const what = `${s.name} ${c.batch} x ${c.length}`;
      const speedup = f.ms / a.ms;
      out.checks.push({ what, speedup, target: c.target });
      out.fastest.push({ what, engine: top.engine, autoRatio: a.ms / top.ms });
      out.rows.push(
        `| ${s.name} (${s.dModel}/${s.layers}/${s.heads}) | ${c.batch} x ${c.length} | ${show(f)} | ${show(a)} | **${speedup.toFixed(2)}x** | ` +
          `${c.target ? `${c.target.toFixed(1)}x: ${speedup >= c.target ? 'met' : '**not met**'}` : '-'} | ` +
          `${maxAbsDiff(pf.data, pa.data).toExponential(1)} | ${maxAbsDiff(pq.data, pa.data).toExponential(1)} |`,
      );
      out.engineRows.push(
        `| ${s.name} | ${c.batch} x ${c.length} | ${show(f)} | ${perEngine.map((p) => `${show(p)}, ${(f.ms / p.ms).toFixed(2)}x`).join(' | ')} | ${top.engine} |`,
      );
      out.details.push(
        `${what}: ${Object.entries(times)
          .map(([k, v]) => `${k} ${median(v).toFixed(1)}`)
          .join('; ')}`,
      );
      if (bf16) {
        const b = best('bf16');
        const pb = await fp32.predict(ids, { precision: 'bf16' });
        out.bf16Rows.push(
          `| ${s.name} | ${c.batch} x ${c.length} | ${show(f)} | ${show(b)} | **${(f.ms / b.ms).toFixed(2)}x** | ${maxAbsDiff(pf.data, pb.data).toExponential(1)} |`,
        );
      }
      console.log(out.rows[out.rows.length - 1]);
      console.log(out.engineRows[out.engineRows.length - 1]);
    }
    out.rows.push(
      `| ${s.name} file | | fp32 ${(sizes.fp32 / 1e6).toFixed(2)} MB | 8-bit packed ${(sizes.q8 / 1e6).toFixed(2)} MB | ${(sizes.fp32 / sizes.q8).toFixed(2)}x smaller | | | |`,
    );
    for (const m of new Set([fp32, q8, auto, ...Object.values(models)])) m.dispose();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Accuracy

interface Scored {
  name: string;
  accuracy: number;
  agreement: number;
  maxDrift: number;
  meanDrift: number;
}

interface AccuracyResult {
  lines: string[];
  rows: string[];
  fp32: number;
  auto: Scored;
}

async function accuracy(opts: { steps: number; batch: number; threads: number }): Promise<AccuracyResult> {
  const corpus = await Corpus.prepare({ source: 'english-prose', dir: path.join(ROOT, 'data', 'english-prose') });
  const tok = corpus.tokenizer;
  const maxLen = 128;
  const task = await Dataset.classification({ source: 'sentiment', tokenizer: tok, maxLen });
  const model = await Transformer.create(
    { task: 'classify', numLabels: 2, vocabSize: tok.vocabSize, maxLen, ...shapeOf(SIZES.medium) },
    { seed: 1 },
  );
  const precision = cpuHasNativeBf16() ? 'bf16' : 'fp32';
  const t0 = process.hrtime.bigint();
  const trainer = new Trainer(model, {
    lr: 5e-4,
    batchSize: opts.batch,
    maxSteps: opts.steps,
    warmupSteps: Math.max(1, Math.round(opts.steps * 0.1)),
    precision,
    threads: opts.threads,
    seed: 1,
  });
  const fit = await trainer.fit(task.train, { validData: task.valid, evalEvery: opts.steps });
  trainer.dispose();
  const trainSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

  // The test split, as Dataset.classification lays it out (<s> text </s>, cut at maxLen), predicted in
  // batches of 32 padded to the longest (as the service batches): every model sees the same batches.
  const test = (await classificationExamples('sentiment')).splits.test;
  const encoded = await tok.encodeBatch(test.map((e) => e.text));
  const seqs = encoded.map((ids) => classificationLayout(tok, ids, undefined, maxLen));
  const labels = test.map((e) => e.label);
  async function logitsOf(m: Transformer): Promise<Float32Array> {
    const out = new Float32Array(seqs.length * 2);
    for (let i = 0; i < seqs.length; i += 32) out.set((await m.predict(seqs.slice(i, i + 32))).data, i * 2);
    return out;
  }
  const argmax = (l: Float32Array, i: number): number => (l[2 * i + 1] > l[2 * i] ? 1 : 0);
  setThreads({ threads: opts.threads });
  const ref = await logitsOf(model);
  const refLabels = labels.map((_, i) => argmax(ref, i));
  function score(name: string, l: Float32Array): Scored {
    let correct = 0,
      agree = 0,
      sum = 0,
      max = 0;
    for (let i = 0; i < labels.length; i++) {
      const p = argmax(l, i);
      if (p === labels[i]) correct++;
      if (p === refLabels[i]) agree++;
    }
    for (let k = 0; k < l.length; k++) {
      const d = Math.abs(l[k] - ref[k]);
      sum += d;
      max = Math.max(max, d);
    }
    return { name, accuracy: correct / labels.length, agreement: agree / labels.length, maxDrift: max, meanDrift: sum / l.length };
  }
  const fp32 = score('fp32', ref);
  const scored: Scored[] = [fp32];
  const q8 = await quantize(model, { bits: 8 });
  scored.push(score('8-bit weights, fp32 kernels (quantize)', await logitsOf(q8)));
  const auto = await toInt8(q8);
  const autoEngine = auto.compression.int8!.engine;
  const autoScore = score(`int8 ${autoEngine} (auto)`, await logitsOf(auto));
  scored.push(autoScore);
  const available = engineInfo().quantizedEngines.map((e) => e.toLowerCase());
  for (const e of ENGINES.filter((x) => x !== autoEngine && available.includes(x))) {
    const m = await toInt8(q8, { engine: e });
    scored.push(score(`int8 ${e}`, await logitsOf(m)));
    m.dispose();
  }
  const evalAcc = (await model.evaluate(task.test)).accuracy!;
  const trainSize = task.train.size;
  [auto, q8, model].forEach((m) => m.dispose());
  task.dispose();
  const pts = (x: number): string => (100 * x).toFixed(1);
  const rows = scored.map(
    (s) =>
      `| ${s.name} | ${pts(s.accuracy)} | ${s === fp32 ? '' : (100 * (fp32.accuracy - s.accuracy)).toFixed(1)} | ${s === fp32 ? '' : pts(s.agreement)} | ` +
      `${s === fp32 ? '' : s.maxDrift.toExponential(1)} | ${s === fp32 ? '' : s.meanDrift.toExponential(1)} |`,
  );
  const lines = [
    `Model: medium classifier (d 256, 4 layers, 4 heads, maxLen ${maxLen}, vocab ${tok.vocabSize}: the english-prose tokenizer), random init, ` +
      `fine-tuned on the built-in sentiment task (train split, ${trainSize} sentences) for ${opts.steps} steps of ${opts.batch} ` +
      `(lr 5e-4, ${Math.max(1, Math.round(opts.steps * 0.1))} warm-up steps then linear decay, ${precision} autocast, ${opts.threads} threads; ` +
      `${trainSeconds.toFixed(0)} s; valid accuracy ${pts(fit.lastEval?.accuracy ?? NaN)}%). Test split: ${labels.length} sentences (one sentence = ${(100 / labels.length).toFixed(2)} points; ` +
      `model.evaluate's fp32 accuracy ${pts(evalAcc)}%), predicted in batches of 32 padded to the longest. "agreement" = same label ` +
      'as the fp32 model; drift = |logit - fp32 logit| over every test logit.',
  ];
  return { lines, rows, fp32: fp32.accuracy, auto: autoScore };
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const only = arg('only');
  if (only && only !== 'speed' && only !== 'accuracy') throw new Error(`--only: expected 'speed' or 'accuracy', got '${only}'`);
  const write = !quick && !only && !process.argv.includes('--no-write');
  const steps = Number(arg('finetune-steps') ?? (quick ? 100 : 300));
  if (!Number.isInteger(steps) || steps < 1)
    throw new Error(`--finetune-steps: expected a positive integer, got '${arg('finetune-steps')}'`);
  const started = Date.now();
  const cpu = cpuName();
  const flags =
    fs
      .readFileSync('/proc/cpuinfo', 'utf8')
      .match(/^flags\s*:\s*(.*)$/m)?.[1]
      ?.split(' ') ?? [];
  const isa = ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_int8'].filter((f) => flags.includes(f)).join(', ');
  const info = engineInfo();
  const cores = info.hardwareThreads;
  // pip's libtorch (MKL, oneDNN, fbgemm over OpenMP) has one pool: the intra-op threads run the GEMMs too.
  // A libtorch on OpenBLAS (TORCH_DIR) has OpenBLAS's own pool: sized to every core here.
  const openblas = info.blasThreads >= 0;
  const threads = [...new Set([1, cores])];
  const blasThreads = openblas ? cores : 0;
  const backend = /ATen parallel backend: (\S+)/.exec(info.parallelInfo)?.[1] ?? 'unknown';
  const blas = /Math Kernel Library/.test(info.parallelInfo) ? 'MKL' : openblas ? 'OpenBLAS' : 'unknown BLAS';
  const threadText =
    `threads = libtorch intra-op threads (parallel backend ${backend}; ${blas} GEMMs and the int8 kernels run on that pool` +
    `${openblas ? `; OpenBLAS's own pool fixed at ${cores}` : ', no separate BLAS pool'}); each side is timed at ${threads.join(' and ')} and shown at its faster`;

  const speedResult =
    only === 'accuracy'
      ? undefined
      : await speed({
          sizes: quick ? SPEED_SIZES.slice(0, 1) : SPEED_SIZES,
          rounds: quick ? 2 : 3,
          reps: quick ? 3 : 5,
          threads,
          blasThreads,
        });
  const acc = only === 'speed' ? undefined : await accuracy({ steps, batch: 32, threads: cores });
  setThreads({ threads: cores, blasThreads });

  const targets: string[] = [];
  if (speedResult) {
    const checked = speedResult.checks.filter((c) => c.target !== undefined);
    const missed = checked.filter((c) => c.speedup < c.target!);
    const measured = new Set(checked.map((c) => c.what.split(' ')[0]));
    const notMeasured = SPEED_SIZES.map((s) => s.name).filter((n) => !measured.has(n));
    targets.push(
      `Target speed (int8 >= 1.3x fp32 at 1 x 16 and 1 x 128, >= 2.0x at 32 x 128, medium and large): **${
        missed.length ? 'not met' : notMeasured.length ? `met where measured (${notMeasured.join(', ')} not measured)` : 'met'
      }** (${checked.map((c) => `${c.what} ${c.speedup.toFixed(2)}x`).join(', ')}${missed.length ? `; below target: ${missed.map((c) => c.what).join(', ')}` : ''}).`,
    );
  }
  if (acc) {
    const lost = 100 * (acc.fp32 - acc.auto.accuracy);
    targets.push(
      `Target accuracy (${acc.auto.name} loses <= 0.5 points on the sentiment test set): **${lost <= 0.5 ? 'met' : 'not met'}** ` +
        `(fp32 ${(100 * acc.fp32).toFixed(1)}%, int8 ${(100 * acc.auto.accuracy).toFixed(1)}%, ${lost.toFixed(1)} points lost; ` +
        `label agreement ${(100 * acc.auto.agreement).toFixed(1)}%; logit drift max ${acc.auto.maxDrift.toExponential(1)}, mean ${acc.auto.meanDrift.toExponential(1)}).`,
    );
  }
  const fastestLine = speedResult
    ? `Fastest engine per shape: ${speedResult.fastest.map((f) => `${f.what} ${f.engine}${f.autoRatio > 1.005 ? ` (auto ${f.autoRatio.toFixed(2)}x its time)` : ''}`).join('; ')}.`
    : '';

  const section = [
    '## Int8 inference',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpu} (${cores} hardware threads; ISA: ${isa || 'unknown'}); libtorch ${info.torchVersion}, ` +
      `quantized engines ${info.quantizedEngines.map((e) => e.toLowerCase()).join(', ')}; toInt8's 'auto' picks ${await int8AutoEngine()}. ` +
      `Command: \`node dist/bench/int8.js${quick ? ' --quick' : ''}\` (part of \`npm run bench\`; run took ${((Date.now() - started) / 60_000).toFixed(1)} min).`,
    '',
    ...targets,
    '',
    ...(speedResult
      ? [
          '### Speed',
          '',
          `Classifier forward (predict), vocab ${VOCAB}, random init; medians of ${quick ? 2 : 3} rounds x ${quick ? 3 : 5} calls, every call a new batch of ` +
            `token ids (dynamic int8 quantizes each input's activations with their own scale). fp32 and the int8 models take turns in each round; ${threadText}, in parentheses.`,
          "int8 = `toInt8(quantize(model, { bits: 8 }))` with the engine 'auto' picks: the encoder's 4 Linear layers per block on libtorch's",
          'dynamic int8 kernels; attention matmuls, softmax, GELU, LayerNorm, embeddings and the head stay fp32. "drift" = max |logit| difference',
          'vs the fp32 model on one sequence; "kernel" = vs the 8-bit fake-quantized model (same weights, fp32 kernels): the activation quantization\'s share.',
          '',
          '| model (d/layers/heads) | batch x tokens | fp32 ms (threads) | int8 ms (threads) | speed-up | target | drift | kernel |',
          '|---|---|---|---|---|---|---|---|',
          ...speedResult.rows,
          '',
          `Quantized engines side by side (ms (threads), speed-up vs fp32). libtorch's x86 engine packs Linear layers with fbgemm (its oneDNN`,
          'dispatch is for convolutions), so x86 and fbgemm run the same kernel and differ by noise.',
          '',
          `| model | batch x tokens | fp32 | ${speedResult.engineColumns.map((e) => (e.includes('+') ? `auto (${e})` : e)).join(' | ')} | fastest |`,
          `|---|---|---|${speedResult.engineColumns.map(() => '---|').join('')}---|`,
          ...speedResult.engineRows,
          '',
          fastestLine,
          '',
          ...(speedResult.bf16Rows.length
            ? [
                "bf16: the same fp32 model predicted with `{ precision: 'bf16' }` (CPU autocast: GEMMs in bf16 on this CPU's native bf16",
                'instructions, weights cast per call; LayerNorm and softmax in fp32), in the same rounds. drift = max |logit| difference vs fp32.',
                '',
                '| model | batch x tokens | fp32 ms | bf16 ms | speed-up | drift |',
                '|---|---|---|---|---|---|',
                ...speedResult.bf16Rows,
                '',
              ]
            : [
                'bf16 inference is not measured: this CPU has no avx512_bf16 / amx_bf16 (cpuHasNativeBf16() is false), where libtorch computes',
                'bf16 GEMMs in a slow fallback; use fp32 or int8 there.',
                '',
              ]),
          'All timings (ms, median; "name threads"):',
          '',
          ...speedResult.details.map((l) => `- ${l}`),
          '',
        ]
      : []),
    ...(acc
      ? [
          '### Accuracy (sentiment test set)',
          '',
          ...acc.lines,
          '',
          '| model | test accuracy % | points lost | agreement with fp32 % | max logit drift | mean logit drift |',
          '|---|---|---|---|---|---|',
          ...acc.rows,
          '',
        ]
      : []),
  ].join('\n');
  publish(section, write);
}

runMain(main);
