// trainlarge experiment run | report, trainlarge recommend: size sweeps, compression experiments, the planner.
import * as fs from 'fs';
import * as path from 'path';
import { CompressionResults, CompressionSpec, runCompression } from '../experiment/compression';
import { TranslationCompressionResults } from '../experiment/compression-translate';
import { LadderSpec, runLadder, writeLadderReport } from '../experiment/ladder';
import { recommend as plan } from '../experiment/planner';
import { writeSweepReport } from '../experiment/report';
import { Sweep, SweepProgress, SweepSpec } from '../experiment/sweep';
import { readJson } from '../io';
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
  synopsis: 'FILE.json [--dir DIR]',
  flags: [{ name: 'dir', kind: 'string', value: 'DIR', help: 'output directory (default runs/NAME)' }],
  async run(args) {
    if (!args.positional[0]) throw new UsageError('experiment run: give the experiment file (JSON)', 'experiment run');
    const spec = await readJson<SweepSpec | CompressionSpec | LadderSpec>(args.positional[0], 'experiment');
    if ((spec as CompressionSpec).kind === 'compression') {
      const c = spec as CompressionSpec;
      const dir = args.string('dir') ?? path.join('runs', c.name);
      const r = await runCompression(c, { dir, onLog: (l) => console.log(l) });
      console.log(
        `wrote ${path.join(dir, 'results.csv')} and ${path.join(dir, 'report.md')} (${r.rows.length} rows, Pareto front of ${r.pareto.length})`,
      );
      return;
    }
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
        `[${p.index + 1}/${p.runs}] ${where}: ${p.phase === 'skipped' ? 'finished earlier, skipped' : p.phase === 'measure' ? 'measuring step time' : p.phase === 'lr-search' ? 'searching the learning rate' : 'done'}`,
      );
    };
    if ((spec as LadderSpec).kind === 'ladder') {
      const l = spec as LadderSpec;
      const dir = args.string('dir') ?? path.join('runs', String(l.name));
      const r = await runLadder(l, { dir, signal: controller.signal, onProgress }).finally(() => bar?.stop());
      const grows = r.checkWinnerGrows();
      console.log(`${grows.claim}: ${grows.holds === undefined ? 'not decidable' : grows.holds} (${grows.evidence})`);
      console.log(`wrote ${path.join(dir, 'results.csv')} and ${path.join(dir, 'report.md')}`);
      return;
    }
    const sweep = new Sweep(spec as SweepSpec);
    const dir = args.string('dir') ?? path.join('runs', sweep.spec.name);
    await sweep.run({ dir, signal: controller.signal, onProgress }).finally(() => bar?.stop());
    console.log(`wrote ${path.join(dir, 'results.csv')} and ${await writeSweepReport(dir)}`);
  },
};

export const experimentReport: Command = {
  name: 'experiment report',
  operands: 'DIR',
  summary: "Plots (SVG + PNG) and report.md of a sweep's (or a budget ladder's) finished runs.",
  synopsis: 'DIR',
  flags: [],
  async run(args) {
    const dir = args.positional[0];
    if (!dir) throw new UsageError('experiment report: give the sweep or ladder directory', 'experiment report');
    console.log(`wrote ${fs.existsSync(path.join(dir, 'ladder.json')) ? await writeLadderReport(dir) : await writeSweepReport(dir)}`);
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
