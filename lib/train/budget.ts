import { Device, ModelConfigInput } from '../config/model';
import { TrainConfigInput } from '../config/train';
import { TrainingData } from '../data/dataset';
import { Transformer } from '../model';
import { Trainer } from './trainer';

/** At most this many steps go into a measurement, however fast a step is. */
const MAX_MEASURED_STEPS = 400;

/**
 * Measures the seconds of a training step for a model and batch setting, on a throwaway model: what a
 * wall-clock budget needs to lay the LR schedule over steps.
 *
 * A process's first steps run 2-3x slower than its steady pace (allocator arenas and thread teams warming up:
 * a d128 1-layer model took 0.06-0.09 s a step for its first ~20 steps, then 0.022 s). So after `steps` steps
 * (past one warm-up step) give a first estimate, a model whose steps are short enough runs on for about
 * `minSeconds` in all, and the median of that run's second half is the answer. Slow models (a few steps fill
 * `minSeconds`) keep the first estimate, where warm-up is a small share of each step.
 */
export async function measureStepSeconds(
  model: ModelConfigInput,
  train: Omit<TrainConfigInput, 'maxSteps'>,
  data: TrainingData,
  steps = 3,
  device: Device = 'cpu',
  minSeconds = 3,
): Promise<number> {
  const probe = await Transformer.create(model, { device });
  try {
    const first = await stepTimes(probe, train, data, steps + 1);
    let seconds = median(first.slice(1));
    const more = Math.min(MAX_MEASURED_STEPS, Math.ceil(minSeconds / Math.max(seconds, 1e-6)));
    if (more > 2 * (steps + 1)) {
      const times = await stepTimes(probe, train, data, more);
      seconds = median(times.slice(Math.floor(times.length / 2)));
    }
    return seconds;
  } finally {
    probe.dispose();
  }
}

/** Each step's seconds over a run of `steps` steps of a fresh trainer on `model`. */
async function stepTimes(
  model: Transformer,
  train: Omit<TrainConfigInput, 'maxSteps'>,
  data: TrainingData,
  steps: number,
): Promise<number[]> {
  const trainer = new Trainer(model, { ...train, maxSteps: steps });
  try {
    const r = await trainer.fit(data, { evalEvery: steps + 1 });
    return r.history.filter((h) => h.type === 'train').map((h) => h.seconds);
  } finally {
    trainer.dispose();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
