/**
 * Translation speed, side by side in one run: training tokens/s of a translator against the same model in
 * plain PyTorch (bench/peer_translate.py) on the same batches, and decoding sentences/s for greedy search and
 * beam 4, one sentence a call and 32 a call. Part of `npm run bench`: writes the "## Translation" section of
 * BENCHMARKS.md.
 *
 *   node dist/bench/translate.js [--steps 12] [--rounds 3] [--threads 2] [--no-write]
 *
 * Data: the Bible pairs (English -> Spanish), a shared 8000-piece tokenizer, fairseq-style batches of at most
 * 4096 tokens. Training: the engine takes `steps` steps after 2 untimed ones; the peer trains the same model on
 * the same batches (their token counts are checked equal) in turns with it, `rounds` times; medians of the
 * per-round tokens/s. Decoding: the engine's model after that training, on the first 32 test sentences.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Dataset, engineInfo, ParallelDataset, setThreads, Trainer, Transformer } from '../lib';
import { cpuName, median, PEER_PYTHON, publish, ROOT, runMain } from './report';
import { SIZES } from './sizes';

const MODEL = {
  dModel: SIZES.medium.dModel,
  heads: SIZES.medium.heads,
  encoderLayers: 3,
  decoderLayers: 3,
  maxLen: 128,
  tieEmbeddings: 'all' as const,
  dropout: 0.1,
  attentionDropout: 0.1,
};
const BATCH_TOKENS = 4096;
const WARMUP = 2;

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

/** The engine's training batch `index` as rows of ids (source, and target ending in eos), padding included. */
function batchRows(data: ParallelDataset, index: number, seed: number): { src: number[][]; tgt: number[][]; tokens: number } {
  const b = data.trainBatch(index, BATCH_TOKENS, seed);
  const [B, S] = b.dims;
  const T = b.targets.length / B;
  const rows = (a: Int32Array, n: number) => Array.from({ length: B }, (_, i) => Array.from(a.subarray(i * n, (i + 1) * n)));
  return { src: rows(b.ids, S), tgt: rows(b.targets, T), tokens: 0 };
}

async function main(): Promise<void> {
  const steps = flag('steps', 12);
  const rounds = flag('rounds', 3);
  const threads = flag('threads', 2);
  const write = !process.argv.includes('--no-write');
  const started = Date.now();
  setThreads({ threads, blasThreads: threads });
  const task = await Dataset.parallel({ source: 'bible-en-es', vocabSize: 8000, maxLen: MODEL.maxLen });
  const vocabSize = task.tokenizer.vocabSize;
  const seed = 1;

  // The batches both sides train on: the engine's own, in the order its trainer draws them.
  const batches = Array.from({ length: WARMUP + steps }, (_, i) => batchRows(task.train, i, seed));
  const pad = task.tokenizer.special.pad;
  for (const b of batches) b.tokens = [...b.src, ...b.tgt].reduce((n, r) => n + r.filter((t) => t !== pad).length, 0);

  const engineRounds: number[] = [];
  const peerRounds: number[] = [];
  let peerInfo: { torch: string; threads: number } | undefined;
  let mt: Transformer | undefined;
  let sameBatches = true;
  for (let r = 0; r < rounds; r++) {
    mt?.dispose();
    mt = await Transformer.create({ task: 'translate', vocabSize, ...MODEL }, { seed });
    const trainer = new Trainer(mt, {
      lr: 7e-4,
      schedule: 'inverse-sqrt',
      warmupSteps: WARMUP + steps,
      labelSmoothing: 0.1,
      batchTokens: BATCH_TOKENS,
      maxSteps: WARMUP + steps,
      seed,
      threads,
      blasThreads: threads,
      precision: 'fp32',
    });
    const fit = await trainer.fit(task.train);
    trainer.dispose();
    const timed = fit.history.flatMap((h) => (h.type === 'train' ? [h] : [])).slice(WARMUP);
    timed.forEach((h, i) => (sameBatches &&= h.tokens === batches[WARMUP + i].tokens));
    engineRounds.push(timed.reduce((n, h) => n + h.tokens, 0) / timed.reduce((n, h) => n + h.seconds, 0));

    const file = path.join(os.tmpdir(), `trainlarge-bench-translate-${process.pid}.json`);
    const c = mt.config;
    fs.writeFileSync(
      file,
      JSON.stringify({
        model: { ...c, tie: c.tieEmbeddings },
        threads,
        warmup: WARMUP,
        labelSmoothing: 0.1,
        lr: 7e-4,
        batches: batches.map(({ src, tgt }) => ({ src, tgt })),
      }),
    );
    try {
      const out = JSON.parse(
        execFileSync(PEER_PYTHON, [path.join(ROOT, 'bench', 'peer_translate.py'), file], {
          encoding: 'utf8',
          env: { ...process.env, OMP_NUM_THREADS: String(threads) },
        }).trim(),
      ) as { tokensPerSecond: number; tokens: number[]; torch: string; threads: number };
      out.tokens.forEach((t, i) => (sameBatches &&= t === batches[WARMUP + i].tokens));
      peerRounds.push(out.tokensPerSecond);
      peerInfo = { torch: out.torch, threads: out.threads };
    } finally {
      fs.rmSync(file, { force: true });
    }
    console.log(`round ${r + 1}: engine ${engineRounds[r].toFixed(0)} tokens/s, PyTorch ${peerRounds[r].toFixed(0)} tokens/s`);
  }

  // Decoding: the last round's model, on the first 32 test sentences.
  const sentences = task.test!.source.slice(0, 32);
  const decode: { search: string; batch: number; perSecond: number; outTokens: number }[] = [];
  for (const beam of [1, 4]) {
    for (const batch of [1, 32]) {
      const rates: number[] = [];
      let outTokens = 0;
      for (let r = 0; r < rounds; r++) {
        const t0 = process.hrtime.bigint();
        const out: string[] = [];
        for (let i = 0; i < sentences.length; i += batch) {
          out.push(...(await mt!.translate(sentences.slice(i, i + batch), { beam, batchSize: batch, maxLenA: 1.2, maxLenB: 10 })));
        }
        rates.push(sentences.length / (Number(process.hrtime.bigint() - t0) / 1e9));
        outTokens = out.reduce((n, s) => n + task.tokenizer.encode(s).length, 0) / out.length;
      }
      decode.push({ search: beam === 1 ? 'greedy' : `beam ${beam}`, batch, perSecond: median(rates), outTokens });
    }
  }
  mt!.dispose();

  const info = engineInfo();
  const e = median(engineRounds);
  const p = median(peerRounds);
  const section = [
    '## Translation',
    '',
    `\`node dist/bench/translate.js\` on ${new Date().toISOString().slice(0, 10)}: ${cpuName()}, ${threads} threads, libtorch ` +
      `${info.torchVersion} (peer: torch ${peerInfo?.torch}, ${peerInfo?.threads} threads); ${((Date.now() - started) / 60000).toFixed(1)} min.`,
    `Model: encoder-decoder d${MODEL.dModel}, ${MODEL.encoderLayers}+${MODEL.decoderLayers} layers, ${MODEL.heads} heads, ` +
      `tied embeddings, vocabulary ${vocabSize}, dropout ${MODEL.dropout}; Bible pairs (English -> Spanish), batches of at most ` +
      `${BATCH_TOKENS} tokens, fp32. The PyTorch peer (bench/peer_translate.py) is the same model from nn.TransformerEncoderLayer / ` +
      `DecoderLayer (the one test/peer/seq2seq_parity.py checks against the engine's logits) with fused AdamW, on ` +
      `${sameBatches ? 'the same batches (token counts checked equal)' : 'batches whose token counts differed from the engine’s'}.`,
    '',
    '| training | tokens/s (median of rounds) | rounds |',
    '|---|---|---|',
    `| trainlarge | ${e.toFixed(0)} | ${engineRounds.map((x) => x.toFixed(0)).join(', ')} |`,
    `| PyTorch peer | ${p.toFixed(0)} | ${peerRounds.map((x) => x.toFixed(0)).join(', ')} |`,
    `| ratio | **${(e / p).toFixed(2)}x** | ${engineRounds.map((x, i) => (x / peerRounds[i]).toFixed(2)).join(', ')} |`,
    '',
    `Decoding ${sentences.length} test sentences with the model after its ${WARMUP + steps} training steps (the output ` +
      `lengths, in tokens, say what a sentence cost; at most 1.2 x the source + 10 tokens, fairseq's --max-len-a/b):`,
    '',
    '| search | sentences a call | sentences/s | output tokens a sentence |',
    '|---|---|---|---|',
    ...decode.map((d) => `| ${d.search} | ${d.batch} | ${d.perSecond.toFixed(1)} | ${d.outTokens.toFixed(1)} |`),
    '',
  ].join('\n');
  publish(section, write);
}

runMain(main);
