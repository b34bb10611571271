import * as fs from 'fs';
import * as path from 'path';
import { AbortError, Trainer, Transformer } from '../lib';
import { small, speechData, tempDir } from './helpers';

const trainCfg = { maxSteps: 16, warmupSteps: 4, lr: 1e-3, batchSize: 8, precision: 'fp32' as const, seed: 7 };

describe('checkpoints', () => {
  const { train, valid } = speechData(64, 30);

  test('save_then_load_gives_identical_logits', async () => {
    const model = await Transformer.create(small, { seed: 11 });
    await new Trainer(model, { ...trainCfg, maxSteps: 5 }).fit(train);
    const dir = tempDir('save');
    await model.save(dir);
    const again = await Transformer.load(dir);
    const ids = [
      [1, 50, 60, 70, 4, 80],
      [1, 90, 4, 100],
    ];
    const a = await model.predict(ids);
    const b = await again.predict(ids);
    expect(b.dims).toEqual([2, 6, small.vocabSize]);
    expect(Buffer.from(b.data.buffer).equals(Buffer.from(a.data.buffer))).toBe(true);
    // safetensors: 8-byte length, JSON header with our tensor names, data exactly after it.
    const bytes = fs.readFileSync(path.join(dir, 'model.safetensors'));
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
    expect(header['layers.1.attn.qkv.weight']).toMatchObject({ dtype: 'F32', shape: [192, 64] });
    const end = Math.max(
      ...Object.values(header)
        .filter((v: any) => v.data_offsets)
        .map((v: any) => v.data_offsets[1]),
    );
    expect(bytes.length).toBe(8 + n + end);
  });

  test('resume_continues_identically', async () => {
    // Uninterrupted run.
    const a = await Transformer.create(small, { seed: 5 });
    const full = await new Trainer(a, trainCfg).fit(train, { validData: valid, evalEvery: 8, evalSamples: 32, dir: tempDir('full') });
    // The same run aborted after step 6, then resumed in a fresh process-like setting (new model, new trainer).
    const dir = tempDir('resume');
    const b = await Transformer.create(small, { seed: 5 });
    const controller = new AbortController();
    const first = new Trainer(b, trainCfg).fit(train, {
      validData: valid,
      evalEvery: 8,
      evalSamples: 32,
      dir,
      progressSeconds: 0.001,
      onProgress: (p) => p.step >= 6 && controller.abort(),
      signal: controller.signal,
    });
    await expect(first).rejects.toBeInstanceOf(AbortError);
    const stoppedAt = JSON.parse(fs.readFileSync(path.join(dir, 'trainer.json'), 'utf8')).step;
    expect(stoppedAt).toBeGreaterThanOrEqual(6);
    expect(stoppedAt).toBeLessThan(16);
    b.dispose();
    const c = await Transformer.create(small, { seed: 99 }); // different init: the checkpoint must overwrite it
    const rest = await new Trainer(c, trainCfg).fit(train, { validData: valid, evalEvery: 8, evalSamples: 32, dir });
    expect(rest.resumedFrom).toBe(stoppedAt);
    const losses = (h: typeof full.history) => h.filter((r) => r.type === 'train' && r.step > stoppedAt).map((r) => r.loss);
    const expected = losses(full.history);
    const got = losses(rest.history);
    expect(got).toHaveLength(16 - stoppedAt);
    got.forEach((l, i) => expect(Math.abs(l - expected[i])).toBeLessThan(1e-5));
    expect(Math.abs(rest.lastEval!.loss - full.lastEval!.loss)).toBeLessThan(1e-5);
    // metrics.jsonl holds each step once, across the interruption.
    const steps = fs
      .readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((r) => r.type === 'train')
      .map((r) => r.step);
    expect(steps).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
  });
});
