/**
 * Two builds of the addon (two libtorches) side by side in one run: the medium training step and fp32 /
 * int8 classifier inference, each build in its own child process, alternating A, B, A, B, ...
 *
 *   node dist/bench/engines.js --a DIR_OR_ADDON --b DIR_OR_ADDON [--rounds 3] [--labels A,B] [--no-write]
 *
 * A build is a folder holding trainlarge.node (+ trainlarge_spm.so), or the .node file itself, measured by
 * this checkout's library; or a whole checkout (a folder with dist/bench/engines.js and build/), measured
 * by its own library, so two versions of trainlarge compare as their users would run them. Each child
 * measures every thread setting in THREADS, and each side is reported with its fastest. Writes the
 * "## Engines side by side" section of BENCHMARKS.md.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { engineInfo, MlmDataset, quantize, setThreads, toInt8, Trainer, Transformer } from '../lib';
import { benchTokenizer, cpuName, median, publish, runMain } from './report';
import { shapeOf, SIZES } from './sizes';

const VOCAB = 8000;
const T = 128;
const BATCH = 16;
const MEDIUM = shapeOf(SIZES.medium);
const THREADS: Array<[number, number]> = [
  [1, 2],
  [2, 2],
]; // [libtorch intra-op, OpenBLAS (where the build has it)]
const SHAPES: Array<[number, number]> = [
  [1, 16],
  [1, 128],
  [8, 128],
  [32, 128],
];

interface ChildResult {
  torch: string;
  step: Record<string, number[]>;
  fp32: Record<string, number[]>;
  int8: Record<string, number[]>;
}

const tokenizerLike = benchTokenizer(VOCAB);

function ids(batch: number, length: number, call: number): number[][] {
  return Array.from({ length: batch }, (_, b) =>
    Array.from({ length }, (_, i) => 5 + ((b * 7919 + i * 104729 + call * 15485863) % (VOCAB - 10))),
  );
}

/** One round in this process: every thread setting, training steps then inference latencies. */
async function child(): Promise<ChildResult> {
  const res: ChildResult = { torch: engineInfo().torchVersion, step: {}, fp32: {}, int8: {} };
  const stream = Int32Array.from({ length: 300_000 }, (_, i) => 5 + ((i * 2654435761) % (VOCAB - 5)));
  const data = MlmDataset.fromStream(stream, tokenizerLike, { maxLen: T });
  for (const [th, blas] of THREADS) {
    const key = `${th}+${blas}`;
    const mlm = await Transformer.create({ task: 'mlm', vocabSize: VOCAB, maxLen: T, ...MEDIUM }, { seed: 1 });
    const r = await new Trainer(mlm, {
      maxSteps: 6,
      batchSize: BATCH,
      threads: th,
      blasThreads: blas,
      lr: 5e-4,
      warmupSteps: 0,
      seed: 1,
    }).fit(data, { evalEvery: 1e9 });
    res.step[key] = r.history
      .filter((h) => h.type === 'train')
      .slice(2)
      .map((h) => (h as { seconds: number }).seconds);
    mlm.dispose();
    setThreads({ threads: th, blasThreads: blas });
    const fp32 = await Transformer.create({ task: 'classify', numLabels: 2, vocabSize: VOCAB, maxLen: T, ...MEDIUM }, { seed: 1 });
    const int8 = await toInt8(await quantize(fp32, { bits: 8 }));
    for (const [b, t] of SHAPES) {
      for (const [name, model] of [
        ['fp32', fp32],
        ['int8', int8],
      ] as const) {
        await model.predict(ids(b, t, 0));
        const times: number[] = [];
        for (let call = 1; call <= 8; call++) {
          const x = ids(b, t, call);
          const t0 = process.hrtime.bigint();
          await model.predict(x);
          times.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        res[name][`${b}x${t} ${key}`] = times;
      }
    }
    fp32.dispose();
    int8.dispose();
  }
  return res;
}

function addonOf(p: string): string {
  const file = fs.statSync(p).isDirectory() ? path.join(p, 'trainlarge.node') : p;
  if (!fs.existsSync(file)) throw new Error(`bench engines: ${file} does not exist`);
  return path.resolve(file);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    process.stdout.write('\n' + JSON.stringify(await child()) + '\n');
    return;
  }
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const a = get('--a'),
    b = get('--b');
  if (!a || !b) throw new Error('usage: node dist/bench/engines.js --a DIR_OR_ADDON --b DIR_OR_ADDON [--rounds N] [--no-write]');
  const rounds = Number(get('--rounds') ?? 3);
  // A whole checkout is measured by its own library and its own build/; an addon by this checkout's library.
  const sides = [a, b].map((x) => {
    const own = path.join(x, 'dist', 'bench', 'engines.js');
    return fs.existsSync(own) ? { addon: addonOf(path.join(x, 'build')), script: own } : { addon: addonOf(x), script: __filename };
  });
  const labels = get('--labels')?.split(',') ?? ['', ''];
  const all: ChildResult[][] = [[], []];
  for (let r = 0; r < rounds; r++) {
    for (const k of r % 2 === 0 ? [0, 1] : [1, 0]) {
      const out = execFileSync(process.execPath, [sides[k].script, '--child'], {
        encoding: 'utf8',
        env: { ...process.env, TRAINLARGE_ADDON: sides[k].addon },
        maxBuffer: 1 << 24,
      });
      all[k].push(JSON.parse(out.trim().split('\n').pop()!) as ChildResult);
      console.log(`round ${r + 1}: ${all[k][all[k].length - 1].torch} done`);
    }
  }
  /** Median over rounds of one measure, at the build's fastest thread setting. */
  const best = (k: number, what: 'step' | 'fp32' | 'int8', shape = '') => {
    const keys = THREADS.map(([th, bl]) => `${shape ? shape + ' ' : ''}${th}+${bl}`);
    return keys.map((key) => ({ key: key.split(' ').pop()!, v: median(all[k].flatMap((c) => c[what][key])) })).sort((x, y) => x.v - y.v)[0];
  };
  const names = all.map((runs, k) => `${labels[k] ? labels[k] + ', ' : ''}libtorch ${runs[0].torch}`);
  const row = (label: string, what: 'step' | 'fp32' | 'int8', shape = '', unit = 1, digits = 1) => {
    const [x, y] = [best(0, what, shape), best(1, what, shape)];
    return `| ${label} | ${(x.v * unit).toFixed(digits)} (${x.key}) | ${(y.v * unit).toFixed(digits)} (${y.key}) | ${(x.v / y.v).toFixed(2)}x |`;
  };
  const rows = [
    row(`medium training step, B${BATCH} x T${T} (ms)`, 'step', '', 1000, 0),
    ...SHAPES.flatMap(([bb, t]) => [
      row(`fp32 predict ${bb} x ${t} (ms)`, 'fp32', `${bb}x${t}`),
      row(`int8 predict ${bb} x ${t} (ms)`, 'int8', `${bb}x${t}`),
    ]),
  ];
  const section = [
    '## Engines side by side',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpuName()} (${os.cpus().length} hardware threads, no GPU). Command:`,
    `\`node dist/bench/engines.js --a ${a} --b ${b} --rounds ${rounds}${get('--labels') ? ` --labels ${get('--labels')}` : ''}\`: each build in its own child process, alternating, ${rounds} rounds;`,
    `medians over rounds (training: 4 timed steps after 2 untimed per round; inference: 8 calls per round, each a new input).`,
    `Each side at its faster thread setting (intra-op + OpenBLAS threads; libtorch 2.x from pip uses MKL, where the intra-op count governs BLAS too).`,
    `Medium encoder: d${MEDIUM.dModel}, ${MEDIUM.layers} layers, ${MEDIUM.heads} heads, vocab ${VOCAB}; int8 = toInt8(quantize(model, { bits: 8 })).`,
    '',
    `| measure | A: ${names[0]} | B: ${names[1]} | B speed-up (A / B) |`,
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
  publish(section, !argv.includes('--no-write'));
}

runMain(main);
