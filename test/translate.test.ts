// Translation end to end on real data: the Bible, English -> Spanish (KJV / Reina-Valera 1909), small
// subsets so each test runs in well under two minutes on two cores.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PEER_PYTHON } from '../bench/report';
import { AbortError, ConfigError, corpusBleu, Dataset, ParallelTask, Trainer, Transformer } from '../lib';
import { bibleTask } from './helpers';

jest.setTimeout(180_000);

const MODEL = { task: 'translate', encoderLayers: 2, decoderLayers: 2, dModel: 64, heads: 4, ffn: 256, maxLen: 64 } as const;

function tmp(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `trainlarge-${name}-`));
}

/** sacreBLEU 2.6.0's corpus BLEU with default settings (test/peer/sacrebleu_peer.py). */
function sacrebleu(hyps: string[], refs: string[]): { score: number; signature: string } {
  const out = execFileSync(PEER_PYTHON, [path.join(__dirname, 'peer', 'sacrebleu_peer.py')], {
    input: JSON.stringify({ cases: [{ kind: 'corpus_bleu', hyps, refs: [refs], options: {} }] }),
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  return (JSON.parse(out) as { results: Array<{ score: number; signature: string }> }).results[0];
}

let data: ParallelTask;
beforeAll(async () => {
  data = await bibleTask();
});
afterAll(() => data?.dispose());

describe('parallel data', () => {
  test('shared_tokenizer_and_splits_come_from_the_corpus', () => {
    expect(data.tokenizer.vocabSize).toBe(1000);
    expect(data.train.size).toBe(3000);
    expect(data.valid!.size).toBeGreaterThan(100);
    expect(data.test!.size).toBeGreaterThan(100);
    expect(data.train.source[0]).toBe(data.pairs.train.source[0]);
    // One vocabulary for both sides: Spanish words encode without unknown pieces.
    expect(Array.from(data.tokenizer.encode(data.pairs.train.target[0]))).not.toContain(data.tokenizer.special.unk);
  });

  test('token_count_batches_respect_batchTokens_and_bucket_lengths', () => {
    const plan = data.train.batchPlan(1024, 1);
    expect(plan.pairs).toBe(3000);
    expect(plan.maxBatchTokens).toBeLessThanOrEqual(1024);
    // The same pairs in batches of the same mean size, in corpus order (no bucketing): the padding share to beat.
    const perBatch = Math.round(plan.pairs / plan.batches);
    let real = 0;
    let cells = 0;
    for (let first = 0; first + perBatch <= data.train.size; first += perBatch) {
      const b = data.train.evalBatch(first, perBatch);
      const [B, S] = b.dims;
      real += (b.mask ? b.mask.reduce((n, x) => n + x, 0) : B * S) + b.targets.filter((x) => x !== data.tokenizer.special.pad).length;
      cells += B * S + b.targets.length;
    }
    const naive = 1 - real / cells;
    console.log(
      `batchTokens 1024: ${plan.batches} batches of ~${perBatch} pairs, padding share ${(100 * plan.paddingShare).toFixed(1)}% ` +
        `(unbucketed batches of the same size: ${(100 * naive).toFixed(1)}%)`,
    );
    // Measured: 4.6% against 31.5%.
    expect(plan.paddingShare).toBeLessThan(0.1);
    expect(plan.paddingShare).toBeLessThan(naive / 3);
    // Every batch of one epoch: within budget, each pair once; the order is a pure function of (seed, index).
    let pairs = 0;
    for (let i = 0; i < plan.batches; i++) {
      const b = data.train.trainBatch(i, 1024, 1);
      const [B, S] = b.dims;
      const T = b.targets.length / B;
      expect(B * Math.max(S, T)).toBeLessThanOrEqual(1024);
      pairs += B;
    }
    expect(pairs).toBe(3000);
    const again = data.train.trainBatch(7, 1024, 1);
    expect(again).toEqual(data.train.trainBatch(7, 1024, 1));
    expect(data.train.trainBatch(7, 1024, 2).ids).not.toEqual(again.ids);
    // The next epoch visits the same batches in another order.
    expect(data.train.trainBatch(plan.batches + 7, 1024, 1).ids).not.toEqual(again.ids);
    expect(() => data.train.batchPlan(32, 1)).toThrow(/batchTokens: must be >= maxLen \(64\)/);
  });

  test('your_tsv_files_make_a_task_without_valid_and_test', async () => {
    const dir = tmp('mt-files');
    const file = path.join(dir, 'pairs.tsv');
    const n = 300;
    fs.writeFileSync(
      file,
      data.pairs.train.source
        .slice(0, n)
        .map((s, i) => `${s}\t${data.pairs.train.target[i]}\n`)
        .join(''),
    );
    const own = await Dataset.parallel({ source: { name: 'mine', train: { files: [file], format: 'tsv' } }, vocabSize: 500, maxLen: 32 });
    expect(own.train.size).toBe(n);
    expect(own.valid).toBeUndefined();
    expect(own.test).toBeUndefined();
    expect(own.tokenizer.vocabSize).toBe(500);
    // maxLen 32: every batch's longest side is at most 32 tokens (truncated, eos kept).
    const b = own.train.trainBatch(0, 256, 1);
    expect(b.dims[1]).toBeLessThanOrEqual(32);
    expect(b.targets.length / b.dims[0]).toBeLessThanOrEqual(32);
    own.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('translation model', () => {
  test('training_lowers_validation_loss_then_translate_and_bleu_agree', async () => {
    const mt = await Transformer.create({ ...MODEL, vocabSize: data.tokenizer.vocabSize }, { seed: 1 });
    const valid = data.valid!;
    const before = await mt.evaluate(valid, { metric: 'loss', maxSamples: 200 });
    const warmup = 40;
    const trainer = new Trainer(mt, {
      lr: 3e-3,
      schedule: 'inverse-sqrt',
      warmupSteps: warmup,
      labelSmoothing: 0.1,
      batchTokens: 1024,
      maxSteps: 400,
    });
    const start = Date.now();
    const r = await trainer.fit(data.train, { validData: valid, evalEvery: 200, evalSamples: 200 });
    const seconds = (Date.now() - start) / 1000;
    const evals = r.history.filter((h) => h.type === 'eval').map((h) => h.loss);
    console.log(
      `valid loss ${before.loss.toFixed(3)} -> ${evals.map((l) => l.toFixed(3)).join(' -> ')} in ${r.steps} steps (${seconds.toFixed(1)} s)`,
    );
    expect(evals).toHaveLength(2);
    expect(evals[1]).toBeLessThan(evals[0]);
    expect(evals[1]).toBeLessThan(before.loss - 1.5);
    // fairseq's inverse-sqrt: linear warmup to lr, then lr * sqrt(warmup / step).
    for (const h of r.history) {
      if (h.type !== 'train') continue;
      const expected = 3e-3 * (h.step <= warmup ? h.step / warmup : Math.sqrt(warmup / h.step));
      expect(h.lr).toBeCloseTo(expected, 10);
    }

    const [genesis] = await mt.translate(['In the beginning God created the heaven and the earth.'], { beam: 5 });
    console.log(`translate: ${genesis}`);
    expect(genesis.trim().length).toBeGreaterThan(0);
    const scored = await mt.translate(['And God said, Let there be light: and there was light.'], { beam: 4, nbest: 3, scores: true });
    expect(scored[0].nbest).toHaveLength(3);
    expect(scored[0].text).toBe(scored[0].nbest[0].text);
    expect(scored[0].nbest[0].score).toBeGreaterThanOrEqual(scored[0].nbest[2].score);

    // evaluate's BLEU is corpusBleu of translate()'s outputs against the references.
    const n = 40;
    const test = data.test!;
    const e = await mt.evaluate(test, { metric: 'bleu', beam: 4, maxSamples: n });
    const hyps = await mt.translate(test.source.slice(0, n), { beam: 4 });
    const direct = corpusBleu(hyps, test.target.slice(0, n));
    console.log(
      `test BLEU ${e.bleu.toFixed(2)} chrF ${e.chrf.toFixed(2)} (${e.signature}) in ${e.seconds.toFixed(1)} s; e.g. "${hyps[0]}"`,
    );
    expect(e.hypotheses).toEqual(hyps);
    expect(e.bleu).toBe(direct.score);
    expect(e.signature).toBe(direct.signature);
    expect(e.signature).toBe('nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0');
    // ...and sacreBLEU itself scores this trained model's output the same.
    const peer = sacrebleu(hyps, test.target.slice(0, n));
    console.log(`sacreBLEU ${peer.score} vs ${e.bleu}`);
    expect(Math.abs(peer.score - e.bleu)).toBeLessThan(1e-9);
    expect(peer.signature).toBe(e.signature);
    expect(hyps.every((h) => h.trim().length > 0)).toBe(true);

    // Saved with its tokenizer (fit set it), loaded back: the same translations.
    const dir = tmp('mt-save');
    await mt.save(dir, { tokenizer: mt.tokenizer });
    const back = await Transformer.load(dir);
    expect(back.config).toEqual(mt.config);
    expect(await back.translate(test.source.slice(0, 8), { beam: 4 })).toEqual(hyps.slice(0, 8));
    back.dispose();
    mt.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('resume_from_a_checkpoint_gives_the_same_weights', async () => {
    const config = { lr: 2e-3, schedule: 'inverse-sqrt', warmupSteps: 5, labelSmoothing: 0.1, batchTokens: 512, maxSteps: 20 } as const;
    const names = ['tokens.weight', 'layers.1.ffn.fc2.weight', 'decoder.layers.0.cross_attn.kv.weight', 'decoder.layers.1.norm3.weight'];
    const whole = await Transformer.create({ ...MODEL, vocabSize: data.tokenizer.vocabSize, dropout: 0.1 }, { seed: 5 });
    await new Trainer(whole, config).fit(data.train, { dir: tmp('mt-whole'), evalEvery: 5 });

    const dir = tmp('mt-resume');
    const first = await Transformer.create({ ...MODEL, vocabSize: data.tokenizer.vocabSize, dropout: 0.1 }, { seed: 5 });
    const controller = new AbortController();
    await expect(
      new Trainer(first, config).fit(data.train, {
        dir,
        evalEvery: 5,
        signal: controller.signal,
        onProgress: (p) => p.step >= 10 && controller.abort(),
      }),
    ).rejects.toBeInstanceOf(AbortError);
    first.dispose();
    // A new process's view: a fresh model and trainer resume from the directory.
    const resumed = await Transformer.create({ ...MODEL, vocabSize: data.tokenizer.vocabSize, dropout: 0.1 }, { seed: 99 });
    const r = await new Trainer(resumed, config).fit(data.train, { dir, evalEvery: 5 });
    expect(r.resumedFrom).toBe(10);
    expect(r.steps).toBe(20);
    for (const name of names) {
      const a = await whole.weight(name);
      const b = await resumed.weight(name);
      expect(Array.from(b.data)).toEqual(Array.from(a.data));
    }
    whole.dispose();
    resumed.dispose();
  });

  test('bf16_training_of_a_translator_lowers_its_loss', async () => {
    const mt = await Transformer.create({ ...MODEL, vocabSize: data.tokenizer.vocabSize }, { seed: 3 });
    const before = await mt.evaluate(data.valid!, { metric: 'loss', maxSamples: 100 });
    const trainer = new Trainer(mt, {
      lr: 3e-3,
      schedule: 'inverse-sqrt',
      warmupSteps: 10,
      batchTokens: 512,
      maxSteps: 30,
      precision: 'bf16',
    });
    const r = await trainer.fit(data.train, { evalEvery: 1000 });
    const after = await mt.evaluate(data.valid!, { metric: 'loss', maxSamples: 100 });
    const losses = r.history.filter((h) => h.type === 'train').map((h) => h.loss);
    console.log(`bf16: valid loss ${before.loss.toFixed(3)} -> ${after.loss.toFixed(3)} in ${r.steps} steps`);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(after.loss).toBeLessThan(before.loss - 0.5);
    trainer.dispose();
    mt.dispose();
  });

  test('a_seconds_budget_needs_no_maxSteps_with_inverse_sqrt', async () => {
    const mt = await Transformer.create({ ...MODEL, vocabSize: data.tokenizer.vocabSize }, { seed: 2 });
    const trainer = new Trainer(mt, { lr: 2e-3, schedule: 'inverse-sqrt', warmupSteps: 10, batchTokens: 1024, maxSeconds: 3 });
    const r = await trainer.fit(data.train, { validData: data.valid, evalEverySeconds: 1, evalSamples: 50 });
    const evals = r.history.filter((h) => h.type === 'eval');
    console.log(`maxSeconds 3: ${r.steps} steps, ${evals.length} evaluations, stopped by ${r.stoppedBy}`);
    expect(r.stoppedBy).toBe('seconds');
    expect(r.trainSeconds).toBeGreaterThanOrEqual(3);
    expect(evals.length).toBeGreaterThanOrEqual(3);
    mt.dispose();
  });

  test('bad_configs_give_clear_errors', async () => {
    const v = { vocabSize: 100 };
    await expect(Transformer.create({ ...v, task: 'translate', encoderLayers: 2 })).rejects.toThrow(
      /decoderLayers: is required when task is 'translate'/,
    );
    await expect(Transformer.create({ ...v, task: 'mlm', decoderLayers: 2 })).rejects.toThrow(
      /decoderLayers: only applies when task is 'translate'/,
    );
    await expect(Transformer.create({ ...v, task: 'translate', layers: 3, encoderLayers: 2, decoderLayers: 2 })).rejects.toThrow(
      /layers: does not apply when task is 'translate'/,
    );
    await expect(
      // @ts-expect-error: not one of the allowed values
      Transformer.create({ ...v, task: 'translate', encoderLayers: 2, decoderLayers: 2, tieEmbeddings: 'encoder' }),
    ).rejects.toThrow(/tieEmbeddings: .*"all".*"decoder".*"none"/);
    // @ts-expect-error: not a task
    await expect(Transformer.create({ ...v, task: 'summarize' })).rejects.toThrow(/task: .*"translate"/);

    const mt = await Transformer.create({ ...MODEL, vocabSize: data.tokenizer.vocabSize });
    expect(() => new Trainer(mt, { maxSteps: 10, labelSmoothing: 1 })).toThrow(ConfigError);
    expect(() => new Trainer(mt, { maxSteps: 10, labelSmoothing: 1 })).toThrow(/labelSmoothing: /);
    expect(() => new Trainer(mt, { maxSteps: 10, labelSmoothing: -0.1 })).toThrow(/labelSmoothing: /);
    expect(() => new Trainer(mt, { schedule: 'inverse-sqrt' })).toThrow(/maxSteps: give maxSteps or maxSeconds/);
    expect(() => new Trainer(mt, { schedule: 'linear', maxSeconds: 10 })).toThrow(/maxSteps: is required with schedule 'linear'/);
    // @ts-expect-error: not a schedule
    expect(() => new Trainer(mt, { maxSteps: 10, schedule: 'rsqrt' })).toThrow(/schedule: .*"inverse-sqrt"/);
    expect(() => new Trainer(mt, { maxSteps: 10, batchTokens: 32 })).toThrow(/batchTokens: must be >= the model's maxLen \(64\)/);
    await expect(mt.translate(['In the beginning'], { beam: 0, tokenizer: data.tokenizer })).rejects.toThrow(/beam: /);
    await expect(mt.translate(['In the beginning'], { beam: 2, nbest: 3, scores: true, tokenizer: data.tokenizer })).rejects.toThrow(
      /nbest: must be <= beam \(2\)/,
    );
    await expect(mt.translate(['In the beginning'])).rejects.toThrow(/translate: the model has no tokenizer/);
    await expect(mt.evaluate(data.test!, { metric: 'bleu', beam: 0 })).rejects.toThrow(/beam: /);

    const mlm = await Transformer.create({ vocabSize: 100, dModel: 32, layers: 1, heads: 2 });
    expect(() => new Trainer(mlm, { maxSteps: 10, labelSmoothing: 0.1 })).toThrow(/labelSmoothing: only applies to 'translate' models/);
    expect(() => new Trainer(mlm, { maxSteps: 10, batchTokens: 1024 })).toThrow(/batchTokens: only applies to 'translate' models/);
    await expect(mlm.translate(['x'])).rejects.toThrow(/translate: needs a 'translate' model, this one is 'mlm'/);
    await expect(new Trainer(mlm, { maxSteps: 1 }).fit(data.train)).rejects.toThrow(/a 'mlm' model cannot train on 'translate' data/);
    mlm.dispose();
    mt.dispose();
  });
});
