/**
 * Data-parallel training on this machine: tokens/s of one process and of two ranks (`trainlarge launch
 * --nproc 2`), every process with 1 thread, at the same global batch (16 x 128 tokens); the seconds a step
 * spends in the gradient all-reduce and the bytes it all-reduces. Part of `npm run bench`: writes the
 * "## Data-parallel training" section of BENCHMARKS.md.
 *
 *   node dist/bench/dist.js [--steps 12] [--rounds 2] [--no-write]
 *
 * With --child it is one process of the measurement (alone, or a rank under the launcher): it trains the
 * medium MLM and prints one JSON line.
 */
import { spawnSync } from 'child_process';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { engineInfo, MlmDataset, Trainer, Transformer } from '../lib';
import { benchTokenizer, cpuName, median, publish, ROOT, runMain } from './report';
import { shapeOf, SIZES } from './sizes';

const VOCAB = 8000;
const T = 128;
const BATCH = 16; // global: each of N ranks trains BATCH / N rows
const MEDIUM = shapeOf(SIZES.medium);
const WARMUP = 3;

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

interface ChildResult {
  rank: number;
  worldSize: number;
  stepSeconds: number;
  commSeconds: number;
  commBytes: number;
  parameters: number;
}

async function child(): Promise<void> {
  const steps = flag('steps', 12);
  const tok = benchTokenizer(VOCAB);
  // Random documents: the step's cost does not depend on the text.
  let x = 12345;
  const docs = Array.from({ length: 200 }, () =>
    Array.from({ length: 500 }, () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return 5 + (x % (VOCAB - 5));
    }),
  );
  const data = MlmDataset.fromDocuments(docs, tok, { maxLen: T });
  const model = await Transformer.create({ vocabSize: VOCAB, maxLen: T, ...MEDIUM }, { seed: 1 });
  const world = Number(process.env.WORLD_SIZE ?? 1);
  const trainer = new Trainer(model, {
    maxSteps: WARMUP + steps,
    warmupSteps: 2,
    batchSize: BATCH / world,
    precision: 'fp32',
    distributed: 'auto',
  });
  const r = await trainer.fit(data, { evalEvery: 1_000_000 });
  const timed = r.history.filter((h) => h.type === 'train').slice(WARMUP);
  const result: ChildResult = {
    rank: trainer.rank,
    worldSize: trainer.worldSize,
    stepSeconds: median(timed.map((h) => h.seconds)),
    commSeconds: median(timed.map((h) => (h.type === 'train' ? (h.commSeconds ?? 0) : 0))),
    commBytes: trainer.worldSize > 1 ? model.parameterCount * 4 : 0, // every fp32 gradient, once per step
    parameters: model.parameterCount,
  };
  console.log(JSON.stringify(result));
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function runChild(argv: string[]): ChildResult {
  const r = spawnSync(process.execPath, [...argv], {
    cwd: ROOT,
    env: { ...process.env, OMP_NUM_THREADS: '1' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`bench dist: ${argv.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  const lines = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ChildResult);
  return lines.find((l) => l.rank === 0)!;
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) return child();
  const steps = flag('steps', 12);
  const rounds = flag('rounds', 2);
  const write = !process.argv.includes('--no-write');
  const started = Date.now();
  const load = os.loadavg()[0];
  const self = path.join(ROOT, 'dist', 'bench', 'dist.js');
  const cli = path.join(ROOT, 'dist', 'lib', 'cli.js');
  const one: ChildResult[] = [];
  const two: ChildResult[] = [];
  for (let round = 0; round < rounds; round++) {
    // The two sides take turns, so machine noise falls on both.
    one.push(runChild([self, '--child', '--steps', String(steps)]));
    const port = await freePort();
    two.push(
      runChild([
        cli,
        'launch',
        '--nproc',
        '2',
        '--threads',
        '1',
        '--master',
        `127.0.0.1:${port}`,
        self,
        '--',
        '--child',
        '--steps',
        String(steps),
      ]),
    );
    console.log(
      `round ${round + 1}: 1 process ${one[round].stepSeconds.toFixed(3)} s/step, 2 ranks ${two[round].stepSeconds.toFixed(3)} s/step`,
    );
  }
  const tokens = BATCH * T;
  const s1 = median(one.map((r) => r.stepSeconds));
  const s2 = median(two.map((r) => r.stepSeconds));
  const comm = median(two.map((r) => r.commSeconds));
  const mb = two[0].commBytes / 2 ** 20;
  const info = engineInfo();
  const section =
    `## Data-parallel training\n\n` +
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpuName()} (2 hardware threads), libtorch ${info.torchVersion}, ` +
    `c10d Gloo over loopback. Command: \`node dist/bench/dist.js\` (run took ${((Date.now() - started) / 60000).toFixed(1)} min; ` +
    `1-minute load average ${load.toFixed(1)} at its start: the 2 cores are shared with other work).\n\n` +
    `The medium MLM (d ${MEDIUM.dModel} / ${MEDIUM.layers} layers / ${MEDIUM.heads} heads, vocab ${VOCAB}, maxLen ${T}, fp32, ` +
    `${two[0].parameters.toLocaleString('en')} parameters), global batch ${BATCH} x ${T} = ${tokens} tokens a step: one process ` +
    `with batch ${BATCH}, or two ranks (\`trainlarge launch --nproc 2\`) with ${BATCH / 2} each; every process 1 thread. ` +
    `Medians over ${steps} timed steps (after ${WARMUP} untimed) of ${rounds} rounds, the sides in turn. A rank's step is the ` +
    `slowest rank's; "all-reduce" is the time a step waits for the gradient buckets after backward ends: the buckets start ` +
    `during backward, as soon as their gradients are in, so this is the part of the communication backward did not hide.\n\n` +
    `| processes | step s | tokens/s | speed-up | all-reduce s / step | all-reduce share of a step | bytes all-reduced / step |\n` +
    `|---|---|---|---|---|---|---|\n` +
    `| 1 (batch ${BATCH}) | ${s1.toFixed(3)} | ${Math.round(tokens / s1)} | 1.00x | - | - | - |\n` +
    `| 2 (batch ${BATCH / 2} each) | ${s2.toFixed(3)} | ${Math.round(tokens / s2)} | **${(s1 / s2).toFixed(2)}x** | ${comm.toFixed(3)} | ` +
    `**${((100 * comm) / s2).toFixed(1)}%** | ${mb.toFixed(1)} MiB (fp32 gradients) |\n\n` +
    `Per round (s/step, 1 / 2 processes): ${one.map((r, i) => `${r.stepSeconds.toFixed(3)} / ${two[i].stepSeconds.toFixed(3)}`).join(', ')}. ` +
    `Two cores bound the speed-up (each rank also builds the whole step's batch and keeps its rows); the figure to watch is the ` +
    `all-reduce share, which grows with parameters per token.\n`;
  publish(section, write);
}

runMain(main);
