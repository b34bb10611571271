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

/** Validation loss against training seconds or steps, one line per run (labelled with its parameters). */
export function lossCurveSpec(results: SweepResults, x: 'seconds' | 'steps', title?: string): VegaLiteSpec {
  const values = results.runs.flatMap((r) =>
    r.curve.map((p) => ({
      run: `${r.label} (${(r.parameters / 1e6).toFixed(2)} M)`,
      seconds: p.trainSeconds,
      steps: p.step,
      loss: p.loss,
    })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: title ?? `${results.name}: validation loss vs ${x === 'seconds' ? 'training seconds' : 'steps'}`,
    width: 480,
    height: 300,
    background: 'white',
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: x, type: 'quantitative', title: x === 'seconds' ? 'training seconds (evaluation excluded)' : 'optimizer steps' },
      y: { field: 'loss', type: 'quantitative', title: 'validation MLM loss (nats)', scale: { zero: false } },
      color: { field: 'run', type: 'nominal', title: 'model' },
    },
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
 * The paper's first claim on this sweep: the largest model is the first to reach a loss every model
 * reached (the highest final loss among the runs), in training seconds. Stated either way.
 */
export function checkFirstToReach(results: SweepResults): ClaimCheck {
  const claim = 'the largest model is the first to reach a loss every model reaches (wall-clock)';
  if (results.runs.length < 2) return { claim, holds: undefined, evidence: 'needs at least two finished runs' };
  const target = Math.max(...results.runs.map((r) => Math.min(...r.curve.map((p) => p.loss))));
  const largest = [...results.runs].sort((a, b) => b.parameters - a.parameters)[0];
  const { first, reached } = results.firstToReach(target);
  const times = reached.map((x) => `${x.label} ${x.seconds.toFixed(1)} s (step ${x.step})`).join(', ');
  return {
    claim,
    holds: first?.label === largest.label,
    evidence: `loss ${target.toFixed(3)} reached by: ${times}; largest model: ${largest.label} (${(largest.parameters / 1e6).toFixed(2)} M parameters)`,
  };
}

/** Writes plots/ (SVG + PNG) and report.md for a sweep directory; returns the report's path. */
export async function writeSweepReport(dir: string): Promise<string> {
  const results = await SweepResults.load(dir);
  if (results.runs.length === 0) throw new Error(`report: ${dir} has no finished runs yet`);
  const plots = path.join(dir, 'plots');
  await fs.promises.mkdir(plots, { recursive: true });
  const images: string[] = [];
  for (const x of ['seconds', 'steps'] as const) {
    const svg = await renderSvg(lossCurveSpec(results, x));
    await writeFileAtomic(path.join(plots, `loss-vs-${x}.svg`), svg);
    await writeFileAtomic(path.join(plots, `loss-vs-${x}.png`), svgToPng(svg));
    images.push(`![validation loss vs ${x}](plots/loss-vs-${x}.png)`);
  }
  const check = checkFirstToReach(results);
  const verdict = check.holds === undefined ? 'not decidable' : check.holds ? '**true**' : '**false**';
  const lines = [
    `# Sweep ${results.name}`,
    '',
    ...images.flatMap((i) => [i, '']),
    '| run | parameters | steps | training seconds | stopped by | first loss | final loss | best loss |',
    '|---|---|---|---|---|---|---|---|',
    ...results.runs.map((r) => {
      const losses = r.curve.map((p) => p.loss);
      return (
        `| ${r.label} | ${r.parameters} | ${r.steps} | ${r.trainSeconds.toFixed(1)} | ${r.stoppedBy} | ${losses[0]?.toFixed(3) ?? '-'} | ` +
        `${r.finalLoss.toFixed(3)} | ${Math.min(...losses).toFixed(3)} |`
      );
    }),
    '',
    '## Claims checked',
    '',
    `- ${check.claim}: ${verdict}. ${check.evidence}.`,
    '',
    "Computed from the runs' metrics.jsonl (validation loss with a fixed masking seed; evaluation time excluded from training seconds).",
    '',
  ];
  const file = path.join(dir, 'report.md');
  await writeFileAtomic(file, lines.join('\n'));
  return file;
}
