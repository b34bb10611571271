/**
 * What pruning does to CPU inference: predict latency of a medium classifier dense, with unstructured
 * sparsity (masks: the matrices keep their shapes), and with whole heads / FFN units removed (structured:
 * smaller matrices). Not part of `npm run bench`; prints a table and writes nothing.
 *
 *   node dist/bench/structured.js [--rounds 3] [--threads 1]
 *
 * The models are random (latency does not depend on the values); every variant is timed in each round, in
 * turn, on new token ids per call, and the table gives the median over all its calls.
 */
import { compressedSize, prune, setThreads, Transformer } from '../lib';
import { cpuName, median, runMain } from './report';

const VOCAB = 8000;
const T = 128;
const MEDIUM = { dModel: 256, layers: 4, heads: 4 };
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
  const threads = flag('threads', 1);
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
  console.log(
    `${cpuName()}; ${threads} thread(s); classifier d${MEDIUM.dModel}, ${MEDIUM.layers} layers, ${MEDIUM.heads} heads, vocab ${VOCAB}`,
  );
  console.log('| model | parameters | file bytes | 1 x 128 ms | 8 x 128 ms | vs dense (1 / 8) |');
  console.log('|---|---|---|---|---|---|');
  const ms = (name: string, batch: number) => median(times.get(`${name}|${batch}`)!);
  for (const v of variants) {
    const [one, eight] = [ms(v.name, 1), ms(v.name, 8)];
    const speedup = `${(ms('dense', 1) / one).toFixed(2)}x / ${(ms('dense', 8) / eight).toFixed(2)}x`;
    console.log(
      `| ${v.name} | ${v.model.parameterCount} | ${(await compressedSize(v.model)).bytes} | ${one.toFixed(1)} | ${eight.toFixed(1)} | ${speedup} |`,
    );
  }
  for (const v of variants) v.model.dispose();
}

runMain(main);
