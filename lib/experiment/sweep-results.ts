// A sweep's finished runs read back from its directory: curves, which model first reached a loss, results.csv.
import * as fs from 'fs';
import * as path from 'path';
import { readJson } from '../io';
import { LrChoice } from './lr-search';
import { labelOf, readSweepSpec, SweepModel } from './sweep-spec';

/** A finished run's record in its directory. */
export const RESULT = 'result.json';

export interface RunResult {
  label: string;
  model: SweepModel;
  parameters: number;
  /** The peak learning rate it trained with (searched with the spec's lrSearch, unless the model set its own). */
  lr?: number;
  /** The search that chose `lr`: each rate's short run; its seconds are not in trainSeconds. */
  lrSearch?: LrChoice;
  steps: number;
  trainSeconds: number;
  trainTokens: number;
  stoppedBy: 'steps' | 'seconds' | 'tokens';
  /**
   * Validation curve: loss after `trainSeconds` of training (evaluation time excluded) and `step` steps;
   * translate sweeps add BLEU and chrF on the spec's fixed validation subset.
   */
  curve: CurvePoint[];
  finalLoss: number;
  finalBleu?: number;
}

export interface CurvePoint {
  step: number;
  trainSeconds: number;
  loss: number;
  perplexity: number;
  /** MLM: the loss on <mask>-replaced inputs, and a unigram model's on the same targets (EvalResult's). */
  maskLoss?: number;
  maskUnigramLoss?: number;
  bleu?: number;
  chrf?: number;
}

/** Curves and comparisons over a sweep's finished runs. */
export class SweepResults {
  constructor(
    readonly name: string,
    readonly runs: RunResult[],
    /** 'translate': the curves carry BLEU. */
    readonly task: 'mlm' | 'translate' = 'mlm',
  ) {}

  /** Validation loss against training seconds and steps, one series per run. */
  curves(): { label: string; parameters: number; points: RunResult['curve'] }[] {
    return this.runs.map((r) => ({ label: r.label, parameters: r.parameters, points: r.curve }));
  }

  /**
   * When each run first reached validation loss `target` (or, with metric 'bleu', BLEU >= `target`), fastest
   * first by training seconds (evaluation excluded) or, with by 'steps', by optimizer steps; runs that never
   * did are left out. `first` is the winner, if any.
   */
  firstToReach(
    target: number,
    opts: { metric?: 'loss' | 'bleu'; by?: 'seconds' | 'steps' } = {},
  ): {
    first?: { label: string; seconds: number; step: number };
    reached: { label: string; seconds: number; step: number }[];
  } {
    const metric = opts.metric ?? 'loss';
    const hit = (c: CurvePoint) => (metric === 'loss' ? c.loss <= target : (c.bleu ?? -Infinity) >= target);
    const reached = this.runs
      .map((r) => {
        const p = r.curve.find(hit);
        return p ? { label: r.label, seconds: p.trainSeconds, step: p.step } : undefined;
      })
      .filter((x): x is { label: string; seconds: number; step: number } => x !== undefined)
      .sort((a, b) => (opts.by === 'steps' ? a.step - b.step || a.seconds - b.seconds : a.seconds - b.seconds));
    return { first: reached[0], reached };
  }

  /** One row per evaluation: run,parameters,step,train_seconds,loss,perplexity (translate: and bleu,chrf). */
  csv(): string {
    const mt = this.task === 'translate';
    const rows = [`run,parameters,step,train_seconds,loss,perplexity${mt ? ',bleu,chrf' : ''}`];
    for (const r of this.runs)
      for (const p of r.curve) {
        const row = [r.label, r.parameters, p.step, p.trainSeconds.toFixed(3), p.loss.toFixed(5), p.perplexity.toFixed(4)];
        if (mt) row.push(p.bleu?.toFixed(2) ?? '', p.chrf?.toFixed(2) ?? '');
        rows.push(row.join(','));
      }
    return rows.join('\n') + '\n';
  }

  /** The finished runs of a sweep directory. */
  static async load(dir: string): Promise<SweepResults> {
    const spec = await readSweepSpec(dir);
    const runs: RunResult[] = [];
    for (const m of spec.models) {
      const file = path.join(dir, labelOf(m), RESULT);
      if (fs.existsSync(file)) runs.push(await readJson<RunResult>(file, 'sweep run'));
    }
    return new SweepResults(spec.name, runs, spec.task);
  }
}
