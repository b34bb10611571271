// The compression experiment (the paper's): each size of a sweep fine-tuned on a labelled task, compressed over
// a grid and scored by accuracy against bytes; a translate sweep's translators go to compression-translate.ts.
import * as fs from 'fs';
import * as path from 'path';
import { compressionStudy, CompressionRow, variantTable, WHAT_WAS_COMPRESSED } from '../compress/study';
import { parseConfig } from '../config/parse';
import { plannedWarmup } from '../config/train';
import { CLASSIFICATION_SOURCES } from '../data/builtin/sources';
import { Dataset } from '../data/task';
import { Tokenizer } from '../data/tokenizer';
import { readJson, RUN_FILES, writeCsvAtomic, writeFileAtomic, writeJsonAtomic } from '../io';
import { Transformer } from '../model';
import { Trainer } from '../train/trainer';
import { renderSvg, svgToPng, VegaLiteSpec } from './report';
import { largerBeatsSmaller, pairwiseWins, scoreParetoFront } from './compression-claims';
import { scoreVsBytesSpec } from './compression-plots';
import { CompressionSpec, CompressionSpecSchema, DEFAULT_TASK_MAX_LEN, SWEEP_FIELDS } from './compression-spec';
import { runTranslationCompression, TranslationCompressionResults } from './compression-translate';
import { SweepResults } from './sweep';

export interface CompressionResults {
  name: string;
  /** Fine-tuned classifiers (absent in results written before translators were studied). */
  task?: 'classify';
  models: { label: string; parameters: number; trainSeconds: number; fineTunedAccuracy: number }[];
  rows: CompressionRow[];
  /** Rows no other row beats on both bytes (fewer) and accuracy (higher). */
  pareto: CompressionRow[];
  /** Test accuracy of always answering the most common label: a model at this rate learned nothing. */
  majorityAccuracy: number;
}

export function paretoFront(rows: CompressionRow[]): CompressionRow[] {
  return scoreParetoFront(rows, (r) => r.accuracy);
}

/**
 * The paper's compression experiment: fine-tune each pretrained size of a sweep on a labelled task, then
 * prune and quantize each to a grid of settings: accuracy vs compressed bytes, one curve per size, and the
 * Pareto front across all. Fine-tuned models and each size's rows are saved, so a rerun skips them. On a
 * translate sweep the trained translators are compressed as they are and scored by BLEU and loss
 * (runTranslationCompression, lib/experiment/compression-translate.ts). A spec with `finetune` is an mlm
 * sweep's, so its results are typed CompressionResults.
 */
export async function runCompression(
  spec: CompressionSpec & { finetune: NonNullable<CompressionSpec['finetune']> },
  opts: { dir: string; onLog?: (line: string) => void },
): Promise<CompressionResults>;
export async function runCompression(
  spec: CompressionSpec,
  opts: { dir: string; onLog?: (line: string) => void },
): Promise<CompressionResults | TranslationCompressionResults>;
export async function runCompression(
  spec: CompressionSpec,
  opts: { dir: string; onLog?: (line: string) => void },
): Promise<CompressionResults | TranslationCompressionResults> {
  const s = parseConfig(CompressionSpecSchema, spec, 'compression experiment');
  const log = opts.onLog ?? (() => {});
  const dir = path.resolve(opts.dir);
  await fs.promises.mkdir(dir, { recursive: true });
  await writeJsonAtomic(path.join(dir, 'experiment.json'), s);
  const sweep = await SweepResults.load(s.sweep);
  if (sweep.runs.length === 0) throw new Error(`compression experiment: the sweep in ${s.sweep} has no finished runs`);
  const fields = SWEEP_FIELDS[sweep.task];
  for (const f of fields.required)
    if (s[f] === undefined) throw new Error(`compression experiment: ${f}: is required for the '${sweep.task}' sweep in ${s.sweep}`);
  for (const f of fields.other) {
    const v = s[f];
    if (v !== undefined)
      throw new Error(
        `compression experiment: ${f}: does not apply to the '${sweep.task}' sweep in ${s.sweep}` +
          (sweep.task === 'translate'
            ? ' (translators are compressed as trained, scored by BLEU: give scoring and minBleu)'
            : ' (scoring and minBleu apply to translate sweeps)'),
      );
  }
  if (sweep.task === 'translate') return runTranslationCompression(s, sweep, dir, log);
  const finetune = s.finetune!;
  const tokenizer = await Tokenizer.fromDir(s.corpus!);
  const task = await Dataset.classification({
    source: s.task as keyof typeof CLASSIFICATION_SOURCES,
    tokenizer,
    maxLen: s.maxLen ?? DEFAULT_TASK_MAX_LEN,
  });
  const models: CompressionResults['models'] = [];
  const rows: CompressionRow[] = [];
  try {
    for (const run of sweep.runs) {
      const out = path.join(dir, run.label);
      const clfDir = path.join(out, 'classifier');
      let clf: Transformer;
      if (fs.existsSync(path.join(clfDir, RUN_FILES.weights))) {
        clf = await Transformer.load(clfDir);
        log(`${run.label}: fine-tuned earlier, loaded`);
      } else {
        clf = await Transformer.fromPretrained(path.join(s.sweep, run.label), {
          task: 'classify',
          numLabels: task.labels.length,
          seed: s.seed,
        });
        const t = new Trainer(clf, {
          lr: finetune.lr,
          batchSize: finetune.batchSize,
          maxSteps: finetune.steps,
          warmupSteps: plannedWarmup(finetune.steps),
          seed: s.seed,
        });
        await t.fit(task.train, { evalEvery: finetune.steps });
        t.dispose();
        await clf.save(clfDir);
        log(`${run.label}: fine-tuned ${finetune.steps} steps on ${s.task}`);
      }
      const accuracy = (await clf.evaluate(task.valid)).accuracy!;
      models.push({ label: run.label, parameters: run.parameters, trainSeconds: run.trainSeconds, fineTunedAccuracy: accuracy });
      const rowsFile = path.join(out, 'compression.json');
      if (fs.existsSync(rowsFile)) {
        rows.push(...(await readJson<CompressionRow[]>(rowsFile, 'compression rows')));
      } else {
        const mine = await compressionStudy({
          models: [{ name: run.label, model: clf }],
          data: task.test,
          sparsities: s.sparsities,
          bits: s.bits,
          scope: s.scope,
          structured: s.structured,
          ...(s.recover
            ? {
                recover: {
                  data: task.train,
                  steps: s.recover.steps,
                  lr: s.recover.lr ?? finetune.lr,
                  batchSize: finetune.batchSize,
                  seed: s.seed,
                },
              }
            : {}),
          onRow: (r) => log(`${r.model} ${r.method} ${r.setting}: ${r.bytes} B, accuracy ${r.accuracy.toFixed(3)}`),
        });
        await writeJsonAtomic(rowsFile, mine);
        rows.push(...mine);
      }
      clf.dispose();
    }
  } finally {
    task.dispose();
  }
  const majorityAccuracy = Math.max(...task.counts.test) / task.counts.test.reduce((a, b) => a + b, 0);
  const results: CompressionResults = { name: s.name, task: 'classify', models, rows, pareto: paretoFront(rows), majorityAccuracy };
  await writeJsonAtomic(path.join(dir, 'compression.json'), results);
  await writeCsvAtomic(
    path.join(dir, 'results.csv'),
    ...variantTable(rows, [
      ['accuracy', (r) => r.accuracy.toFixed(4)],
      ['accuracy_drop', (r) => r.accuracyDrop.toFixed(4)],
    ]),
  );
  await writeCompressionReport(dir, results);
  return results;
}

/** 'structured': the rows of prune-heads, prune-ffn and prune-heads+ffn, one line per model and structure. */
export function accuracyVsBytesSpec(results: CompressionResults, method: 'prune' | 'quantize' | 'structured'): VegaLiteSpec {
  return scoreVsBytesSpec(results.name, results.rows, results.pareto, method, { field: 'accuracy', title: 'test accuracy' });
}

/** The paper's second claim on these rows: at the small model's sizes, does a compressed larger model do better? */
export function checkCompressedLargeBeatsSmall(results: CompressionResults): { holds: boolean | undefined; evidence: string } {
  // A model at the majority-class rate learned nothing: it has nothing to lose, so it is no evidence.
  const learned = results.models.filter((m) => {
    const base = results.rows.find((r) => r.model === m.label && r.method === 'none');
    return base !== undefined && base.accuracy > (results.majorityAccuracy ?? 0) + 0.02;
  });
  const skipped = results.models.filter((m) => !learned.includes(m)).map((m) => m.label);
  const note = skipped.length
    ? ` (left out at the majority-class rate ${results.majorityAccuracy?.toFixed(3)}: ${skipped.join(', ')})`
    : '';
  if (learned.length < 2) return { holds: undefined, evidence: `needs two model sizes that learned the task${note}` };
  const r = largerBeatsSmaller(results.rows, learned, {
    better: (a, b) => a.accuracy > b.accuracy,
    show: (x) => x.accuracy.toFixed(3),
    worse: '<',
  });
  return { holds: r.holds, evidence: `${r.evidence}${note}` };
}

/**
 * One-shot against compression during fine-tuning, when the experiment had `recover`: per model and setting,
 * the accuracy of one-shot pruning vs gradual pruning, and of one-shot quantization vs QAT.
 */
export function duringLines(rows: CompressionRow[]): string[] {
  const pairs = rows
    .filter((r) => r.method === 'gradual' || r.method === 'qat')
    .map((r) => ({
      r,
      oneShot: rows.find(
        (x) => x.model === r.model && x.setting === r.setting && x.method === (r.method === 'gradual' ? 'prune' : 'quantize'),
      ),
    }))
    .filter((p): p is { r: CompressionRow; oneShot: CompressionRow } => p.oneShot !== undefined);
  if (pairs.length === 0) return [];
  const better = pairs.filter((p) => p.r.accuracy > p.oneShot.accuracy).length;
  return [
    '## One-shot vs during fine-tuning',
    '',
    'The same setting reached one-shot (no training after) and during fine-tuning (gradual pruning; QAT):',
    '',
    '| model | setting | one-shot | accuracy | during fine-tuning | accuracy |',
    '|---|---|---|---|---|---|',
    ...pairs.map(
      ({ r, oneShot }) =>
        `| ${r.model} | ${r.setting} | ${oneShot.method} | ${oneShot.accuracy.toFixed(3)} | ${r.method} | ${r.accuracy.toFixed(3)} |`,
    ),
    '',
    `Compression during fine-tuning is more accurate in ${better} of ${pairs.length} settings.`,
    '',
  ];
}

export async function writeCompressionReport(dir: string, results: CompressionResults): Promise<void> {
  const plots = path.join(dir, 'plots');
  await fs.promises.mkdir(plots, { recursive: true });
  const structured = results.rows.some((r) => r.method.startsWith('prune-'));
  for (const method of structured ? (['prune', 'quantize', 'structured'] as const) : (['prune', 'quantize'] as const)) {
    const svg = await renderSvg(accuracyVsBytesSpec(results, method));
    await writeFileAtomic(path.join(plots, `accuracy-vs-bytes-${method}.svg`), svg);
    await writeFileAtomic(path.join(plots, `accuracy-vs-bytes-${method}.png`), svgToPng(svg));
  }
  const check = checkCompressedLargeBeatsSmall(results);
  const lines = [
    `# Compression experiment ${results.name}`,
    '',
    '![accuracy vs bytes, pruning](plots/accuracy-vs-bytes-prune.png)',
    '',
    '![accuracy vs bytes, quantization](plots/accuracy-vs-bytes-quantize.png)',
    '',
    ...(structured ? ['![accuracy vs bytes, structured pruning](plots/accuracy-vs-bytes-structured.png)', ''] : []),
    WHAT_WAS_COMPRESSED,
    '',
    '| model | parameters | method | setting | file bytes | layer bytes | accuracy | drop | mean weight error |',
    '|---|---|---|---|---|---|---|---|---|',
    ...results.rows.map(
      (r) =>
        `| ${r.model} | ${r.parameters} | ${r.method} | ${r.setting} | ${r.bytes} | ${r.layerBytes} | ${r.accuracy.toFixed(3)} | ${r.accuracyDrop.toFixed(3)} | ${r.meanWeightError.toFixed(4)} |`,
    ),
    '',
    ...duringLines(results.rows),
    '## Claims checked',
    '',
    `- a compressed larger model beats a compressed smaller one of the same or larger file size: ${check.holds === undefined ? 'not decidable' : check.holds ? '**true**' : '**false**'}. ${check.evidence}.`,
    '',
    'Every pair of sizes (the larger wins a comparison when its best variant no larger than a compressed variant of the smaller is more accurate):',
    '',
    ...pairwiseWins(results.rows, results.models, (a, b) => a.accuracy > b.accuracy),
    '',
    `Pareto front (bytes, accuracy): ${results.pareto.map((r) => `${r.model} ${r.method} ${r.setting} (${r.bytes} B, ${r.accuracy.toFixed(3)})`).join(' → ')}.`,
    '',
  ];
  await writeFileAtomic(path.join(dir, 'report.md'), lines.join('\n'));
}
