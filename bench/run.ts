/**
 * Training throughput: trainlarge (the engine, via its public TS API) against two peers (bench/peer_train.py):
 * "PyTorch", the same model in plain PyTorch, and "transformers", RobertaForMaskedLM of the same sizes with sdpa
 * attention, side by side in one run, plus an fp32 GEMM peak for context.
 *
 *   npm run bench                       # all sizes (small, medium, large)
 *   node dist/bench/run.js --quick      # fewer steps, small + medium only
 *   node dist/bench/run.js --sizes small,medium [--no-write]
 *
 * Per size, the engine and the two peers take turns in rounds (the first side rotating each round); each round
 * builds a fresh model + optimizer per side, runs `warmup` untimed steps then `steps` timed ones. The medians are
 * over all timed steps of all rounds. The table is printed and written into BENCHMARKS.md under
 * "## Training throughput" (replacing that section if present).
 */
import { execFileSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import { cpuHasNativeBf16, engineInfo, MlmDataset, Trainer, Transformer } from '../lib';
import { benchTokenizer, cpuName, median, mlmStepFlops, PEER_PYTHON, ROOT, writeSection } from './report';
import { SIZES } from './sizes';

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
  { ...SIZES.small, warmup: 2, steps: 15, rounds: 3 },
  { ...SIZES.medium, warmup: 2, steps: 10, rounds: 3 },
  { ...SIZES.large, warmup: 1, steps: 5, rounds: 3 },
];
const QUICK: Size[] = [
  { ...SIZES.small, warmup: 2, steps: 8, rounds: 2 },
  { ...SIZES.medium, warmup: 1, steps: 5, rounds: 2 },
  { ...SIZES.large, warmup: 1, steps: 3, rounds: 2 },
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

const tokenizerLike = benchTokenizer(VOCAB);

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

/** The two peers: the same model in plain PyTorch, and transformers' RobertaForMaskedLM (bench/peer_train.py). */
type Peer = 'torch' | 'hf';
const PEERS: Peer[] = ['torch', 'hf'];
const LABEL: Record<Peer, string> = { torch: 'PyTorch', hf: 'transformers' };

interface PeerOut {
  stepSecondsMedian: number;
  tokensPerSecond: number;
  stepTimes?: number[];
  torch: string;
  transformers?: string | null;
  attention?: string | null;
  parameters: number;
  threads: number;
  blasThreads: number;
}

function peerRound(s: Size, precision: 'fp32' | 'bf16', seed: number, impl: Peer): PeerOut {
  const arg = JSON.stringify({
    impl,
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

/** One side's numbers in a row. */
interface Side {
  steps: number;
  step: number;
  tps: number;
  gflops: number;
  frac?: number;
  ratio?: number; // engine tokens/s / this side's (peers only)
  rounds?: string; // per-round engine / this side (peers only)
}

interface Row {
  size: string;
  shape: string;
  precision: string;
  engine?: Side;
  peers: Partial<Record<Peer, Side>>;
  note?: string;
}

function fmt(x: number | undefined, digits: number): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

function table(rows: Row[]): string {
  const all = (r: Row, f: (s: Side | undefined) => string) => [f(r.engine), ...PEERS.map((p) => f(r.peers[p]))].join(' / ');
  const cols = [
    'size',
    'model (d / layers / heads)',
    'precision',
    'timed steps (engine / PyTorch / transformers)',
    'engine step s (median)',
    'PyTorch step s (median)',
    'transformers step s (median)',
    'engine tok/s',
    'PyTorch tok/s',
    'transformers tok/s',
    'ratio engine / PyTorch',
    'ratio engine / transformers',
    'per-round ratios engine / PyTorch',
    'per-round ratios engine / transformers',
    'model GFLOP/s, % GEMM peak (engine / PyTorch / transformers)',
  ];
  const head = `| ${cols.join(' | ')} |`;
  const sep = `|${cols.map(() => '---').join('|')}|`;
  const lines = rows.map((r) => {
    if (r.note) return `| ${r.size} | ${r.shape} | ${r.precision} | skipped: ${r.note} |${' - |'.repeat(cols.length - 4)}`;
    const { torch, hf } = r.peers;
    return [
      '',
      r.size,
      r.shape,
      r.precision,
      all(r, (s) => (s ? String(s.steps) : '-')),
      fmt(r.engine?.step, 3),
      fmt(torch?.step, 3),
      fmt(hf?.step, 3),
      fmt(r.engine?.tps, 0),
      fmt(torch?.tps, 0),
      fmt(hf?.tps, 0),
      `**${fmt(torch?.ratio, 2)}x**`,
      `**${fmt(hf?.ratio, 2)}x**`,
      torch?.rounds ?? '-',
      hf?.rounds ?? '-',
      all(r, (s) => `${fmt(s?.gflops, 1)} (${fmt((s?.frac ?? NaN) * 100, 0)}%)`),
      '',
    ]
      .join(' | ')
      .trim();
  });
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
  const peerInfo: Partial<Record<Peer, string>> = {};
  const extraParameters: string[] = []; // RobertaForMaskedLM's parameters minus the plain peer's (= trainlarge's), per size
  const describe = (impl: Peer, p: PeerOut) => {
    peerInfo[impl] =
      impl === 'torch'
        ? `torch ${p.torch}, threads ${p.threads}`
        : `transformers ${p.transformers} RobertaForMaskedLM (attention ${p.attention}), torch ${p.torch}, threads ${p.threads}`;
  };
  /** One size at one precision: the engine and both peers in rounds, the first side rotating each round. */
  const measure = async (s: Size, precision: 'fp32' | 'bf16'): Promise<void> => {
    const shape = `${s.dModel} / ${s.layers} / ${s.heads}`;
    const flops = (n: number) => mlmStepFlops({ ...s, vocab: VOCAB, maxLen: MAX_LEN, maskProb: MASK_PROB }, n);
    const times: Record<'engine' | Peer, number[]> = { engine: [], torch: [], hf: [] };
    const roundRatios: Record<Peer, number[]> = { torch: [], hf: [] };
    const parameters: Partial<Record<Peer, number>> = {};
    let tokens = BATCH * MAX_LEN;
    for (let round = 0; round < s.rounds; round++) {
      // Rotate which side goes first each round, so drift (thermal, neighbours) hits all sides alike.
      const sides: Array<'engine' | Peer> = ['engine', ...PEERS];
      const order = sides.map((_, i) => sides[(i + round) % sides.length]);
      const roundMedian: Partial<Record<'engine' | Peer, number>> = {};
      for (const side of order) {
        if (side === 'engine') {
          const e = await engineRound(s, precision, 1 + round);
          times.engine.push(...e.times);
          tokens = e.tokens;
          roundMedian.engine = median(e.times);
        } else {
          const p = peerRound(s, precision, 1 + round, side);
          times[side].push(...(p.stepTimes ?? [p.stepSecondsMedian]));
          roundMedian[side] = p.stepSecondsMedian;
          describe(side, p);
          parameters[side] = p.parameters;
        }
        console.log(`  ${s.name} ${precision} round ${round + 1} ${side.padEnd(6)}: median ${roundMedian[side]!.toFixed(3)} s/step`);
      }
      for (const p of PEERS) roundRatios[p].push(roundMedian[p]! / roundMedian.engine!); // same tokens per step on all sides
    }
    const stats = (ts: number[], tok: number): Side => {
      const step = median(ts);
      return { steps: ts.length, step, tps: tok / step, gflops: flops(tokens) / step / 1e9 };
    };
    const engine = stats(times.engine, tokens);
    const row: Row = { size: s.name, shape, precision, engine, peers: {} };
    for (const p of PEERS) {
      const ps = stats(times[p], BATCH * MAX_LEN);
      row.peers[p] = { ...ps, ratio: engine.tps / ps.tps, rounds: roundRatios[p].map((x) => x.toFixed(2)).join(', ') };
    }
    rows.push(row);
    if (precision === 'fp32' && parameters.torch !== undefined && parameters.hf !== undefined)
      extraParameters.push(`${s.name} ${parameters.hf - parameters.torch}`);
    console.log(
      `${s.name} ${precision}: engine ${engine.tps.toFixed(0)} tok/s, ` +
        PEERS.map(
          (p) => `${LABEL[p]} ${row.peers[p]!.tps.toFixed(0)} tok/s (engine / ${LABEL[p]} ${row.peers[p]!.ratio!.toFixed(2)}x)`,
        ).join(', '),
    );
  };
  for (const s of plan) await measure(s, 'fp32');

  // GEMM peak again after the training runs: the best of the two is the peak (one may hit a noisy moment).
  const gemm2 = gemmPeak();
  gemmRuns.push(gemm2.gflops);
  console.log(`GEMM peak again: ${gemm2.gflops.toFixed(1)} GFLOP/s`);
  gemm.gflops = Math.max(...gemmRuns);

  if (cpuHasNativeBf16()) {
    // Fewer steps a round than fp32 (bf16 is the second question), still in rotating rounds: one round was too noisy.
    for (const s of plan)
      await measure({ ...s, rounds: Math.min(s.rounds, 2), warmup: 1, steps: Math.max(3, Math.floor(s.steps / 2)) }, 'bf16');
  } else {
    rows.push({
      size: 'all',
      shape: '-',
      precision: 'bf16',
      peers: {},
      note: 'this CPU has no avx512_bf16/amx_bf16 (cpuHasNativeBf16() is false); libtorch falls back to a generic bf16 GEMM (~15 s per medium step), so bf16 is not measured',
    });
  }
  for (const r of rows) for (const s of [r.engine, ...Object.values(r.peers)]) if (s) s.frac = s.gflops / gemm.gflops;

  const fp32 = rows.filter((r) => r.precision === 'fp32' && r.engine);
  const ratios = (p: Peer) => fp32.map((r) => `${r.size} ${r.peers[p]!.ratio!.toFixed(2)}x`).join(', ');
  // Issue 15's targets, fp32: >= 1.1x PyTorch and >= 1.5x transformers at every size, >= 75% of the GEMM peak at the large size.
  const target = (label: string, ok: boolean, detail: string) => `- ${label}: **${ok ? 'met' : 'not met'}** (${detail}).`;
  const every = (p: Peer, at: number) => fp32.length > 0 && fp32.every((r) => r.peers[p]!.ratio! >= at);
  const large = fp32.find((r) => r.size === 'large');
  const largeShare = large?.engine?.frac;
  const verdict = [
    'Targets (fp32, medians of this run):',
    target('engine >= 1.1x PyTorch at every size', every('torch', 1.1), ratios('torch')),
    target('engine >= 1.5x transformers at every size', every('hf', 1.5), ratios('hf')),
    target(
      'engine >= 75% of the GEMM peak at the large size',
      largeShare !== undefined && largeShare >= 0.75,
      largeShare !== undefined ? `${(100 * largeShare).toFixed(0)}%` : 'large not measured',
    ),
  ].join('\n');
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  const today = new Date().toISOString().slice(0, 10);

  const section = [
    '## Training throughput',
    '',
    `Measured ${today} on ${cpu} (${os.cpus().length} hardware threads, no GPU); engine libtorch ${info.torchVersion}; peers (the project's .venv, bench/peer_train.py):`,
    `PyTorch = ${peerInfo.torch ?? 'n/a'}; transformers = ${peerInfo.hf ?? 'n/a'}.`,
    `Command: \`${cmd}\` (the training part of \`npm run bench\`; run took ${minutes} min).`,
    process.env.GLIBC_TUNABLES
      ? `glibc malloc: \`GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES}\` for the whole run, so on every side (the peers inherit it). ` +
        'glibc hands freed blocks of 32 MiB and more back to the kernel, so a step that allocates large fresh tensors faults their ' +
        "pages in again; on this VM those faults at times came to dominate the transformers peer's step at the small size (its full-vocabulary " +
        'logits are 64 MB). A higher mmap threshold keeps freed memory in the heap on every side, and the comparison measures the computation.'
      : 'glibc malloc: the defaults (GLIBC_TUNABLES unset).',
    '',
    `MLM encoders, vocab ${VOCAB}, maxLen ${MAX_LEN}, batch ${BATCH} (${BATCH * MAX_LEN} tokens/step), ffn 4 x dModel, dropout 0.1, post-LN, fp32,`,
    `threads ${THREADS} (libtorch intra-op; MKL GEMMs run there on pip's torch) on every side. Three sides: the engine; "PyTorch", the same model`,
    'written in plain PyTorch (test/peer/trainlarge_peer.py: fused qkv, explicit softmax attention, MLM head on the masked positions only);',
    '"transformers", `RobertaForMaskedLM(RobertaConfig(...))` with the same sizes, dropout, GELU, LayerNorm eps and tied decoder, built with',
    '`attn_implementation="sdpa"` and trained as its users do, `model(input_ids, labels=labels)` (labels -100 off the masked positions),',
    'so its LM head runs on every position. A step is timed whole on every side: batch building + masking (the same recipe), forward + loss,',
    'backward, global-norm clip 1.0, AdamW (lr 5e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0.01 on >= 2-D weights). The sides take turns',
    'per size in rounds (fresh model each round, the first side rotating every round); each column is the median over all timed steps of',
    'all rounds (warm-up steps are untimed). Ratio = engine tokens/s / peer tokens/s from those medians; "per-round ratios" are each',
    "round's engine / peer ratio of round medians (the sides of a round run back to back), shown to expose machine noise.",
    `RobertaForMaskedLM has 2 x dModel parameters more than trainlarge's model (${extraParameters.join(', ') || 'n/a'}): one token-type row and`,
    "one more position row (RoBERTa's position ids start at padId + 1); its q, k, v are three Linears where trainlarge fuses them.",
    '',
    table(rows),
    '',
    `GEMM peak: fp32 1024 x 1024 x 1024 torch.mm in the peer's python, ${THREADS} threads, best of 10, measured before and after the`,
    `training runs (${gemmRuns.map((g) => g.toFixed(1)).join(' and ')} GFLOP/s); the higher is the peak: **${gemm.gflops.toFixed(1)} GFLOP/s**.`,
    'Model FLOPs per step = tokens x (6 x Nlayers + 12 x layers x T x d + 6 x (d^2 + d x V) x 0.15), with Nlayers = layers x (4 d^2 + 2 d ffn)',
    '(qkv, output projection, fc1, fc2 weights); 12 x layers x T x d is the attention q k^T and probs @ v (forward + backward);',
    'the last term is the MLM head (dense + tied decoder) on the ~15% masked positions. Embeddings, LayerNorm, softmax, GELU and the optimizer',
    "are not counted. The same count is used for every side (transformers' head on all positions does more work than it is credited with).",
    '"% GEMM peak" = model GFLOP/s / GEMM peak.',
    '',
    'What the engine does that the PyTorch peer does not (all in native/, measured with the same bench): dropout is one fused pass',
    "writing the output and a 1-byte mask from a counter-based hash (ATen's CPU dropout is bernoulli_ into a float tensor, a division",
    "and a multiplication; that bernoulli_ alone took 8% of a medium step in a profile here); AdamW is libtorch's fused kernel (the peer's is foreach), with",
    'gradient clipping folded into its grad_scale; q, k and v are laid out per head by one copy (unbind), not three selects whose',
    'gradients are zero-filled full-size tensors. Attention without dropout (attentionDropout 0, and all inference) goes through',
    "libtorch's fused scaled_dot_product_attention.",
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
