// Training budgets in seconds and tokens, and evaluation on a wall-clock cadence: what a size sweep
// compares models by. Budgets hold within one step; evaluation time is not charged to training.
import { Trainer, Transformer } from '../lib';
import { small, speechData, tempDir } from './helpers';

jest.setTimeout(120_000);

test('a seconds budget stops training within one step of it, and evaluation time is not charged', async () => {
  const { train, valid } = speechData(64, 30);
  const model = await Transformer.create(small, { seed: 1 });
  const trainer = new Trainer(model, { maxSteps: 100_000, batchSize: 8, lr: 1e-3, warmupSteps: 10 });
  const r = await trainer.fit(train, { validData: valid, evalEvery: 100_000, evalEverySeconds: 0.5, evalSamples: 64, maxSeconds: 2 });
  const steps = r.history.filter((h) => h.type === 'train');
  const evals = r.history.filter((h) => h.type === 'eval');
  expect(r.stoppedBy).toBe('seconds');
  const last = steps[steps.length - 1];
  expect(r.trainSeconds).toBeGreaterThanOrEqual(2);
  expect(r.trainSeconds - last.seconds).toBeLessThan(2);
  expect(r.trainSeconds).toBeCloseTo(
    steps.reduce((n, s) => n + s.seconds, 0),
    6,
  ); // evaluations excluded
  // One evaluation per half second of training, within one step of crossing each multiple, plus the final one.
  // A step longer than half a second (a loaded machine) crosses two multiples at once and evaluates once.
  const longest = Math.max(...steps.map((s) => s.seconds));
  if (longest < 0.5) expect(evals.length).toBeGreaterThanOrEqual(4);
  else expect(evals.length).toBeGreaterThanOrEqual(2);
  let previous = 0;
  for (let k = 0; k + 1 < evals.length; k++) {
    const multiple = Math.floor(evals[k].trainSeconds / 0.5) * 0.5;
    expect(multiple).toBeGreaterThan(previous);
    expect(evals[k].trainSeconds - multiple).toBeLessThan(longest + 1e-9);
    previous = multiple;
  }
  trainer.dispose();
  model.dispose();
});

test('a token budget stops within one step of it', async () => {
  const { train } = speechData(32, 30);
  const model = await Transformer.create({ ...small, maxLen: 32 }, { seed: 1 });
  const trainer = new Trainer(model, { maxSteps: 100_000, batchSize: 4, lr: 1e-3, warmupSteps: 0 });
  const r = await trainer.fit(train, { evalEvery: 100_000, maxTokens: 1000 });
  expect(r.stoppedBy).toBe('tokens');
  expect(r.trainTokens).toBeGreaterThanOrEqual(1000);
  expect(r.trainTokens - 4 * 32).toBeLessThan(1000);
  expect(r.steps).toBe(Math.ceil(1000 / (4 * 32)));
  trainer.dispose();
  model.dispose();
});

test('budgets count across a resume: the second fit continues to the total', async () => {
  const dir = tempDir('budget');
  const { train } = speechData(64, 30);
  const first = await Transformer.create(small, { seed: 2 });
  const t1 = new Trainer(first, { maxSteps: 100_000, batchSize: 4, lr: 1e-3 });
  const a = await t1.fit(train, { dir, evalEvery: 5, maxTokens: 2000 });
  t1.dispose();
  const second = await Transformer.create(small, { seed: 2 });
  const t2 = new Trainer(second, { maxSteps: 100_000, batchSize: 4, lr: 1e-3 });
  const b = await t2.fit(train, { dir, evalEvery: 5, maxTokens: 4000 });
  expect(b.resumedFrom).toBe(a.steps);
  expect(b.trainTokens).toBeGreaterThanOrEqual(4000);
  expect(b.trainTokens - 4 * 64).toBeLessThan(4000);
  await expect(t2.fit(train, { maxSeconds: -1 })).rejects.toThrow(/maxSeconds: must be a positive number/);
  t2.dispose();
  first.dispose();
  second.dispose();
});
