// trainlarge experiment run | report, trainlarge recommend: size sweeps, compression experiments, the planner.
import * as fs from 'fs';
import * as path from 'path';
import { CompressionResults, runCompression, writeCompressionReport } from '../experiment/compression';
import { CompressionSpec } from '../experiment/compression-spec';
import { TranslationCompressionResults, writeTranslationReport } from '../experiment/compression-translate';
import { LADDER_LOCK, LadderSpec, runLadder, writeLadderReport } from '../experiment/ladder';
import { recommend as plan } from '../experiment/planner';
import { writeSweepReport } from '../experiment/report';
import { Sweep, SWEEP_LOCK, SweepProgress, SweepSpec } from '../experiment/sweep';
import { readJson } from '../io';
import { withLock } from '../lock';
import { isRank0 } from '../config/dist';
import { progressReporter } from '../train/progress';
import { Command, UsageError } from './args';

export const experimentRun: Command = {
  name: 'experiment run',
  operands: 'FILE.json',
  brief: 'A size sweep or a compression experiment from a JSON file (resumable).',
  summary:
    'Runs a size sweep (lib/experiment/sweep.ts) or, for a file with "kind": "compression", fine-tunes a sweep\'s sizes on a ' +
    "task and prunes and quantizes them (a translate sweep's translators: compressed as trained, scored by BLEU); with " +
    '"kind": "ladder", the same sizes under each of its "budgets" (which size wins per budget). ' +
    'Resumes a crashed or interrupted experiment; writes results.csv and report.md.',
  synopsis: 'FILE.json [--dir DIR] [--only NAME,...]',
  flags: [
    { name: 'dir', kind: 'string', value: 'DIR', help: 'output directory (default runs/NAME)' },
    {
      name: 'only',
      kind: 'list',
      value: 'NAME,...',
      help: "train only these runs of a sweep or ladder (one per scheduler job: Slurm array tasks, Kubernetes Jobs); they share DIR, and 'experiment report DIR' merges what has finished",
    },
  ],
  async run(args) {
    if (!args.positional[0]) throw new UsageError('experiment run: give the experiment file (JSON)', 'experiment run');
    const spec = await readJson<SweepSpec | CompressionSpec | LadderSpec>(args.positional[0], 'experiment');
    const only = args.list('only');
    if ((spec as CompressionSpec).kind === 'compression') {
      if (only)
        throw new UsageError('experiment run: --only applies to sweeps and ladders, not to a compression experiment', 'experiment run');
      const c = spec as CompressionSpec;
      const dir = args.string('dir') ?? path.join('runs', c.name);
      const r = await runCompression(c, { dir, onLog: (l) => console.log(l) });
      console.log(
        `wrote ${path.join(dir, 'results.csv')} and ${path.join(dir, 'report.md')} (${r.rows.length} rows, Pareto front of ${r.pareto.length})`,
      );
      return;
    }
    // Under `trainlarge launch` every rank runs this command and trains each model with the others; rank 0
    // writes and prints.
    const lead = isRank0('auto');
    const controller = new AbortController();
    process.once('SIGINT', () => {
      console.error('\ntrainlarge: stopping after the step in flight (checkpointing); run the same command again to resume');
      controller.abort();
    });
    let bar: ReturnType<typeof progressReporter> | undefined;
    const onProgress = (p: SweepProgress & { budget?: string }) => {
      const where = `${p.budget ? `${p.budget} ` : ''}${p.run}`;
      if (p.phase === 'train') {
        bar ??= progressReporter(`${where} (${p.index + 1}/${p.runs})`);
        if (p.progress) bar.onProgress(p.progress);
        return;
      }
      bar?.stop();
      bar = undefined;
      console.log(
        `[${p.index + 1}/${p.runs}] ${where}: ${p.phase === 'skipped' ? 'finished earlier, skipped' : p.phase === 'busy' ? 'another job is training it, skipped' : p.phase === 'measure' ? 'measuring step time' : p.phase === 'lr-search' ? 'searching the learning rate' : 'done'}`,
      );
    };
    if ((spec as LadderSpec).kind === 'ladder') {
      const l = spec as LadderSpec;
      const dir = args.string('dir') ?? path.join('runs', String(l.name));
      const r = await runLadder(l, { dir, signal: controller.signal, onProgress, distributed: 'auto', ...(only ? { only } : {}) }).finally(
        () => bar?.stop(),
      );
      if (!lead) return;
      const grows = r.checkWinnerGrows();
      console.log(`${grows.claim}: ${grows.holds === undefined ? 'not decidable' : grows.holds} (${grows.evidence})`);
      console.log(`wrote ${path.join(dir, 'results.csv')} and ${path.join(dir, 'report.md')}`);
      return;
    }
    const sweep = new Sweep(spec as SweepSpec);
    const dir = args.string('dir') ?? path.join('runs', sweep.spec.name);
    await sweep
      .run({ dir, signal: controller.signal, onProgress, distributed: 'auto', ...(only ? { only } : {}) })
      .finally(() => bar?.stop());
    if (!lead) return;
    // Other jobs may write this sweep's report at the same moment (--only): one at a time.
    const report = await withLock(path.join(dir, SWEEP_LOCK), () => writeSweepReport(dir), { what: 'experiment run' });
    console.log(`wrote ${path.join(dir, 'results.csv')} and ${report}`);
  },
};

export const experimentReport: Command = {
  name: 'experiment report',
  operands: 'DIR',
  summary:
    "Plots (SVG + PNG) and report.md of a sweep's (or a budget ladder's) finished runs, or written again from a compression experiment's compression.json.",
  synopsis: 'DIR',
  flags: [],
  async run(args) {
    const dir = args.positional[0];
    if (!dir) throw new UsageError('experiment report: give the sweep or ladder directory', 'experiment report');
    if (fs.existsSync(path.join(dir, 'compression.json'))) {
      const results = await readJson<CompressionResults | TranslationCompressionResults>(
        path.join(dir, 'compression.json'),
        'experiment report',
      );
      if (results.task === 'translate') await writeTranslationReport(dir, results);
      else await writeCompressionReport(dir, results);
      console.log(`wrote ${path.join(dir, 'report.md')}`);
      return;
    }
    // Jobs still running (--only) may rewrite it too: one writer at a time.
    const ladder = fs.existsSync(path.join(dir, 'ladder.json'));
    if (!ladder && !fs.existsSync(path.join(dir, 'sweep.json')))
      throw new Error(`experiment report: ${dir} has no sweep.json, ladder.json or compression.json: not an experiment directory`);
    const report = await withLock(
      path.join(dir, ladder ? LADDER_LOCK : SWEEP_LOCK),
      () => (ladder ? writeLadderReport(dir) : writeSweepReport(dir)),
      { what: 'experiment report' },
    );
    console.log(`wrote ${report}`);
  },
};

export const recommend: Command = {
  name: 'recommend',
  brief: 'Model size + compression for a memory and time budget.',
  summary: "Model size + compression for a memory and training-time budget, from a compression experiment's results.",
  synopsis: '--evidence DIR --memory BYTES --seconds S',
  flags: [
    { name: 'evidence', kind: 'string', value: 'DIR', help: 'a compression experiment directory (compression.json)' },
    { name: 'memory', kind: 'number', value: 'BYTES', help: 'the most bytes the model file may take' },
    { name: 'seconds', kind: 'number', value: 'S', help: 'the pretraining time budget' },
  ],
  async run(args) {
    const evidence = args.required('evidence', 'a compression experiment directory');
    args.required('memory');
    args.required('seconds');
    const memory = args.number('memory')!,
      seconds = args.number('seconds')!;
    const results = await readJson<CompressionResults | TranslationCompressionResults>(
      path.join(evidence, 'compression.json'),
      'recommend',
    );
    if (results.task === 'translate')
      throw new UsageError(
        `recommend: --evidence: ${evidence} holds a translation compression experiment; recommend reads a classifier one (accuracy per byte)`,
        'recommend',
      );
    const r = plan({ models: results.models, compression: results.rows }, { memoryBytes: memory, trainSeconds: seconds });
    console.log(
      `recommend: ${r.model} (${r.parameters} parameters), ${r.method === 'none' ? 'uncompressed' : `${r.method} ${r.setting}`}: ` +
        `${r.bytes} bytes, expected accuracy ${r.expectedAccuracy.toFixed(3)}\n  ${r.reason}`,
    );
  },
};
