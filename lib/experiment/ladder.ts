// A budget ladder: the same sizes trained under several budgets, each budget a full sweep with its schedule laid
// over that budget. Which size wins at each budget shows the mechanism behind "train large, then stop early":
// at small budgets the small models win, and the winning size grows with the budget.
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { readJson, writeFileAtomic, writeJsonAtomic } from '../io';
import { withLock } from '../lock';
import { isRank0 } from '../config/dist';
import { TrainConfig } from '../config/train';
import { ClaimCheck, contextLines, lineChart, renderSvg, svgToPng, VegaLiteSpec, writeSweepReport } from './report';
import { Sweep, SweepProgress, SweepResults, SweepSpec, SweepSpecSchema } from './sweep';

const positive = z.number().positive();
const BudgetSchema = z.union([
  z.object({ seconds: positive }).strict(),
  z.object({ steps: z.number().int().positive() }).strict(),
  z.object({ tokens: z.number().int().positive() }).strict(),
]);
export type Budget = z.output<typeof BudgetSchema>;

/**
 * A sweep spec (every field of one, `budget` aside) with `kind: 'ladder'` and `budgets`: two or more budgets of
 * one kind (seconds, steps or tokens), increasing. Each budget runs the whole sweep in DIR/<budget>.
 */
export const LadderSpecSchema = z
  .object({
    kind: z.literal('ladder'),
    budgets: z.array(BudgetSchema).min(2, 'give at least two budgets'),
  })
  .passthrough()
  .superRefine((s, ctx) => {
    const unit = budgetUnit(s.budgets[0]);
    s.budgets.forEach((b, i) => {
      if (budgetUnit(b) !== unit)
        ctx.addIssue({ code: 'custom', path: ['budgets', i], message: `every budget must be in ${unit}, like budgets[0]` });
      else if (i > 0 && budgetValue(b) <= budgetValue(s.budgets[i - 1]))
        ctx.addIssue({ code: 'custom', path: ['budgets', i], message: `must be larger than budgets[${i - 1}] (increasing)` });
    });
    if ('budget' in s) ctx.addIssue({ code: 'custom', path: ['budget'], message: "a ladder has 'budgets' (a list), not 'budget'" });
  });
export type LadderSpec = Omit<SweepSpec, 'budget'> & { kind: 'ladder'; budgets: Budget[] };

function budgetUnit(b: Budget): 'seconds' | 'steps' | 'tokens' {
  return 'seconds' in b ? 'seconds' : 'steps' in b ? 'steps' : 'tokens';
}
function budgetValue(b: Budget): number {
  return 'seconds' in b ? b.seconds : 'steps' in b ? b.steps : b.tokens;
}
/** A budget's directory name and label: 60s, 500steps, 1000000tokens. */
export function budgetLabel(b: Budget): string {
  return `${budgetValue(b)}${budgetUnit(b)}`;
}

/** The ladder's sweeps, one per budget, each validated as a sweep (errors name the ladder's fields). */
export function ladderSweeps(spec: LadderSpec): { budget: Budget; label: string; sweep: Sweep }[] {
  const s = parseConfig(LadderSpecSchema, spec, 'ladder') as unknown as LadderSpec;
  const { kind: _kind, budgets, ...rest } = s;
  // One parse up front with the first budget: a bad sweep field is reported once, with its own path.
  parseConfig(SweepSpecSchema, { ...rest, budget: budgets[0] }, 'ladder');
  return budgets.map((budget) => ({
    budget,
    label: budgetLabel(budget),
    sweep: new Sweep({ ...(rest as Omit<SweepSpec, 'budget'>), name: `${rest.name}-${budgetLabel(budget)}`, budget }),
  }));
}

export interface LadderRung {
  budget: Budget;
  label: string;
  results: SweepResults;
}

/** Per budget, which size wins (lowest best validation loss), and whether the winner grows with the budget. */
export class LadderResults {
  constructor(
    readonly name: string,
    readonly rungs: LadderRung[],
  ) {}

  /** The winner of each budget: the run with the lowest validation loss it reached (ties: the smaller model). */
  winners(): { budget: string; label: string; parameters: number; bestLoss: number }[] {
    return this.rungs
      .filter((r) => r.results.runs.length > 0)
      .map((r) => {
        const scored = r.results.runs
          .map((run) => ({ label: run.label, parameters: run.parameters, bestLoss: bestLoss(run.curve) }))
          .sort((a, b) => a.bestLoss - b.bestLoss || a.parameters - b.parameters);
        return { budget: r.label, ...scored[0] };
      });
  }

  /**
   * "The winning size grows with the budget": the winners' parameter counts never fall from one budget to the
   * next and the largest budget's winner is larger than the smallest's. Undecidable with fewer than two
   * budgets finished or a budget whose runs did not all finish.
   */
  checkWinnerGrows(): ClaimCheck {
    const claim = 'the winning model size grows with the budget';
    const sizes = new Set(this.rungs.flatMap((r) => r.results.runs.map((x) => x.label)));
    const complete = this.rungs.filter((r) => r.results.runs.length === sizes.size);
    if (complete.length < 2 || sizes.size < 2)
      return { claim, holds: undefined, evidence: 'needs two sizes finished under at least two budgets' };
    const w = new LadderResults(this.name, complete).winners();
    const evidence = w
      .map((x) => `${x.budget}: ${x.label} (${(x.parameters / 1e6).toFixed(2)} M, loss ${x.bestLoss.toFixed(3)})`)
      .join('; ');
    const neverFalls = w.every((x, i) => i === 0 || x.parameters >= w[i - 1].parameters);
    return { claim, holds: neverFalls && w[w.length - 1].parameters > w[0].parameters, evidence };
  }

  /**
   * One row per (budget, run): budget,run,parameters,steps,train_seconds,best_loss,final_loss,mask_loss,
   * mask_unigram_loss,best_bleu (mask columns: mlm; best_bleu: translate).
   */
  csv(): string {
    const rows = ['budget,run,parameters,steps,train_seconds,best_loss,final_loss,mask_loss,mask_unigram_loss,best_bleu'];
    for (const rung of this.rungs)
      for (const r of rung.results.runs) {
        const last = r.curve[r.curve.length - 1];
        rows.push(
          [
            rung.label,
            r.label,
            r.parameters,
            r.steps,
            r.trainSeconds.toFixed(3),
            bestLoss(r.curve).toFixed(5),
            r.finalLoss.toFixed(5),
            last?.maskLoss?.toFixed(5) ?? '',
            last?.maskUnigramLoss?.toFixed(5) ?? '',
            bestBleu(r.curve)?.toFixed(2) ?? '',
          ].join(','),
        );
      }
    return rows.join('\n') + '\n';
  }

  /** A ladder directory's finished runs (ladder.json names the budgets). */
  static async load(dir: string): Promise<LadderResults> {
    const spec = await readJson<LadderSpec>(path.join(dir, 'ladder.json'), 'ladder');
    const rungs: LadderRung[] = [];
    for (const budget of spec.budgets) {
      const label = budgetLabel(budget);
      const sub = path.join(dir, label);
      const results = fs.existsSync(path.join(sub, 'sweep.json')) ? await SweepResults.load(sub) : new SweepResults(label, []);
      rungs.push({ budget, label, results });
    }
    return new LadderResults(spec.name, rungs);
  }
}

function bestLoss(curve: { loss: number }[]): number {
  return curve.length ? Math.min(...curve.map((p) => p.loss)) : NaN;
}

/** Translate runs: the highest BLEU of the curve (undefined without BLEU points). */
function bestBleu(curve: { bleu?: number }[]): number | undefined {
  const b = curve.map((p) => p.bleu).filter((x): x is number => x !== undefined);
  return b.length ? Math.max(...b) : undefined;
}

/**
 * Runs every budget's sweep in DIR/<budget> (smallest first; each resumable like a sweep), then writes
 * results.csv and report.md. A directory holding another ladder is refused.
 */
/** Held while a job writes a ladder directory's shared files (ladder.json, reports, results.csv). */
export const LADDER_LOCK = '.ladder.lock';

export async function runLadder(
  spec: LadderSpec,
  opts: {
    dir: string;
    onProgress?: (p: SweepProgress & { budget: string }) => void;
    signal?: AbortSignal;
    /** Run names to train at every budget (the sweep's `only`); default all. */
    only?: string[];
    /** Each run data-parallel across a process group's ranks (the sweep's `distributed`); rank 0 writes. */
    distributed?: TrainConfig['distributed'];
  },
): Promise<LadderResults> {
  const rungs = ladderSweeps(spec);
  const dir = path.resolve(opts.dir);
  await fs.promises.mkdir(dir, { recursive: true });
  const file = path.join(dir, 'ladder.json');
  const shared = path.join(dir, LADDER_LOCK);
  // Data-parallel: every rank trains, rank 0 writes the ladder's files.
  const lead = isRank0(opts.distributed ?? 'off');
  await withLock(
    shared,
    async () => {
      if (fs.existsSync(file)) {
        const old = await readJson<LadderSpec>(file, 'ladder');
        if (JSON.stringify(old) !== JSON.stringify(spec))
          throw new Error(`ladder: ${dir} holds another ladder (ladder.json differs); use a new directory`);
      } else {
        await writeJsonAtomic(file, spec);
      }
    },
    { what: 'ladder' },
  );
  for (const r of rungs) {
    const sub = path.join(dir, r.label);
    await r.sweep.run({
      dir: sub,
      signal: opts.signal,
      ...(opts.only ? { only: opts.only } : {}),
      ...(opts.distributed ? { distributed: opts.distributed } : {}),
      onProgress: (p) => opts.onProgress?.({ ...p, budget: r.label }),
    });
    if (lead) await withLock(shared, () => writeSweepReport(sub), { what: 'ladder' });
  }
  // Several jobs may share the ladder (--only): the report is of every run finished by now, written by one at a time.
  return withLock(
    shared,
    async () => {
      const results = await LadderResults.load(dir);
      if (lead) {
        await writeFileAtomic(path.join(dir, 'results.csv'), results.csv());
        await writeLadderReport(dir);
      }
      return results;
    },
    { what: 'ladder' },
  );
}

/** Best validation loss against parameters (log scale), one line per budget. */
export function ladderSpec(results: LadderResults): VegaLiteSpec {
  const values = results.rungs.flatMap((rung, i) =>
    rung.results.runs.map((r) => ({ budget: rung.label, order: i, parameters: r.parameters, loss: bestLoss(r.curve), run: r.label })),
  );
  return lineChart(`${results.name}: best validation loss vs model size, one line per budget`, values, {
    x: { field: 'parameters', type: 'quantitative', title: 'parameters', scale: { type: 'log' } },
    y: {
      field: 'loss',
      type: 'quantitative',
      title:
        results.rungs[0]?.results.task === 'translate' ? 'best validation loss (nats per target token)' : 'best validation MLM loss (nats)',
      scale: { zero: false },
    },
    color: { field: 'budget', type: 'nominal', title: 'budget', sort: { field: 'order' } },
    order: { field: 'parameters', type: 'quantitative' },
  });
}

/** plots/loss-vs-size.{svg,png} and report.md of a ladder directory; returns the report's path. */
export async function writeLadderReport(dir: string): Promise<string> {
  const results = await LadderResults.load(dir);
  if (results.rungs.every((r) => r.results.runs.length === 0)) throw new Error(`report: ${dir} has no finished runs yet`);
  const plots = path.join(dir, 'plots');
  await fs.promises.mkdir(plots, { recursive: true });
  const svg = await renderSvg(ladderSpec(results));
  await writeFileAtomic(path.join(plots, 'loss-vs-size.svg'), svg);
  await writeFileAtomic(path.join(plots, 'loss-vs-size.png'), svgToPng(svg));
  const grows = results.checkWinnerGrows();
  const verdict = grows.holds === undefined ? 'not decidable' : grows.holds ? '**true**' : '**false**';
  const labels = [...new Set(results.rungs.flatMap((r) => r.results.runs.map((x) => `${x.label}|${x.parameters}`)))];
  const lines = [
    `# Budget ladder ${results.name}`,
    '',
    '![best validation loss vs model size](plots/loss-vs-size.png)',
    '',
    'Best validation loss of each size under each budget (each budget its own runs, the schedule laid over that budget):',
    '',
    `| model | parameters | ${results.rungs.map((r) => r.label).join(' | ')} |`,
    `|---|---|${results.rungs.map(() => '---|').join('')}`,
    ...labels.map((key) => {
      const [label, parameters] = key.split('|');
      const cells = results.rungs.map((rung) => {
        const run = rung.results.runs.find((x) => x.label === label);
        return run ? bestLoss(run.curve).toFixed(3) : '-';
      });
      return `| ${label} | ${parameters} | ${cells.join(' | ')} |`;
    }),
    '',
    ...(results.rungs.some((r) => r.results.runs.some((x) => bestBleu(x.curve) !== undefined))
      ? [
          'Best validation BLEU (the fixed subset) of each size under each budget:',
          '',
          `| model | ${results.rungs.map((r) => r.label).join(' | ')} |`,
          `|---|${results.rungs.map(() => '---|').join('')}`,
          ...labels.map((key) => {
            const [label] = key.split('|');
            const cells = results.rungs.map(
              (rung) => bestBleu(rung.results.runs.find((x) => x.label === label)?.curve ?? [])?.toFixed(2) ?? '-',
            );
            return `| ${label} | ${cells.join(' | ')} |`;
          }),
          '',
        ]
      : []),
    '## Winner per budget (lowest validation loss)',
    '',
    ...results.winners().map((w) => `- ${w.budget}: ${w.label} (${w.parameters} parameters), best loss ${w.bestLoss.toFixed(3)}`),
    '',
    '## Claim checked',
    '',
    `- ${grows.claim}: ${verdict}. ${grows.evidence}.`,
    '',
    ...results.rungs.flatMap((r) => {
      const c = contextLines(r.results);
      return c.length ? [`### ${r.label}`, '', ...c.slice(2)] : [];
    }),
    "Each budget's sweep has its own report (DIR/<budget>/report.md) with curves and the per-budget claims.",
    '',
  ];
  const file = path.join(dir, 'report.md');
  await writeFileAtomic(file, lines.join('\n'));
  return file;
}
