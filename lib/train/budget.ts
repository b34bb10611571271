import { Device, ModelConfigInput } from '../config/model';
import { TrainConfigInput } from '../config/train';
import { TrainingData } from '../data/dataset';
import { Transformer } from '../model';
import { Trainer } from './trainer';

/**
 * Measures the median seconds of a training step for a model and batch setting (after one warm-up
 * step), on a throwaway model: what a wall-clock budget needs to lay the LR schedule over steps.
 */
export async function measureStepSeconds(
  model: ModelConfigInput,
  train: Omit<TrainConfigInput, 'maxSteps'>,
  data: TrainingData,
  steps = 3,
  device: Device = 'cpu',
): Promise<number> {
  const probe = await Transformer.create(model, { device });
  const trainer = new Trainer(probe, { ...train, maxSteps: steps + 1 });
  try {
    const r = await trainer.fit(data, { evalEvery: steps + 1 });
    const times = r.history
      .filter((h) => h.type === 'train')
      .slice(1)
      .map((h) => h.seconds)
      .sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)];
  } finally {
    trainer.dispose();
    probe.dispose();
  }
}
