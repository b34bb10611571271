// A sweep's per-size learning-rate search: each candidate rate trains a throwaway copy of the model for a
// small share of the budget (the same schedule shape, compressed), and the rate with the lowest validation
// loss wins. One shared rate favours the size it was tuned for (deep post-LN models at a small model's rate
// plateau or diverge), which is not a fair comparison of sizes.
import { z } from 'zod';
import { Device, ModelConfigInput } from '../config/model';
import { plannedWarmup, TrainConfigInput } from '../config/train';
import { TrainingData } from '../data/dataset';
import { Transformer } from '../model';
import { Trainer } from '../train/trainer';

export const LrSearchSchema = z
  .object({
    /** Candidate peak learning rates, at least two. */
    rates: z.array(z.number().positive()).min(2),
    /** The share of each model's planned steps a candidate trains for (default 0.05). */
    fraction: z.number().gt(0).max(0.5).default(0.05),
  })
  .strict();
export type LrSearch = z.output<typeof LrSearchSchema>;

export interface LrTrial {
  lr: number;
  /** Validation loss after the trial's steps; NaN when training diverged. */
  loss: number;
  steps: number;
  /** Wall-clock seconds of the trial, its evaluation included. */
  seconds: number;
  /** The loss became non-finite, or ended above where it started. */
  diverged: boolean;
}

export interface LrChoice {
  lr: number;
  trials: LrTrial[];
  /** All trials' seconds: the search's cost, reported beside (not inside) the training seconds. */
  searchSeconds: number;
}

/**
 * Trains one throwaway model per rate for `fraction` of `plannedSteps` (warmup the same fraction of those
 * steps as the real run's) and returns the rate with the lowest validation loss. Throws when every rate
 * diverged, naming them.
 */
export async function searchLr(opts: {
  config: ModelConfigInput;
  train: Omit<TrainConfigInput, 'lr' | 'maxSteps' | 'warmupSteps'>;
  data: TrainingData;
  valid: TrainingData;
  plannedSteps: number;
  warmup: number;
  search: LrSearch;
  seed: number;
  device: Device;
  evalSamples?: number;
}): Promise<LrChoice> {
  const steps = Math.max(2, Math.round(opts.plannedSteps * opts.search.fraction));
  const trials: LrTrial[] = [];
  for (const lr of opts.search.rates) {
    const start = Date.now();
    const model = await Transformer.create(opts.config, { seed: opts.seed, device: opts.device });
    const trainer = new Trainer(model, { ...opts.train, lr, maxSteps: steps, warmupSteps: plannedWarmup(steps, opts.warmup) });
    try {
      const before = await model.evaluate(opts.valid, { maxSamples: opts.evalSamples });
      let loss = NaN;
      try {
        const r = await trainer.fit(opts.data, { validData: opts.valid, evalEvery: steps, evalSamples: opts.evalSamples });
        loss = r.lastEval?.loss ?? NaN;
      } catch (e) {
        // The trainer stops a run whose loss turned non-finite: that rate diverged. Anything else is a real error.
        if (!(e instanceof Error && e.message.startsWith('training diverged'))) throw e;
      }
      const diverged = !Number.isFinite(loss) || loss > before.loss;
      trials.push({ lr, loss, steps, seconds: (Date.now() - start) / 1000, diverged });
    } finally {
      trainer.dispose();
      model.dispose();
    }
  }
  const usable = trials.filter((t) => !t.diverged);
  if (usable.length === 0) {
    throw new Error(`lrSearch: every rate diverged in ${steps} steps (${opts.search.rates.join(', ')}): try smaller rates`);
  }
  const best = usable.reduce((a, b) => (b.loss < a.loss ? b : a));
  return { lr: best.lr, trials, searchSeconds: trials.reduce((n, t) => n + t.seconds, 0) };
}
