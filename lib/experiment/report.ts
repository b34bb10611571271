import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../io';
import { SweepResults } from './sweep';

// vega / vega-lite / resvg are CommonJS-loadable at these majors (vega 5, vega-lite 5, resvg-js 2). They are
// loaded on first use, not with the library: a service or a training script never pays for them (and the
// GPU check's bundle does not carry them).
/* eslint-disable @typescript-eslint/no-require-imports */
type Vega = {
  View: new (runtime: unknown, opts: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void };
  parse(spec: unknown): unknown;
};
const vegaOf = (): Vega => require('vega') as Vega;
const vegaLiteOf = () => require('vega-lite') as { compile(spec: unknown): { spec: unknown } };
const resvgOf = () =>
  (require('@resvg/resvg-js') as { Resvg: new (svg: string, opts: unknown) => { render(): { asPng(): Buffer } } }).Resvg;

export type VegaLiteSpec = Record<string, unknown>;

/**
 * Validation loss (or, for a translate sweep, `metric` 'bleu') against training seconds or steps, one line per
 * run (labelled with its parameters).
 */
export function lossCurveSpec(
  results: SweepResults,
  x: 'seconds' | 'steps',
  title?: string,
  metric: 'loss' | 'bleu' = 'loss',
): VegaLiteSpec {
  const values = results.runs.flatMap((r) =>
    r.curve
      .filter((p) => metric === 'loss' || p.bleu !== undefined)
      .map((p) => ({
        run: `${r.label} (${(r.parameters / 1e6).toFixed(2)} M)`,
        seconds: p.trainSeconds,
        steps: p.step,
        [metric]: metric === 'loss' ? p.loss : p.bleu,
      })),
  );
  const what = metric === 'bleu' ? 'validation BLEU' : 'validation loss';
  const yTitle =
    metric === 'bleu'
      ? 'validation BLEU (sacreBLEU, fixed subset)'
      : results.task === 'translate'
        ? 'validation loss (nats per target token)'
        : 'validation MLM loss (nats)';
  return lineChart(title ?? `${results.name}: ${what} vs ${x === 'seconds' ? 'training seconds' : 'steps'}`, values, {
    x: { field: x, type: 'quantitative', title: x === 'seconds' ? 'training seconds (evaluation excluded)' : 'optimizer steps' },
    y: { field: metric, type: 'quantitative', title: yTitle, scale: { zero: metric === 'bleu' } },
    color: { field: 'run', type: 'nominal', title: 'model', legend: { labelLimit: 0 } },
  });
}

/** A vega-lite line chart with points, in the reports' size and white background. */
export function lineChart(title: string, values: object[], encoding: Record<string, unknown>): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 480,
    height: 300,
    background: 'white',
    data: { values },
    mark: { type: 'line', point: true },
    encoding,
  };
}

/** A vega-lite spec rendered headless to SVG (no browser, no canvas). */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const vega = vegaOf();
  const view = new vega.View(vega.parse(vegaLiteOf().compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** SVG to PNG with resvg, `width` pixels wide. */
export function svgToPng(svg: string, width = 960): Buffer {
  const Resvg = resvgOf();
  return new Resvg(svg, { fitTo: { mode: 'width', value: width }, background: 'white' }).render().asPng();
}

export interface ClaimCheck {
  claim: string;
  holds: boolean | undefined;
  evidence: string;
}

/**
 * The paper's first claim on this sweep: the largest model is the first to reach a validation loss every
 * model reached (the highest best loss among the runs), in training seconds or, with by 'steps', in
 * optimizer steps. With metric 'bleu' (translate sweeps): a BLEU every model reached (the lowest best BLEU),
 * undecidable when some model never scored above 0. Stated either way.
 */
export function checkFirstToReach(results: SweepResults, opts: { metric?: 'loss' | 'bleu'; by?: 'seconds' | 'steps' } = {}): ClaimCheck {
  const metric = opts.metric ?? 'loss';
  const by = opts.by ?? 'seconds';
  const claim = `the largest model is the first to reach a ${metric === 'bleu' ? 'BLEU' : 'loss'} every model reaches (${by === 'seconds' ? 'wall-clock' : 'steps'})`;
  if (results.runs.length < 2) return { claim, holds: undefined, evidence: 'needs at least two finished runs' };
  const best = (r: SweepResults['runs'][number]) =>
    metric === 'loss' ? Math.min(...r.curve.map((p) => p.loss)) : Math.max(...r.curve.map((p) => p.bleu ?? -Infinity));
  const target = metric === 'loss' ? Math.max(...results.runs.map(best)) : Math.min(...results.runs.map(best));
  const largest = [...results.runs].sort((a, b) => b.parameters - a.parameters)[0];
  const size = `largest model: ${largest.label} (${(largest.parameters / 1e6).toFixed(2)} M parameters)`;
  if (metric === 'bleu' && !(target > 0)) {
    const zero = results.runs.filter((r) => !(best(r) > 0)).map((r) => r.label);
    return { claim, holds: undefined, evidence: `not decidable: ${zero.join(', ')} never scored above 0 BLEU; ${size}` };
  }
  const { first, reached } = results.firstToReach(target, { metric, by });
  const at = (x: { seconds: number; step: number }) =>
    by === 'seconds' ? `${x.seconds.toFixed(1)} s (step ${x.step})` : `step ${x.step} (${x.seconds.toFixed(1)} s)`;
  const times = reached.map((x) => `${x.label} ${at(x)}`).join(', ');
  const value = metric === 'bleu' ? `BLEU ${target.toFixed(2)}` : `loss ${target.toFixed(3)}`;
  return {
    claim,
    holds: first?.label === largest.label,
    evidence: `${value} reached by: ${times}; ${size}`,
  };
}

/**
 * MLM sweeps: does each model use context? Its final loss on the <mask> positions against a unigram model's on
 * the same targets (the whole loss can beat the unigram entropy by copying the targets left unchanged in the
 * input). A run that does not is flagged: comparing it with the others compares nothing learned.
 */
export function contextLines(results: SweepResults): string[] {
  const scored = results.runs.filter((r) => r.curve.some((p) => p.maskLoss !== undefined && p.maskUnigramLoss !== undefined));
  if (scored.length === 0) return [];
  return [
    '## Use of context',
    '',
    "Final validation loss on the `<mask>` positions against a unigram model (the training text's) on the same targets:",
    '',
    ...scored.map((r) => {
      const last = [...r.curve].reverse().find((p) => p.maskLoss !== undefined)!;
      const gain = last.maskUnigramLoss! - last.maskLoss!;
      return (
        `- ${r.label}: ${last.maskLoss!.toFixed(3)} vs ${last.maskUnigramLoss!.toFixed(3)}: ` +
        (gain > 0
          ? `uses context (${gain.toFixed(3)} nats better).`
          : '**flagged: learns nothing from context** (no better than the unigram model).')
      );
    }),
    '',
  ];
}

/** Sweeps with lrSearch: the rate each run trained with, each candidate's loss, and what the search cost. */
export function lrLines(results: SweepResults): string[] {
  const searched = results.runs.filter((r) => r.lrSearch);
  if (searched.length === 0) return [];
  const total = searched.reduce((n, r) => n + r.lrSearch!.searchSeconds, 0);
  return [
    '## Learning rates',
    '',
    `Each size's peak learning rate was searched: every candidate trained a throwaway copy for a share of that size's ` +
      `planned steps; the lowest validation loss won. The search took ${total.toFixed(1)} s in all, not counted in the ` +
      `training seconds above.`,
    '',
    ...results.runs.map((r) =>
      r.lrSearch
        ? `- ${r.label}: lr ${r.lrSearch.lr} chosen; ` +
          r.lrSearch.trials
            .map((t) => `${t.lr} -> ${t.diverged ? `diverged (loss ${t.loss.toFixed(3)})` : `loss ${t.loss.toFixed(3)}`}`)
            .join(', ') +
          ` (${r.lrSearch.trials[0].steps} steps each, ${r.lrSearch.searchSeconds.toFixed(1)} s)`
        : `- ${r.label}: lr ${r.lr ?? '-'} (its own, not searched)`,
    ),
    '',
  ];
}

/** Writes plots/ (SVG + PNG) and report.md for a sweep directory; returns the report's path. */
export async function writeSweepReport(dir: string): Promise<string> {
  const results = await SweepResults.load(dir);
  if (results.runs.length === 0) throw new Error(`report: ${dir} has no finished runs yet`);
  const plots = path.join(dir, 'plots');
  await fs.promises.mkdir(plots, { recursive: true });
  const images: string[] = [];
  const mt = results.task === 'translate';
  for (const metric of mt ? (['bleu', 'loss'] as const) : (['loss'] as const))
    for (const x of ['seconds', 'steps'] as const) {
      const svg = await renderSvg(lossCurveSpec(results, x, undefined, metric));
      await writeFileAtomic(path.join(plots, `${metric}-vs-${x}.svg`), svg);
      await writeFileAtomic(path.join(plots, `${metric}-vs-${x}.png`), svgToPng(svg));
      images.push(`![validation ${metric === 'bleu' ? 'BLEU' : 'loss'} vs ${x}](plots/${metric}-vs-${x}.png)`);
    }
  const checks = (mt ? (['bleu', 'loss'] as const) : (['loss'] as const)).flatMap((metric) =>
    (['seconds', 'steps'] as const).map((by) => checkFirstToReach(results, { metric, by })),
  );
  const verdict = (c: ClaimCheck) => (c.holds === undefined ? 'not decidable' : c.holds ? '**true**' : '**false**');
  const bleus = (r: SweepResults['runs'][number]) => r.curve.map((p) => p.bleu).filter((b): b is number => b !== undefined);
  const lines = [
    `# Sweep ${results.name}`,
    '',
    ...images.flatMap((i) => [i, '']),
    `| run | parameters | steps | training seconds | stopped by | first loss | final loss | best loss |${mt ? ' final BLEU | best BLEU |' : ''}`,
    `|---|---|---|---|---|---|---|---|${mt ? '---|---|' : ''}`,
    ...results.runs.map((r) => {
      const losses = r.curve.map((p) => p.loss);
      const b = bleus(r);
      return (
        `| ${r.label} | ${r.parameters} | ${r.steps} | ${r.trainSeconds.toFixed(1)} | ${r.stoppedBy} | ${losses[0]?.toFixed(3) ?? '-'} | ` +
        `${r.finalLoss.toFixed(3)} | ${Math.min(...losses).toFixed(3)} |` +
        (mt ? ` ${b.length ? b[b.length - 1].toFixed(2) : '-'} | ${b.length ? Math.max(...b).toFixed(2) : '-'} |` : '')
      );
    }),
    '',
    '## Claims checked',
    '',
    ...checks.map((c) => `- ${c.claim}: ${verdict(c)}. ${c.evidence}.`),
    '',
    ...contextLines(results),
    ...lrLines(results),
    mt
      ? "Computed from the runs' metrics.jsonl (validation loss: plain cross-entropy per target token; BLEU: sacreBLEU on a fixed " +
        'subset of the validation pairs; evaluation time excluded from training seconds).'
      : "Computed from the runs' metrics.jsonl (validation loss with a fixed masking seed; evaluation time excluded from training seconds).",
    '',
  ];
  const file = path.join(dir, 'report.md');
  await writeFileAtomic(file, lines.join('\n'));
  return file;
}
