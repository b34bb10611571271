import { Trainer, Transformer } from '../lib';
import { LabelledDataset, loadSpeeches, Unigram, unigramEntropy } from '../lib';
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

    // The <mask> positions apart: about 80% of the targets, and the rest (10% random, 10% kept, which can be
    // copied from the input) make the whole loss lower than the <mask> loss of a trained model.
    const unigram = Unigram.fromTokens(trainDocs, tok.vocabSize);
    expect(unigram.entropy).toBeCloseTo(entropy, 12);
    const full = await model.evaluate(valid, { maxSamples: 128, unigram });
    expect(full.maskCount! / full.count).toBeGreaterThan(0.7);
    expect(full.maskCount! / full.count).toBeLessThan(0.9);
    expect(full.loss).toBeLessThan(full.maskLoss!);
    expect(full.unigramLoss).toBeGreaterThan(0);
    // Both numbers by hand on one batch: the model's logits at the <mask> positions, the unigram's log-probs.
    const seed = 1234;
    const b = valid.evalBatch(0, 8, seed);
    const one = await model.evaluate(valid, { maxSamples: 8, batchSize: 8, seed, unigram });
    const logits = await model.predict(Array.from({ length: b.dims[0] }, (_, i) => b.ids.subarray(i * b.dims[1], (i + 1) * b.dims[1])));
    const V = logits.dims[2];
    let ce = 0;
    let uni = 0;
    let n = 0;
    b.positions!.forEach((p, k) => {
      if (b.ids[p] !== tok.special.mask) return;
      const row = logits.data.subarray(p * V, (p + 1) * V);
      const max = row.reduce((m, x) => Math.max(m, x), -Infinity);
      const lse = max + Math.log(row.reduce((acc, x) => acc + Math.exp(x - max), 0));
      ce += lse - row[b.targets[k]];
      uni -= unigram.logProbs[b.targets[k]];
      n++;
    });
    expect(one.maskCount).toBe(n);
    expect(one.maskLoss).toBeCloseTo(ce / n, 4);
    expect(one.maskUnigramLoss).toBeCloseTo(uni / n, 10);
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
