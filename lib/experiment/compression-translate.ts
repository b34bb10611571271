// The compression experiment on a translate sweep: each trained translator pruned and quantized over the
// grid, every variant scored by BLEU (and loss) on the test split: BLEU against packed bytes.
import * as fs from 'fs';
import * as path from 'path';
import { TranslationCompressionRow, translationCompressionStudy, TranslationScoringSchema } from '../compress/study-translate';
import { variantTable, WHAT_WAS_COMPRESSED } from '../compress/study';
import { parseConfig } from '../config/parse';
import { corpusBleu } from '../metrics/bleu';
import { Tokenizer } from '../data/tokenizer';
import { readJson, writeCsvAtomic, writeFileAtomic, writeJsonAtomic } from '../io';
import { Transformer } from '../model';
import { largerBeatsSmaller, pairwiseWins, scoreParetoFront } from './compression-claims';
import { scoreVsBytesSpec } from './compression-plots';
import type { ParsedCompressionSpec } from './compression-spec';
import { renderSvg, svgToPng } from './report';
import { readSweepSpec, SweepResults } from './sweep';
import { sweepParallelTask, sweepTokenizerDir } from './sweep-data';

/** The default minBleu: below 1 BLEU a translator has learned too little to lose any (an untrained one scores ~0). */
export const DEFAULT_MIN_BLEU = 1;

export interface TranslationCompressionResults {
  name: string;
  task: 'translate';
  models: { label: string; parameters: number; trainSeconds: number; bleu: number; loss: number }[];
  rows: TranslationCompressionRow[];
  /** Rows no other row beats on both bytes (fewer) and BLEU (higher). */
  pareto: TranslationCompressionRow[];
  /** How each variant was scored (defaults filled in), and the uncompressed models' BLEU signature. */
  scoring: { samples: number; beam: number; lengthPenalty: number; lossSamples?: number };
  bleuSignature: string;
  /** Test pairs translated (min of samples and the split's size) and scored by loss. */
  bleuPairs: number;
  lossPairs: number;
  minBleu: number;
}

export function bleuParetoFront(rows: TranslationCompressionRow[]): TranslationCompressionRow[] {
  return scoreParetoFront(rows, (r) => r.bleu);
}

/**
 * runCompression on a translate sweep: the sweep's test split rebuilt as its runs saw it (same corpus,
 * filters and saved tokenizer), each run's model loaded, compressed over the grid and scored. Each size's
 * rows are saved in DIR/<run>/compression.json, so a rerun skips the sizes already done.
 */
export async function runTranslationCompression(
  s: ParsedCompressionSpec,
  sweep: SweepResults,
  dir: string,
  log: (line: string) => void,
): Promise<TranslationCompressionResults> {
  const scoring = parseConfig(TranslationScoringSchema, s.scoring ?? {}, 'compression experiment: scoring');
  const minBleu = s.minBleu ?? DEFAULT_MIN_BLEU;
  const spec = await readSweepSpec(s.sweep);
  const tokenizer = await Tokenizer.find(sweepTokenizerDir(s.sweep));
  if (!tokenizer) throw new Error(`compression experiment: sweep: ${s.sweep} has no tokenizer/ (the one its runs encode with)`);
  const task = await sweepParallelTask(spec, tokenizer);
  const models: TranslationCompressionResults['models'] = [];
  const rows: TranslationCompressionRow[] = [];
  try {
    const test = task.test;
    if (!test) throw new Error(`compression experiment: sweep: corpus ${task.name} has no test split to score translations on`);
    for (const run of sweep.runs) {
      const out = path.join(dir, run.label);
      const rowsFile = path.join(out, 'compression.json');
      let mine: TranslationCompressionRow[];
      if (fs.existsSync(rowsFile)) {
        mine = await readJson<TranslationCompressionRow[]>(rowsFile, 'compression rows');
        log(`${run.label}: compressed earlier, loaded`);
      } else {
        const mt = await Transformer.load(path.join(s.sweep, run.label));
        try {
          mine = await translationCompressionStudy({
            models: [{ name: run.label, model: mt }],
            data: test,
            sparsities: s.sparsities,
            bits: s.bits,
            scope: s.scope,
            structured: s.structured,
            scoring,
            onRow: (r) => log(`${r.model} ${r.method} ${r.setting}: ${r.bytes} B, BLEU ${r.bleu.toFixed(2)}, loss ${r.loss.toFixed(3)}`),
          });
        } finally {
          mt.dispose();
        }
        await fs.promises.mkdir(out, { recursive: true });
        await writeJsonAtomic(rowsFile, mine);
      }
      const base = mine.find((r) => r.method === 'none')!;
      models.push({ label: run.label, parameters: run.parameters, trainSeconds: run.trainSeconds, bleu: base.bleu, loss: base.loss });
      rows.push(...mine);
    }
    // evaluate scores with corpusBleu's defaults (one reference, 13a, exp smoothing): this is its signature.
    const bleuSignature = corpusBleu(['-'], ['-']).signature;
    const results: TranslationCompressionResults = {
      name: s.name,
      task: 'translate',
      models,
      rows,
      pareto: bleuParetoFront(rows),
      scoring,
      bleuSignature,
      bleuPairs: Math.min(scoring.samples, test.source.length),
      lossPairs: Math.min(scoring.lossSamples ?? Infinity, test.size),
      minBleu,
    };
    await writeJsonAtomic(path.join(dir, 'compression.json'), results);
    await writeCsvAtomic(
      path.join(dir, 'results.csv'),
      ...variantTable(rows, [
        ['bleu', (r) => r.bleu.toFixed(2)],
        ['chrf', (r) => r.chrf.toFixed(2)],
        ['bleu_drop', (r) => r.bleuDrop.toFixed(2)],
        ['loss', (r) => r.loss.toFixed(4)],
        ['loss_rise', (r) => r.lossRise.toFixed(4)],
      ]),
    );
    await writeTranslationReport(dir, results);
    return results;
  } finally {
    task.dispose();
  }
}

/**
 * The paper's claim on translators: at the small model's file sizes, a compressed larger model translates
 * better. By BLEU among the sizes whose uncompressed BLEU reaches minBleu, and by test loss among all sizes.
 */
export function checkTranslatorsLargeBeatsSmall(results: TranslationCompressionResults): {
  bleu: { holds: boolean | undefined; evidence: string };
  loss: { holds: boolean | undefined; evidence: string };
} {
  const learned = results.models.filter((m) => m.bleu >= results.minBleu);
  const skipped = results.models.filter((m) => !learned.includes(m)).map((m) => `${m.label} (${m.bleu.toFixed(2)})`);
  const note = skipped.length ? ` (left out below BLEU ${results.minBleu}: ${skipped.join(', ')})` : '';
  const bleu =
    learned.length < 2
      ? { holds: undefined, evidence: `needs two model sizes with BLEU >= ${results.minBleu}` }
      : largerBeatsSmaller(results.rows, learned, {
          better: (a, b) => a.bleu > b.bleu,
          show: (r) => `BLEU ${r.bleu.toFixed(2)}`,
          worse: '<',
        });
  const loss = largerBeatsSmaller(results.rows, results.models, {
    better: (a, b) => a.loss < b.loss,
    show: (r) => `loss ${r.loss.toFixed(3)}`,
    worse: '>',
  });
  return { bleu: { holds: bleu.holds, evidence: bleu.evidence + note }, loss };
}

function verdict(holds: boolean | undefined): string {
  return holds === undefined ? 'not decidable' : holds ? '**true**' : '**false**';
}

export async function writeTranslationReport(dir: string, results: TranslationCompressionResults): Promise<void> {
  const plots = path.join(dir, 'plots');
  await fs.promises.mkdir(plots, { recursive: true });
  const structured = results.rows.some((r) => r.method.startsWith('prune-'));
  for (const method of structured ? (['prune', 'quantize', 'structured'] as const) : (['prune', 'quantize'] as const)) {
    const svg = await renderSvg(
      scoreVsBytesSpec(results.name, results.rows, results.pareto, method, { field: 'bleu', title: 'test BLEU' }),
    );
    await writeFileAtomic(path.join(plots, `bleu-vs-bytes-${method}.svg`), svg);
    await writeFileAtomic(path.join(plots, `bleu-vs-bytes-${method}.png`), svgToPng(svg));
  }
  const check = checkTranslatorsLargeBeatsSmall(results);
  const sc = results.scoring;
  const lines = [
    `# Compression experiment ${results.name} (translators)`,
    '',
    `BLEU: the first ${results.bleuPairs} test pairs translated with beam ${sc.beam}, length penalty ${sc.lengthPenalty} ` +
      `(${results.bleuSignature}); loss: teacher-forced cross-entropy per target token on ${results.lossPairs} test pairs. ` +
      'One-shot compression: no training after pruning or quantizing. Bytes: the packed model file.',
    '',
    '![BLEU vs bytes, pruning](plots/bleu-vs-bytes-prune.png)',
    '',
    '![BLEU vs bytes, quantization](plots/bleu-vs-bytes-quantize.png)',
    '',
    ...(structured ? ['![BLEU vs bytes, structured pruning](plots/bleu-vs-bytes-structured.png)', ''] : []),
    WHAT_WAS_COMPRESSED,
    '',
    '| model | parameters | method | level | packed bytes | layer bytes | BLEU | chrF | loss | BLEU drop | mean weight error |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...results.rows.map(
      (r) =>
        `| ${r.model} | ${r.parameters} | ${r.method} | ${r.method === 'none' ? 'fp32' : r.setting} | ${r.bytes} | ${r.layerBytes} | ${r.bleu.toFixed(2)} | ${r.chrf.toFixed(2)} | ${r.loss.toFixed(3)} | ${r.bleuDrop.toFixed(2)} | ${r.meanWeightError.toFixed(4)} |`,
    ),
    '',
    '## Claims checked',
    '',
    `- a compressed larger model beats a compressed smaller one of the same or larger file size (BLEU): ${verdict(check.bleu.holds)}. ${check.bleu.evidence}.`,
    `- the same by test loss: ${verdict(check.loss.holds)}. ${check.loss.evidence}.`,
    '',
    'Every pair of sizes by test loss (the larger wins a comparison when its best variant no larger than a compressed variant of the smaller has the lower loss):',
    '',
    ...pairwiseWins(results.rows, results.models, (a, b) => a.loss < b.loss),
    '',
    `Pareto front (bytes, BLEU): ${results.pareto.map((r) => `${r.model} ${r.method} ${r.setting} (${r.bytes} B, ${r.bleu.toFixed(2)})`).join(' → ')}.`,
    '',
  ];
  await writeFileAtomic(path.join(dir, 'report.md'), lines.join('\n'));
}
