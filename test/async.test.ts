import * as fs from 'fs';
import * as path from 'path';
import { AbortError, Trainer, Transformer } from '../lib';
import { small, speechData, tempDir } from './helpers';

describe('training runs off the main thread', () => {
  const { train } = speechData(64, 30);

  test('a_timer_keeps_firing_while_fit_runs', async () => {
    const model = await Transformer.create({ ...small, dModel: 128 });
    const trainer = new Trainer(model, { maxSteps: 30, batchSize: 16, precision: 'fp32' });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = Date.now();
    const r = await trainer.fit(train, { evalEvery: 1000, progressSeconds: 5 });
    clearInterval(timer);
    const elapsed = Date.now() - started;
    expect(r.steps).toBe(30);
    // A blocked event loop would fire almost no ticks; a free one fires about one per 10 ms.
    expect(ticks).toBeGreaterThan((elapsed / 10) * 0.5);
    model.dispose();
  });

  test('abort_stops_at_the_next_step_and_leaves_a_resumable_checkpoint', async () => {
    const model = await Transformer.create(small);
    const dir = tempDir('abort');
    const controller = new AbortController();
    const trainer = new Trainer(model, { maxSteps: 10000, batchSize: 8, precision: 'fp32' });
    let stepAtAbort = -1;
    setTimeout(() => {
      stepAtAbort = trainer.step;
      controller.abort();
    }, 1500);
    const started = Date.now();
    await expect(
      trainer.fit(train, { dir, signal: controller.signal, progressSeconds: 60, checkpointEvery: 100000 }),
    ).rejects.toBeInstanceOf(AbortError);
    expect(Date.now() - started).toBeLessThan(5000);
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'trainer.json'), 'utf8')).step;
    // The native loop checks the abort flag between steps: at most the step in flight finishes.
    expect(saved).toBeGreaterThanOrEqual(stepAtAbort);
    expect(saved).toBeLessThanOrEqual(stepAtAbort + 1);
    const again = await Transformer.create(small, { seed: 9 });
    const resumed = new Trainer(again, { maxSteps: saved + 2, batchSize: 8, precision: 'fp32' });
    const r = await resumed.fit(train, { dir });
    expect(r.resumedFrom).toBe(saved);
    expect(r.steps).toBe(saved + 2);
  });

  test('calls_on_one_model_are_queued_not_raced', async () => {
    const model = await Transformer.create(small);
    const trainer = new Trainer(model, { maxSteps: 20, batchSize: 8, precision: 'fp32' });
    const fit = trainer.fit(train, { evalEvery: 1000, progressSeconds: 0.01 });
    const predictions = await Promise.all([1, 2, 3].map(() => model.predict([[1, 40, 50]])));
    await fit;
    expect(predictions.every((p) => p.dims[2] === small.vocabSize)).toBe(true);
  });
});
