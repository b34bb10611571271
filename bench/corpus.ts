/**
 * "Preparing a corpus": `trainlarge data prepare` against the usual Python recipe (bench/peer_prepare.py: the
 * sentencepiece package in a multiprocessing pool writing numpy uint16 shards, as Megatron-LM and fairseq do) on
 * generated corpora of 0.5, 1, 2 and 4 GB (bench/corpus-gen.ts: paragraphs of real sentences), both with the same
 * tokenizer (trained once by trainlarge on the first corpus), the same number of workers (every core), sides
 * alternating. Then the share of a training step spent waiting for data when training reads the largest corpus.
 *
 *   node dist/bench/corpus.js [--sizes 0.5,1,2,4] [--dir DIR] [--no-write]      (part of `npm run bench`)
 *
 * DIR (default $TMPDIR/trainlarge-corpus-bench) needs ~2.2x the largest size free; it is removed at the end.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Corpus, Trainer, Transformer } from '../lib';
import { generateCorpus } from './corpus-gen';
import { cpuName, median, PEER_PYTHON, publish, ROOT, runMain } from './report';
import { shapeOf, SIZES } from './sizes';

const CLI = path.join(ROOT, 'dist', 'lib', 'cli.js');

interface Side {
  seconds: number;
  peakMB: number;
  tokens: number;
}

/** `trainlarge data prepare` as users run it; its peak RSS read by a preloaded exit hook. */
function trainlarge(file: string, out: string, tokenizer: string, hook: string): Side {
  fs.rmSync(out, { recursive: true, force: true });
  const started = process.hrtime.bigint();
  const r = spawnSync(
    process.execPath,
    ['--require', hook, CLI, 'data', 'prepare', '--files', file, '--split', 'blank-line', '--dir', out, '--tokenizer', tokenizer],
    { encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) throw new Error(`data prepare failed: ${r.stderr.slice(-2000)}`);
  const peak = /^peak-rss-kb (\d+)$/m.exec(r.stderr);
  const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { splits: Record<string, { tokens: number }> };
  return { seconds, peakMB: Number(peak?.[1]) / 1024, tokens: m.splits.train.tokens + m.splits.valid.tokens };
}

function peer(file: string, out: string, model: string, workers: number): Side & { mainMB: number; workerMB: number } {
  fs.rmSync(out, { recursive: true, force: true });
  const r = spawnSync(PEER_PYTHON, [path.join(ROOT, 'bench', 'peer_prepare.py'), file, model, out, String(workers)], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`peer failed: ${r.stderr.slice(-2000)}`);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number; tokens: number; mainPeakMB: number; workerPeakMB: number };
  // Every worker holds about what the largest does: main + workers x largest is what the machine gives the recipe.
  return {
    seconds: j.seconds,
    tokens: j.tokens,
    peakMB: j.mainPeakMB + workers * j.workerPeakMB,
    mainMB: j.mainPeakMB,
    workerMB: j.workerPeakMB,
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const write = !argv.includes('--no-write');
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const sizes = (flag('--sizes') ?? '0.5,1,2,4').split(',').map(Number);
  const work = flag('--dir') ?? path.join(os.tmpdir(), 'trainlarge-corpus-bench');
  const workers = os.availableParallelism();
  fs.mkdirSync(work, { recursive: true });
  const hook = path.join(work, 'peak-rss.js');
  // VmHWM, not getrusage's maxRSS: the kernel carries the forked parent's peak into a child's ru_maxrss.
  fs.writeFileSync(
    hook,
    "process.on('exit', () => process.stderr.write(`peak-rss-kb ${/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]}\\n`));\n",
  );
  const tokDir = path.join(work, 'tokenizer');
  const rows: string[] = [];
  let largest = '';
  const loadBefore = os.loadavg()[0];
  try {
    for (const [k, gb] of sizes.entries()) {
      const file = path.join(work, `corpus-${gb}GB.txt`);
      await generateCorpus(file, gb * 1e9, 'blank-line', 1000 + k);
      const mb = fs.statSync(file).size / 1e6;
      if (k === 0) {
        // The tokenizer both sides use: trained once by trainlarge on a sample of the first corpus (vocabulary 8000).
        const t = spawnSync(process.execPath, [CLI, 'data', 'prepare', '--files', file, '--split', 'blank-line', '--dir', tokDir], {
          encoding: 'utf8',
        });
        if (t.status !== 0) throw new Error(t.stderr);
      }
      const model = path.join(tokDir, 'tokenizer.model');
      // One run a side at the larger sizes (minutes each), three at the smallest; the first side alternates.
      const rounds = k === 0 ? 3 : 1;
      const ours: Side[] = [];
      const theirs: ReturnType<typeof peer>[] = [];
      for (let r = 0; r < rounds; r++) {
        const order = (r + k) % 2 === 0 ? ['t', 'p'] : ['p', 't'];
        for (const s of order) {
          if (s === 't') ours.push(trainlarge(file, path.join(work, 'out-t'), tokDir, hook));
          else theirs.push(peer(file, path.join(work, 'out-p'), model, workers));
          console.log(
            `${gb} GB ${s === 't' ? 'trainlarge' : 'peer'}: ${JSON.stringify(s === 't' ? ours[ours.length - 1] : theirs[theirs.length - 1])}`,
          );
        }
      }
      const t = median(ours.map((x) => x.seconds));
      const p = median(theirs.map((x) => x.seconds));
      const peakT = Math.max(...ours.map((x) => x.peakMB));
      const last = theirs[theirs.length - 1];
      rows.push(
        `| ${gb} GB (${mb.toFixed(0)} MB) | ${rounds} | ${t.toFixed(1)} | ${p.toFixed(1)} | ${(mb / t).toFixed(1)} / ${(mb / t / workers).toFixed(1)} | ` +
          `${(mb / p).toFixed(1)} / ${(mb / p / workers).toFixed(1)} | **${(p / t).toFixed(2)}x** | ${Math.round(ours[0].tokens / t).toLocaleString('en')} | ` +
          `${Math.round(last.tokens / p).toLocaleString('en')} | ${peakT.toFixed(0)} | ${last.peakMB.toFixed(0)} (${last.mainMB.toFixed(0)} + ${workers} x ${last.workerMB.toFixed(0)}) |`,
      );
      if (k === sizes.length - 1) largest = path.join(work, 'out-largest');
      if (k === sizes.length - 1) fs.renameSync(path.join(work, 'out-t'), largest);
      fs.rmSync(file, { force: true });
      fs.rmSync(path.join(work, 'out-p'), { recursive: true, force: true });
    }
    // Training from the largest corpus: the step's time waiting for data (batches are built on a prefetch thread).
    const corpus = await Corpus.open(largest);
    const model = await Transformer.create({
      task: 'mlm',
      vocabSize: corpus.tokenizer.vocabSize,
      maxLen: 128,
      ...shapeOf(SIZES.medium),
    });
    const trainer = new Trainer(model, { lr: 5e-4, batchSize: 16, maxSteps: 40 });
    const fit = await trainer.fit(corpus.train({ maxLen: 128 }));
    const steps = fit.history.filter((h) => h.type === 'train').slice(10) as { seconds: number; dataSeconds: number }[];
    const share = median(steps.map((s) => s.dataSeconds / s.seconds));
    const section = [
      '## Preparing a corpus',
      '',
      `Measured ${new Date().toISOString().slice(0, 10)} on ${cpuName()} (${workers} hardware threads); command: \`node dist/bench/corpus.js\`;`,
      `1-minute load average ${loadBefore.toFixed(1)} at the start and ${os.loadavg()[0].toFixed(1)} at the end (the benchmark's own processes count in it; more means other work shared the machine).`,
      `Corpora: bench/corpus-gen.ts, paragraphs of real sentences (State of the Union + Brown) drawn by a seeded generator, blank-line separated;`,
      `real corpora of this size cannot be downloaded here. Both sides encode with the same SentencePiece BPE model (vocabulary 8000,`,
      `trained once by trainlarge on a sample of the first corpus) on ${workers} workers: trainlarge \`data prepare --split blank-line --tokenizer\``,
      `(native threads; the word cache), the peer bench/peer_prepare.py (the sentencepiece package ${''}in a multiprocessing pool writing`,
      'numpy uint16 shards, as Megatron-LM and fairseq do). Seconds are whole runs (reading, encoding, writing; trainlarge also checks and',
      "hashes what it wrote); sides alternate. Peak RSS: trainlarge's one process (getrusage); the peer's main process plus each worker at",
      "the largest worker's peak.",
      '',
      '| corpus | runs a side | trainlarge s | peer s | trainlarge MB/s (total / per core) | peer MB/s (total / per core) | speed vs peer | trainlarge tokens/s | peer tokens/s | trainlarge peak RSS MB | peer peak RSS MB |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
      `Training from the largest corpus (memory-mapped shards): an MLM encoder d256, 4 layers, maxLen 128, batch 16 waited for data`,
      `**${(share * 100).toFixed(2)}%** of a step (median of steps 11-40; the step took ${median(steps.map((s) => s.seconds)).toFixed(3)} s).`,
    ].join('\n');
    publish(section, write);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

runMain(main);
