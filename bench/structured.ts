/**
 * What pruning does to CPU inference: predict latency of a medium classifier dense, with unstructured
 * sparsity (masks: the matrices keep their shapes), and with whole heads / FFN units removed (structured:
 * smaller matrices). Part of `npm run bench`: writes the "## Pruning and inference speed" section of BENCHMARKS.md.
 *
 *   node dist/bench/structured.js [--rounds 3] [--threads 2] [--no-write]
 *
 * The models are random (latency does not depend on the values); every variant is timed in each round, in
 * turn, on new token ids per call, and the table gives the median over all its calls.
 */
import { compressedSize, engineInfo, prune, setThreads, Transformer } from '../lib';
import { cpuName, median, publish, runMain } from './report';
import { shapeOf, SIZES } from './sizes';

const VOCAB = 8000;
const T = 128;
const MEDIUM = shapeOf(SIZES.medium);
const SHAPES: Array<[batch: number, calls: number]> = [
  [1, 20],
  [8, 6],
];

function ids(batch: number, call: number): number[][] {
  return Array.from({ length: batch }, (_, b) =>
    Array.from({ length: T }, (_, i) => 5 + ((b * 7919 + i * 104729 + call * 15485863) % (VOCAB - 10))),
  );
}

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

async function main(): Promise<void> {
  const rounds = flag('rounds', 3);
  const threads = flag('threads', 2);
  const write = !process.argv.includes('--no-write');
  const started = Date.now();
  setThreads({ threads, blasThreads: threads });
  const dense = await Transformer.create({ task: 'classify', numLabels: 2, vocabSize: VOCAB, maxLen: T, ...MEDIUM }, { seed: 1 });
  const variants: { name: string; model: Transformer }[] = [
    { name: 'dense', model: dense },
    { name: 'unstructured 50%', model: await prune(dense, { sparsity: 0.5 }) },
    { name: 'unstructured 90%', model: await prune(dense, { sparsity: 0.9 }) },
    { name: 'heads 50%', model: await prune(dense, { structure: 'heads', sparsity: 0.5 }) },
    { name: 'ffn 50%', model: await prune(dense, { structure: 'ffn', sparsity: 0.5 }) },
    { name: 'heads+ffn 50%', model: await prune(dense, { structure: 'heads+ffn', sparsity: 0.5 }) },
  ];
  const times = new Map<string, number[]>();
  let call = 0;
  for (let r = 0; r < rounds; r++) {
    for (const [batch, calls] of SHAPES) {
      for (const v of variants) {
        await v.model.predict(ids(batch, call++)); // warm-up
        for (let i = 0; i < calls; i++) {
          const input = ids(batch, call++);
          const t = process.hrtime.bigint();
          await v.model.predict(input);
          const key = `${v.name}|${batch}`;
          times.set(key, [...(times.get(key) ?? []), Number(process.hrtime.bigint() - t) / 1e6]);
        }
      }
    }
  }
  const ms = (name: string, batch: number) => median(times.get(`${name}|${batch}`)!);
  const rows: string[] = [];
  const speed: Record<string, [number, number]> = {};
  for (const v of variants) {
    const [one, eight] = [ms(v.name, 1), ms(v.name, 8)];
    speed[v.name] = [ms('dense', 1) / one, ms('dense', 8) / eight];
    rows.push(
      `| ${v.name} | ${v.model.parameterCount} | ${(await compressedSize(v.model)).bytes} | ${one.toFixed(1)} | ${eight.toFixed(1)} | ` +
        `${speed[v.name][0].toFixed(2)}x / ${speed[v.name][1].toFixed(2)}x |`,
    );
  }
  const unstructured = [...speed['unstructured 50%'], ...speed['unstructured 90%']];
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}x`;
  const section = [
    '## Pruning and inference speed',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpuName()}; libtorch ${engineInfo().torchVersion}, ${threads} intra-op thread(s).`,
    `Command: \`node dist/bench/structured.js\` (part of \`npm run bench\`; run took ${((Date.now() - started) / 60000).toFixed(1)} min).`,
    `Classifier d${MEDIUM.dModel}, ${MEDIUM.layers} layers, ${MEDIUM.heads} heads, vocab ${VOCAB}, random weights (latency does not depend on`,
    `the values); predict on new token ids every call, the variants in turn in each of ${rounds} rounds; medians over all calls.`,
    'Unstructured = `prune(model, { sparsity })` (masks; the matrices keep their shapes); heads / ffn = `prune(model, { structure, sparsity })`',
    "(whole heads / FFN units removed by their weights' L2 norm; the matrices shrink). File bytes = compressedSize (the packed file",
    'for masked models, the plain one for the smaller dense ones).',
    '',
    '| model | parameters | file bytes | 1 x 128 ms | 8 x 128 ms | speed-up vs dense (1 / 8) |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    `Unstructured sparsity does not make CPU inference faster: its zeros still go through libtorch's dense GEMMs (${range(unstructured)}`,
    'of dense here, at 50% and 90%); it only makes the packed file smaller. What buys speed is structured pruning: removing heads /',
    'FFN units shrinks the GEMMs themselves',
    `(heads+ffn 50%: ${speed['heads+ffn 50%'][0].toFixed(2)}x / ${speed['heads+ffn 50%'][1].toFixed(2)}x). Its accuracy cost is in the compression study`,
    '(`compressionStudy({ structured })`, test/compress.test.ts prints it): one-shot it costs more than unstructured pruning of the same share,',
    'and a short fine-tune recovers part of it.',
    '',
  ].join('\n');
  publish(section, write);
  for (const v of variants) v.model.dispose();
}

runMain(main);
