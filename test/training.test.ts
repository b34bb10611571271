import { Trainer, Transformer } from '../lib';
import { LabelledDataset, loadSpeeches, unigramEntropy } from '../lib';
import { small, speechData, tok } from './helpers';

describe('training on real English', () => {
  test('mlm_loss_falls_well_below_unigram_entropy', async () => {
    const { train, valid, trainDocs } = speechData(64);
    const entropy = unigramEntropy(trainDocs, tok.vocabSize);
    const model = await Transformer.create({ ...small, dModel: 128 }, { seed: 3 });
    const trainer = new Trainer(model, { maxSteps: 400, warmupSteps: 30, lr: 2e-3, batchSize: 16, precision: 'fp32' });
    const before = await model.evaluate(valid, { maxSamples: 128 });
    const r = await trainer.fit(train, { validData: valid, evalEvery: 200, evalSamples: 128 });
    const after = r.lastEval!;
    // A context-free model can do no better than the unigram entropy; a Transformer must beat it clearly.
    // Measured: 2.71 nats after 400 steps vs an entropy of 2.97 (byte tokens, 0.4 M parameters).
    expect(before.loss).toBeGreaterThan(entropy);
    expect(after.loss).toBeLessThan(entropy - 0.2);
    expect(after.perplexity).toBeCloseTo(Math.exp(after.loss), 6);
    const evals = r.history.filter((h) => h.type === 'eval').map((h) => h.loss);
    expect(evals).toHaveLength(2);
    expect(evals[1]).toBeLessThan(evals[0]);
    model.dispose();
  });

  test('classification_head_learns_a_real_label', async () => {
    // Label: does a 64-byte passage come from a speech before 1900? Real text, a real signal (style).
    const speeches = loadSpeeches().filter((_, i) => i % 3 === 0);
    const seqs: Int32Array[] = [];
    const labels: number[] = [];
    for (const s of speeches) {
      const bytes = tok.encode(s.text);
      for (let k = 0; k < 20 && (k + 1) * 63 < bytes.length; k++) {
        const start = (k * 997) % Math.max(1, bytes.length - 63);
        seqs.push(Int32Array.from([tok.special.cls, ...bytes.subarray(start, start + 63)]));
        labels.push(s.year < 1900 ? 1 : 0);
      }
    }
    const held = (i: number) => i % 5 === 0; // every fifth passage for testing
    const data = LabelledDataset.fromSequences(
      seqs.filter((_, i) => !held(i)),
      labels.filter((_, i) => !held(i)),
      { maxLen: 64, padId: 0 },
    );
    const test = LabelledDataset.fromSequences(
      seqs.filter((_, i) => held(i)),
      labels.filter((_, i) => held(i)),
      { maxLen: 64, padId: 0 },
    );
    const model = await Transformer.create({ ...small, task: 'classify', numLabels: 2 }, { seed: 5 });
    // 300 steps: with 150 (warmup 10), 3 of 6 model seeds had not left the constant guess yet (0.526 held-out
    // accuracy, the old and the fused-dropout engine alike); with 300 (warmup 30) seeds 1, 2, 4, 5 reached 0.66-0.73.
    const trainer = new Trainer(model, { maxSteps: 300, warmupSteps: 30, lr: 1e-3, batchSize: 32, precision: 'fp32' });
    await trainer.fit(data, { evalEvery: 1000 });
    const r = await model.evaluate(test);
    const majority = Math.max(...[0, 1].map((c) => labels.filter((l, i) => held(i) && l === c).length)) / test.size;
    expect(r.accuracy!).toBeGreaterThan(majority + 0.05);
    model.dispose();
  });
});
