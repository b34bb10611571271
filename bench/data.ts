/**
 * Data pipeline benchmark: tokenizer encode throughput on a batch of real documents, and the share of a
 * medium-size training step spent waiting for data (the batcher runs on a prefetch thread).
 *
 *   node dist/bench/data.js [--quick] [--no-write]      (part of `npm run bench`)
 *
 * Writes the "## Data pipeline" section of BENCHMARKS.md.
 */
import * as os from 'os';
import * as path from 'path';
import { Corpus, englishProseDocuments, Tokenizer, Trainer, Transformer } from '../lib';
import { cpuName, median, ROOT, publish, runMain } from './report';
import { shapeOf, SIZES } from './sizes';

const MAX_LEN = 128;
const BATCH = 16;

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const write = !process.argv.includes('--no-write');
  const cpu = cpuName();
  const corpus = await Corpus.prepare({ source: 'english-prose', dir: path.join(ROOT, 'data', 'english-prose') });
  const tok = corpus.tokenizer;
  const { train } = await englishProseDocuments();
  const texts = train.map((d) => d.text);
  const chars = texts.reduce((n, t) => n + t.length, 0);

  // Encode: the whole training split as one batch of documents; 3 rounds, medians. The first call of a
  // fresh tokenizer fills its word cache, so cold (a new tokenizer each round) and warm are both shown.
  const rounds = quick ? 2 : 3;
  const encode: Record<string, number[]> = { cold2: [], warm1: [], warm2: [], spm1: [] };
  let tokens = 0;
  for (let r = 0; r < rounds; r++) {
    const fresh = Tokenizer.load(path.join(corpus.dir, 'tokenizer.model'));
    let t0 = process.hrtime.bigint();
    const { ids } = await fresh.encodeFlat(texts, 2);
    encode.cold2.push(Number(process.hrtime.bigint() - t0) / 1e9);
    tokens = ids.length;
    t0 = process.hrtime.bigint();
    await fresh.encodeFlat(texts, 1);
    encode.warm1.push(Number(process.hrtime.bigint() - t0) / 1e9);
    t0 = process.hrtime.bigint();
    await fresh.encodeFlat(texts, 2);
    encode.warm2.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  // SentencePiece alone (no word cache), one thread, on a quarter of the documents.
  const sample = texts.filter((_, i) => i % 4 === 0);
  let sampleTokens = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    sampleTokens = sample.reduce((n, t) => n + tok.encodeUncached(t).length, 0);
    encode.spm1.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const tps = (n: number, xs: number[]) => n / median(xs);
  console.log(`encode: ${tokens} tokens from ${texts.length} documents (${(chars / 1e6).toFixed(1)} M chars)`);
  for (const [k, xs] of Object.entries(encode)) console.log(`  ${k}: median ${median(xs).toFixed(3)} s`);

  // Data time at the medium size: steps from the memory-mapped corpus through the public Trainer API.
  const data = corpus.train({ maxLen: MAX_LEN });
  const buildTimes: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = process.hrtime.bigint();
    data.trainBatch(1000 + i, BATCH, 1);
    buildTimes.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const model = await Transformer.create({ vocabSize: tok.vocabSize, maxLen: MAX_LEN, ...shapeOf(SIZES.medium) });
  const steps = quick ? 8 : 20;
  const trainer = new Trainer(model, { maxSteps: steps, batchSize: BATCH, lr: 5e-4, warmupSteps: 0 });
  const r = await trainer.fit(data, { evalEvery: 1e9 });
  const timed = r.history.filter((h) => h.type === 'train').slice(2) as Array<{ seconds: number; dataSeconds: number }>;
  const step = median(timed.map((h) => h.seconds));
  const wait = median(timed.map((h) => h.dataSeconds));
  const share = timed.reduce((n, h) => n + h.dataSeconds, 0) / timed.reduce((n, h) => n + h.seconds, 0);
  console.log(
    `medium step ${step.toFixed(3)} s; data wait ${(wait * 1000).toFixed(2)} ms (${(share * 100).toFixed(2)}%); ` +
      `building a batch synchronously takes ${(median(buildTimes) * 1000).toFixed(2)} ms`,
  );
  trainer.dispose();
  model.dispose();
  data.dispose();

  const section = [
    '## Data pipeline',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpu} (${os.cpus().length} hardware threads). Command: \`node dist/bench/data.js${quick ? ' --quick' : ''}\` (part of \`npm run bench\`).`,
    '',
    `Tokenizer: SentencePiece ${tok.vocabSize}-piece BPE trained on english-prose, encoding its ${texts.length} training documents ` +
      `(${(chars / 1e6).toFixed(1)} M characters, ${tokens} tokens) as one batch; medians of ${rounds} rounds.`,
    '',
    '| encoder | threads | seconds | tokens/s |',
    '|---|---|---|---|',
    `| trainlarge, fresh tokenizer (word cache cold) | 2 | ${median(encode.cold2).toFixed(3)} | ${tps(tokens, encode.cold2).toFixed(0)} |`,
    `| trainlarge, word cache warm | 1 | ${median(encode.warm1).toFixed(3)} | ${tps(tokens, encode.warm1).toFixed(0)} |`,
    `| trainlarge, word cache warm | 2 | ${median(encode.warm2).toFixed(3)} | ${tps(tokens, encode.warm2).toFixed(0)} |`,
    `| SentencePiece alone (encodeUncached), a quarter of the documents | 1 | ${median(encode.spm1).toFixed(3)} | ${tps(sampleTokens, encode.spm1).toFixed(0)} |`,
    '',
    `Data time at the medium size (d 256, 4 layers, 4 heads, vocab ${tok.vocabSize}, batch ${BATCH} x ${MAX_LEN}, fp32), ` +
      `${timed.length} steps from the memory-mapped english-prose shards: median step ${step.toFixed(3)} s, median wait for data ` +
      `${(wait * 1000).toFixed(2)} ms, **data time ${(share * 100).toFixed(2)}% of step time** (target < 5%). Building one batch ` +
      `synchronously (copy from the shards + dynamic masking) takes ${(median(buildTimes) * 1000).toFixed(2)} ms (median of 20); the prefetch ` +
      'thread builds the next one while the step computes.',
    '',
  ].join('\n');
  publish(section, write);
}

runMain(main);
