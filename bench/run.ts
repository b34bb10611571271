/**
 * Training throughput: trainlarge (the engine, via its public TS API) against PyTorch (bench/peer_train.py,
 * the same model in plain PyTorch), side by side in one run, plus an fp32 GEMM peak for context.
 *
 *   npm run bench                       # all sizes (small, medium, large)
 *   node dist/bench/run.js --quick      # fewer steps, small + medium only
 *   node dist/bench/run.js --sizes small,medium [--no-write]
 *
 * Per size, engine and peer alternate in rounds (engine, peer, engine, peer, ...); each round builds a
 * fresh model + optimizer, runs `warmup` untimed steps then `steps` timed ones. The medians are over all
 * timed steps of all rounds. The table is printed and written into BENCHMARKS.md under
 * "## Training throughput" (replacing that section if present).
 */
import { execFileSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import { cpuHasNativeBf16, engineInfo, MlmDataset, Trainer, Transformer, TokenizerLike } from '../lib';
import { cpuName, median, mlmStepFlops, PEER_PYTHON, ROOT, writeSection } from './report';

const PY = PEER_PYTHON;
const PEER = path.join(ROOT, 'bench', 'peer_train.py');

const VOCAB = 8000;
const MAX_LEN = 128;
const BATCH = 16;
const MASK_PROB = 0.15;
const THREADS = 2; // pip libtorch 2.x: MKL GEMMs run on the intra-op pool (BENCHMARKS.md, "Engines side by side")
const BLAS_THREADS = 2;

interface Size {
  name: string;
  dModel: number;
  layers: number;
  heads: number;
  warmup: number;
  steps: number;
  rounds: number;
}

const FULL: Size[] = [
  { name: 'small', dModel: 128, layers: 2, heads: 2, warmup: 2, steps: 15, rounds: 3 },
  { name: 'medium', dModel: 256, layers: 4, heads: 4, warmup: 2, steps: 10, rounds: 3 },
  { name: 'large', dModel: 512, layers: 8, heads: 8, warmup: 1, steps: 5, rounds: 3 },
];
const QUICK: Size[] = [
  { name: 'small', dModel: 128, layers: 2, heads: 2, warmup: 2, steps: 8, rounds: 2 },
  { name: 'medium', dModel: 256, layers: 4, heads: 4, warmup: 1, steps: 5, rounds: 2 },
  { name: 'large', dModel: 512, layers: 8, heads: 8, warmup: 1, steps: 3, rounds: 2 },
];

function parseArgs(argv: string[]): { quick: boolean; sizes: string[]; write: boolean } {
  let quick = false;
  let write = true;
  let sizes: string[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') quick = true;
    else if (a === '--no-write') write = false;
    else if (a === '--sizes') sizes = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a.startsWith('--sizes=')) sizes = a.slice(8).split(',').filter(Boolean);
    else if (a === '--help' || a === '-h') {
      console.log('usage: node dist/bench/run.js [--quick] [--sizes small,medium,large] [--no-write]');
      process.exit(0);
    } else throw new Error(`bench: unknown argument ${a}`);
  }
  const known = FULL.map((s) => s.name);
  for (const s of sizes ?? []) if (!known.includes(s)) throw new Error(`bench: unknown size '${s}' (known: ${known.join(', ')})`);
  return { quick, write, sizes: sizes ?? (quick ? ['small', 'medium'] : known) };
}

function modelConfig(s: Size) {
  return {
    task: 'mlm' as const,
    vocabSize: VOCAB,
    maxLen: MAX_LEN,
    dModel: s.dModel,
    layers: s.layers,
    heads: s.heads,
    ffn: 4 * s.dModel,
    dropout: 0.1,
    attentionDropout: 0.1,
    norm: 'post' as const,
    layerNormEps: 1e-5,
    padId: 0,
  };
}

const tokenizerLike: TokenizerLike = {
  vocabSize: VOCAB,
  special: { pad: 0, cls: 1, eos: 2, unk: 3, mask: 4 },
  encode: () => {
    throw new Error('bench tokenizer: encode is not used');
  },
  decode: () => '',
};

let dataset: MlmDataset | undefined;
function data(): MlmDataset {
  if (!dataset) {
    const stream = Int32Array.from({ length: 500_000 }, () => 5 + Math.floor(Math.random() * (VOCAB - 5)));
    dataset = MlmDataset.fromStream(stream, tokenizerLike, { maxLen: MAX_LEN });
  }
  return dataset;
}

async function engineRound(s: Size, precision: 'fp32' | 'bf16', seed: number): Promise<{ times: number[]; tokens: number }> {
  const model = await Transformer.create(modelConfig(s), { seed });
  const trainer = new Trainer(model, {
    maxSteps: s.warmup + s.steps,
    batchSize: BATCH,
    precision,
    threads: THREADS,
    blasThreads: BLAS_THREADS,
    lr: 5e-4,
    warmupSteps: 0,
    seed,
  });
  const r = await trainer.fit(data(), { evalEvery: 1e9 });
  const train = r.history.filter((h) => h.type === 'train') as Array<{ seconds: number; tokens: number }>;
  const timed = train.slice(s.warmup);
  return { times: timed.map((h) => h.seconds), tokens: timed.length ? timed[0].tokens : BATCH * MAX_LEN };
}

interface PeerOut {
  stepSecondsMedian: number;
  tokensPerSecond: number;
  stepTimes?: number[];
  torch: string;
  threads: number;
  blasThreads: number;
}

function peerRound(s: Size, precision: 'fp32' | 'bf16', seed: number): PeerOut {
  const arg = JSON.stringify({
    model: modelConfig(s),
    batchSize: BATCH,
    precision,
    threads: THREADS,
    blasThreads: BLAS_THREADS,
    steps: s.steps,
    warmup: s.warmup,
    seed,
    maskProb: MASK_PROB,
  });
  const out = execFileSync(PY, [PEER, arg], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = out.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as PeerOut;
}

/** fp32 GEMM peak (n x n x n, torch.mm in the peer's python with the same threads). */
function gemmPeak(n = 1024, reps = 10): { gflops: number; torch: string } {
  const code = `
import os, sys, time, json, statistics
os.environ['OPENBLAS_NUM_THREADS'] = '${BLAS_THREADS}'
import torch
torch.set_num_threads(${THREADS})
n = ${n}
a = torch.randn(n, n); b = torch.randn(n, n); c = torch.empty(n, n)
for _ in range(3): torch.mm(a, b, out=c)
ts = []
for _ in range(${reps}):
    t0 = time.perf_counter(); torch.mm(a, b, out=c); ts.append(time.perf_counter() - t0)
print(json.dumps({'gflops': 2 * n ** 3 / min(ts) / 1e9, 'gflopsMedian': 2 * n ** 3 / statistics.median(ts) / 1e9, 'torch': torch.__version__}))
`;
  const out = execFileSync(PY, ['-c', code], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: String(BLAS_THREADS) } });
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as { gflops: number; torch: string };
}

interface Row {
  size: string;
  shape: string;
  precision: string;
  steps: string;
  engineStep?: number;
  peerStep?: number;
  engineTps?: number;
  peerTps?: number;
  ratio?: number;
  engineGflops?: number;
  peerGflops?: number;
  engineFrac?: number;
  peerFrac?: number;
  rounds?: string;
  note?: string;
}

function fmt(x: number | undefined, digits: number): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

function table(rows: Row[]): string {
  const head =
    '| size | model (d / layers / heads) | precision | timed steps (engine / peer) | engine step s (median) | PyTorch step s (median) | engine tok/s | PyTorch tok/s | ratio engine / PyTorch | per-round ratios | engine model GFLOP/s (% GEMM peak) | PyTorch model GFLOP/s (% GEMM peak) |';
  const sep =
    '|' +
    head
      .split('|')
      .slice(1, -1)
      .map(() => '---')
      .join('|') +
    '|';
  const lines = rows.map((r) =>
    r.note
      ? `| ${r.size} | ${r.shape} | ${r.precision} | skipped: ${r.note} | - | - | - | - | - | - | - | - |`
      : `| ${r.size} | ${r.shape} | ${r.precision} | ${r.steps} | ${fmt(r.engineStep, 3)} | ${fmt(r.peerStep, 3)} | ${fmt(r.engineTps, 0)} | ${fmt(r.peerTps, 0)} | **${fmt(r.ratio, 2)}x** | ${r.rounds ?? '-'} | ${fmt(r.engineGflops, 1)} (${fmt((r.engineFrac ?? NaN) * 100, 0)}%) | ${fmt(r.peerGflops, 1)} (${fmt((r.peerFrac ?? NaN) * 100, 0)}%) |`,
  );
  return [head, sep, ...lines].join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const plan = (args.quick ? QUICK : FULL).filter((s) => args.sizes.includes(s.name));
  const info = engineInfo();
  const cpu = cpuName();
  const cmd = `node dist/bench/run.js${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}`;
  const started = Date.now();
  console.log(`trainlarge bench: libtorch ${info.torchVersion}, ${cpu}, ${os.cpus().length} hardware threads; ${cmd}`);

  const gemm = gemmPeak();
  const gemmRuns = [gemm.gflops];
  console.log(
    `GEMM peak (fp32 1024^3 torch.mm, ${THREADS} threads): ${gemm.gflops.toFixed(1)} GFLOP/s (best of 10); peer torch ${gemm.torch}`,
  );

  const rows: Row[] = [];
  let peerInfo = '';
  for (const s of plan) {
    const shape = `${s.dModel} / ${s.layers} / ${s.heads}`;
    const eTimes: number[] = [];
    const roundRatios: number[] = [];
    let eRound = 0;
    let pRound = 0;
    const pMedians: number[] = [];
    const pTimes: number[] = [];
    let tokens = BATCH * MAX_LEN;
    for (let round = 0; round < s.rounds; round++) {
      // Alternate which side goes first each round, so drift (thermal, neighbours) hits both alike.
      const order = round % 2 === 0 ? ['engine', 'peer'] : ['peer', 'engine'];
      for (const side of order) {
        if (side === 'engine') {
          const e = await engineRound(s, 'fp32', 1 + round);
          eTimes.push(...e.times);
          tokens = e.tokens;
          eRound = median(e.times);
          console.log(`  ${s.name} round ${round + 1} engine: median ${median(e.times).toFixed(3)} s/step (${e.times.length} steps)`);
        } else {
          const p = peerRound(s, 'fp32', 1 + round);
          pMedians.push(p.stepSecondsMedian);
          pRound = p.stepSecondsMedian;
          if (p.stepTimes) pTimes.push(...p.stepTimes);
          peerInfo = `torch ${p.torch}, threads ${p.threads}, OpenBLAS threads ${p.blasThreads}`;
          console.log(`  ${s.name} round ${round + 1} peer:   median ${p.stepSecondsMedian.toFixed(3)} s/step (${s.steps} steps)`);
        }
      }
      roundRatios.push(pRound / eRound); // same tokens per step on both sides
    }
    const engineStep = median(eTimes);
    const peerStep = pTimes.length ? median(pTimes) : median(pMedians);
    const engineTps = tokens / engineStep;
    const peerTps = (BATCH * MAX_LEN) / peerStep;
    const flops = mlmStepFlops({ ...s, vocab: VOCAB, maxLen: MAX_LEN, maskProb: MASK_PROB }, tokens);
    const row: Row = {
      size: s.name,
      shape,
      precision: 'fp32',
      steps: `${eTimes.length} / ${s.steps * s.rounds}`,
      engineStep,
      peerStep,
      engineTps,
      peerTps,
      ratio: engineTps / peerTps,
      engineGflops: flops / engineStep / 1e9,
      peerGflops: flops / peerStep / 1e9,
      rounds: roundRatios.map((x) => x.toFixed(2)).join(', '),
    };
    row.engineFrac = row.engineGflops! / gemm.gflops;
    row.peerFrac = row.peerGflops! / gemm.gflops;
    rows.push(row);
    console.log(`${s.name}: engine ${engineTps.toFixed(0)} tok/s, PyTorch ${peerTps.toFixed(0)} tok/s, ratio ${row.ratio!.toFixed(2)}x`);
  }

  // GEMM peak again after the training runs: the best of the two is the peak (one may hit a noisy moment).
  const gemm2 = gemmPeak();
  gemmRuns.push(gemm2.gflops);
  console.log(`GEMM peak again: ${gemm2.gflops.toFixed(1)} GFLOP/s`);
  gemm.gflops = Math.max(...gemmRuns);
  for (const r of rows) {
    if (r.engineGflops !== undefined) r.engineFrac = r.engineGflops / gemm.gflops;
    if (r.peerGflops !== undefined) r.peerFrac = r.peerGflops / gemm.gflops;
  }

  if (cpuHasNativeBf16()) {
    for (const s of plan) {
      const bs: Size = { ...s, rounds: 1, warmup: 1, steps: Math.max(3, Math.floor(s.steps / 2)) };
      const e = await engineRound(bs, 'bf16', 1);
      const p = peerRound(bs, 'bf16', 1);
      const es = median(e.times);
      const flops = mlmStepFlops({ ...s, vocab: VOCAB, maxLen: MAX_LEN, maskProb: MASK_PROB }, e.tokens);
      rows.push({
        size: s.name,
        shape: `${s.dModel} / ${s.layers} / ${s.heads}`,
        precision: 'bf16',
        steps: `${e.times.length} / ${bs.steps}`,
        engineStep: es,
        peerStep: p.stepSecondsMedian,
        engineTps: e.tokens / es,
        peerTps: p.tokensPerSecond,
        ratio: e.tokens / es / p.tokensPerSecond,
        engineGflops: flops / es / 1e9,
        peerGflops: flops / p.stepSecondsMedian / 1e9,
        engineFrac: flops / es / 1e9 / gemm.gflops,
        peerFrac: flops / p.stepSecondsMedian / 1e9 / gemm.gflops,
      });
    }
  } else {
    rows.push({
      size: 'all',
      shape: '-',
      precision: 'bf16',
      steps: '',
      note: 'this CPU has no avx512_bf16/amx_bf16 (cpuHasNativeBf16() is false); libtorch falls back to a generic bf16 GEMM (~15 s per medium step), so bf16 is not measured',
    });
  }

  const fp32 = rows.filter((r) => r.precision === 'fp32' && r.ratio !== undefined);
  const minRatio = Math.min(...fp32.map((r) => r.ratio!));
  const met = fp32.length > 0 && fp32.every((r) => r.ratio! >= 1.3);
  const verdict = met
    ? `Target (engine >= 1.3x PyTorch at every size): **met** (lowest ratio ${minRatio.toFixed(2)}x).`
    : `Target (engine >= 1.3x PyTorch at every size): **not met** (ratios ${fp32.map((r) => `${r.size} ${r.ratio!.toFixed(2)}x`).join(', ')}).`;
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  const today = new Date().toISOString().slice(0, 10);

  const section = [
    '## Training throughput',
    '',
    `Measured ${today} on ${cpu} (${os.cpus().length} hardware threads, no GPU); engine libtorch ${info.torchVersion}; peer ${peerInfo || 'n/a'} (the project's .venv, bench/peer_train.py).`,
    `Command: \`npm run bench\` = \`${cmd}\` (run took ${minutes} min).`,
    '',
    `MLM encoders, vocab ${VOCAB}, maxLen ${MAX_LEN}, batch ${BATCH} (${BATCH * MAX_LEN} tokens/step), ffn 4 x dModel, dropout 0.1, post-LN, fp32,`,
    `threads ${THREADS} (libtorch intra-op; MKL GEMMs run there on pip's torch) on both sides. A step is timed whole on both sides: batch building +`,
    'masking, forward + loss (MLM head on the masked positions only), backward, global-norm clip 1.0, AdamW. Engine and PyTorch alternate',
    'per size in rounds (fresh model each round, order swapped every round); each column is the median over all timed steps of all rounds',
    '(warm-up steps are untimed). Ratio = engine tokens/s / PyTorch tokens/s from those medians; "per-round ratios" are each round\'s',
    'engine/PyTorch ratio of round medians (the two sides of a round run back to back), shown to expose machine noise.',
    '',
    table(rows),
    '',
    `GEMM peak: fp32 1024 x 1024 x 1024 torch.mm in the peer's python, ${THREADS} threads, best of 10, measured before and after the`,
    `training runs (${gemmRuns.map((g) => g.toFixed(1)).join(' and ')} GFLOP/s); the higher is the peak: **${gemm.gflops.toFixed(1)} GFLOP/s**.`,
    'Model FLOPs per step = tokens x (6 x Nlayers + 12 x layers x T x d + 6 x (d^2 + d x V) x 0.15), with Nlayers = layers x (4 d^2 + 2 d ffn)',
    '(qkv, output projection, fc1, fc2 weights); 12 x layers x T x d is the attention q k^T and probs @ v (forward + backward);',
    'the last term is the MLM head (dense + tied decoder) on the ~15% masked positions. Embeddings, LayerNorm, softmax, GELU and the optimizer',
    'are not counted. "% GEMM peak" = model GFLOP/s / GEMM peak.',
    '',
    verdict,
    '',
  ].join('\n');

  console.log('\n' + section);
  if (args.write) writeSection(section);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
