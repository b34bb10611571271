import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { compressionStudy, CompressionRow, DEFAULT_COMPRESSION_GRID, WHAT_WAS_COMPRESSED } from '../compress/study';
import { TranslationScoringSchema } from '../compress/study-translate';
import { parseConfig } from '../config/parse';
import { plannedWarmup } from '../config/train';
import { CLASSIFICATION_SOURCES } from '../data/builtin/sources';
import { Dataset } from '../data/task';
import { Tokenizer } from '../data/tokenizer';
import { readJson, RUN_FILES, writeCsvAtomic, writeFileAtomic, writeJsonAtomic } from '../io';
import { Transformer } from '../model';
import { Trainer } from '../train/trainer';
import { renderSvg, svgToPng, VegaLiteSpec } from './report';
import { runTranslationCompression, TranslationCompressionResults } from './compression-translate';
import { SweepResults } from './sweep';

const sparsities = z.array(z.number().min(0).lt(1));

export const CompressionSpecSchema = z
  .object({
    kind: z.literal('compression'),
    name: z.string().regex(/^[A-Za-z0-9._-]+$/),
    /**
     * The directory of a finished sweep: its runs are the models, one per size. An mlm sweep's encoders are
     * fine-tuned on `task` first; a translate sweep's translators are compressed as trained and scored by BLEU.
     */
    sweep: z.string().min(1),
    /** mlm sweeps: the prepared corpus the sweep trained on (its tokenizer encodes the task). */
    corpus: z.string().min(1).optional(),
    /** mlm sweeps: the labelled task to fine-tune on. */
    task: z.enum(Object.keys(CLASSIFICATION_SOURCES) as [string, ...string[]]).optional(),
    /** mlm sweeps: tokens per fine-tuning example. */
    maxLen: z.number().int().min(4).optional(),
    finetune: z
      .object({
        steps: z.number().int().positive(),
        lr: z.number().positive().default(5e-4),
        batchSize: z.number().int().positive().default(32),
      })
      .strict()
      .optional(),
    /**
     * mlm sweeps: compression during fine-tuning too, beside the one-shot grid: each sparsity also reached by
     * gradual pruning and each bit width also trained with QAT, `steps` more fine-tuning steps on the task from the
     * fine-tuned classifier (lr default: finetune's). The report compares them with one-shot.
     */
    recover: z.object({ steps: z.number().int().positive(), lr: z.number().positive().optional() }).strict().optional(),
    /** translate sweeps: how each variant is scored (BLEU on the first `samples` test pairs, beam `beam`; loss). */
    scoring: TranslationScoringSchema.optional(),
    /** translate sweeps: a model whose uncompressed BLEU is below this has learned too little to lose any, and is left out of the claim. */
    minBleu: z.number().min(0).max(100).optional(),
    sparsities: sparsities.default([...DEFAULT_COMPRESSION_GRID.sparsities]),
    bits: z.array(z.number().int().min(2).max(8)).default([...DEFAULT_COMPRESSION_GRID.bits]),
    scope: z.enum(['layer', 'global']).default(DEFAULT_COMPRESSION_GRID.scope),
    /** Structured pruning too (none by default): sparsities per structure, e.g. { "heads": [0.5], "ffn": [0.5] }. */
    structured: z
      .object({ heads: sparsities.optional(), ffn: sparsities.optional(), 'heads+ffn': sparsities.optional() })
      .strict()
      .default({}),
    seed: z.number().int().min(0).default(1),
  })
  .strict();
export type CompressionSpec = z.input<typeof CompressionSpecSchema>;
export type ParsedCompressionSpec = z.output<typeof CompressionSpecSchema>;

/** Which fields each kind of sweep needs, and which it must not be given. */
const SWEEP_FIELDS = {
  mlm: { required: ['corpus', 'task', 'finetune'], other: ['scoring', 'minBleu'] },
  translate: { required: [], other: ['corpus', 'task', 'maxLen', 'finetune', 'recover'] },
} as const;

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
  const sorted = [...rows].sort((a, b) => a.bytes - b.bytes || b.accuracy - a.accuracy);
  const front: CompressionRow[] = [];
  for (const r of sorted) if (front.length === 0 || r.accuracy > front[front.length - 1].accuracy) front.push(r);
  return front;
}

/** Tokens per fine-tuning example when the spec gives no maxLen. */
const DEFAULT_TASK_MAX_LEN = 64;

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
    ['model', 'parameters', 'method', 'setting', 'bytes', 'layer_bytes', 'accuracy', 'accuracy_drop', 'mean_weight_error'],
    rows.map((r) => [
      r.model,
      r.parameters,
      r.method,
      r.setting,
      r.bytes,
      r.layerBytes,
      r.accuracy.toFixed(4),
      r.accuracyDrop.toFixed(4),
      r.meanWeightError.toFixed(5),
    ]),
  );
  await writeCompressionReport(dir, results);
  return results;
}

/** 'structured': the rows of prune-heads, prune-ffn and prune-heads+ffn, one line per model and structure. */
export function accuracyVsBytesSpec(results: CompressionResults, method: 'prune' | 'quantize' | 'structured'): VegaLiteSpec {
  return scoreVsBytesSpec(results.name, results.rows, results.pareto, method, { field: 'accuracy', title: 'test accuracy' });
}

export type PlottedRow = Pick<CompressionRow, 'model' | 'parameters' | 'method' | 'setting' | 'bytes'>;

/** How the legend names compression during fine-tuning. */
const DURING_NAMES: Record<string, string> = { gradual: 'gradual pruning (during fine-tuning)', qat: 'QAT (during fine-tuning)' };

/**
 * A score (accuracy, BLEU) against file megabytes: one line per model and method (colour: model; dash:
 * one-shot, during fine-tuning, or the structure), the Pareto front dashed black.
 */
export function scoreVsBytesSpec<F extends string, R extends PlottedRow & Record<F, number>>(
  name: string,
  rows: R[],
  pareto: R[],
  method: 'prune' | 'quantize' | 'structured',
  score: { field: F; title: string },
): VegaLiteSpec {
  const structured = method === 'structured';
  const f = score.field;
  // Compression during fine-tuning ('gradual' pruning, 'qat') is drawn as its own line beside the one-shot one.
  const during = method === 'prune' ? 'gradual' : method === 'quantize' ? 'qat' : undefined;
  const hasDuring = during !== undefined && rows.some((r) => r.method === during);
  // Each point carries its model (the line's colour) and its method (the line's dash), so the
  // legend names each once and every line is told apart: one-shot vs during fine-tuning, or one structure each.
  const values = rows
    .filter((r) => (structured ? r.method.startsWith('prune-') : r.method === method || r.method === during) || r.method === 'none')
    .flatMap((r) => {
      const model = `${r.model} (${(r.parameters / 1e6).toFixed(2)} M parameters)`;
      const point = { model, megabytes: r.bytes / 1e6, [f]: r[f], setting: r.method === 'none' ? 'fp32' : String(r.setting) };
      if (!structured) {
        if (!hasDuring) return [{ ...point, method: 'one-shot' }];
        // Both lines start at the uncompressed model.
        if (r.method === 'none') return ['one-shot', DURING_NAMES[during]].map((m) => ({ ...point, method: m }));
        return [{ ...point, method: r.method === during ? DURING_NAMES[during] : 'one-shot' }];
      }
      // Each structure's line starts at the uncompressed model.
      const kinds = r.method === 'none' ? [...new Set(rows.filter((x) => x.method.startsWith('prune-')).map((x) => x.method))] : [r.method];
      return kinds.map((k) => ({ ...point, method: `${k.slice('prune-'.length)} pruned` }));
    });
  // One-shot first, so its line is the solid one and during fine-tuning (or the second structure) is dashed.
  const methodOrder = [...new Set(values.map((v) => v.method))].sort((a, b) =>
    a === 'one-shot' ? -1 : b === 'one-shot' ? 1 : a < b ? -1 : 1,
  );
  const methods = methodOrder.length;
  const front = pareto.map((r) => ({ megabytes: r.bytes / 1e6, [f]: r[f] }));
  const what = { prune: 'magnitude pruning', quantize: 'k-bit quantization', structured: 'structured pruning: heads / FFN units' }[method];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${name}: ${score.title} vs compressed size (${what})`,
    width: 480,
    height: 300,
    background: 'white',
    layer: [
      {
        data: { values },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'megabytes', type: 'quantitative', title: 'model file (MB)', scale: { type: 'log', nice: false, padding: 12 } },
          y: { field: f, type: 'quantitative', title: score.title, scale: { zero: false } },
          color: { field: 'model', type: 'nominal', title: 'model', legend: { labelLimit: 0 } },
          ...(methods > 1
            ? {
                strokeDash: {
                  field: 'method',
                  type: 'nominal',
                  title: 'method',
                  scale: { domain: methodOrder },
                  legend: {
                    labelLimit: 0,
                    symbolType: 'stroke',
                    symbolSize: 300,
                    encode: { symbols: { update: { stroke: { value: 'black' }, strokeWidth: { value: 2 } } } },
                  },
                },
              }
            : {}),
          tooltip: [{ field: 'method' }, { field: 'setting' }],
        },
      },
      {
        data: { values: front },
        mark: { type: 'line', strokeDash: [4, 3], color: 'black' },
        encoding: { x: { field: 'megabytes', type: 'quantitative' }, y: { field: f, type: 'quantitative' } },
      },
    ],
  };
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
 * The claim's comparison on any study's rows: every compressed variant of the smallest of `sizes` against the
 * best variant of the largest (the uncompressed one included) whose file is no larger. The claim holds when
 * the larger model wins more than half of those comparisons. `better(a, b)`: a scores strictly better than
 * b; `show` formats a row's score; `worse` is the sign written between a loser's score and the winner's.
 */
export function largerBeatsSmaller<R extends { model: string; method: string; setting: number; bytes: number }>(
  rows: R[],
  sizes: { label: string; parameters: number }[],
  how: { better: (a: R, b: R) => boolean; show: (r: R) => string; worse: string },
): { holds: boolean | undefined; evidence: string } {
  if (sizes.length < 2) return { holds: undefined, evidence: 'needs two model sizes' };
  const bySize = [...sizes].sort((a, b) => a.parameters - b.parameters);
  const small = bySize[0].label,
    large = bySize[bySize.length - 1].label;
  const smallRows = rows.filter((r) => r.model === small && r.method !== 'none');
  const wins: string[] = [];
  let comparisons = 0;
  for (const r of smallRows) {
    const rivals = rows.filter((x) => x.model === large && x.bytes <= r.bytes);
    if (rivals.length === 0) continue;
    comparisons++;
    const best = rivals.reduce((a, b) => (how.better(b, a) ? b : a));
    if (how.better(best, r))
      wins.push(
        `${small} ${r.method} ${r.setting} ${how.show(r)} @ ${(r.bytes / 1e6).toFixed(2)} MB ${how.worse} ${large} ${best.method} ${best.setting} ${how.show(best)} @ ${(best.bytes / 1e6).toFixed(2)} MB`,
      );
  }
  if (comparisons === 0) return { holds: undefined, evidence: `no ${large} variant is as small as any compressed ${small} variant` };
  return {
    holds: wins.length * 2 > comparisons,
    evidence: `${large} wins ${wins.length} of ${comparisons} equal-or-smaller-size comparisons${wins.length ? ': ' + wins.join('; ') : ''}`,
  };
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

async function writeCompressionReport(dir: string, results: CompressionResults): Promise<void> {
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
    `Pareto front (bytes, accuracy): ${results.pareto.map((r) => `${r.model} ${r.method} ${r.setting} (${r.bytes} B, ${r.accuracy.toFixed(3)})`).join(' → ')}.`,
    '',
  ];
  await writeFileAtomic(path.join(dir, 'report.md'), lines.join('\n'));
}
