// A data-parallel training process for test/dist.test.ts: a small MLM (no dropout) on State of the Union
// speeches (opts.task 'classify': a classifier; 'translate': a translator that reverses strings) with distributed: 'auto', so under `trainlarge launch` it joins the process group and alone it
// trains as one process. Rank 0 saves the model to opts.save; every rank prints one JSON line at the end, or
// "error: ..." and exits 3. opts.die = { rank, afterMs, signal } makes that rank kill itself mid-run
// (SIGKILL: it dies; SIGSTOP: it hangs). SIGINT stops it after a step all ranks agree on ("aborted at step N
// on rank R", exit 130); opts.announce prints "training" at each progress report (rank 0).
//   node test/peer/dist_child.js '{"batchSize": 4, "maxSteps": 6, "save": "/tmp/x"}'
'use strict';
const {
  ByteTokenizer,
  LabelledDataset,
  loadSpeeches,
  MlmDataset,
  ParallelDataset,
  splitSpeeches,
  Trainer,
  Transformer,
} = require('../../dist/lib');

/** Classification: is a 64-byte passage from a speech before 1900 (as test/training.test.ts)? */
function passages(tok) {
  const seqs = [];
  const labels = [];
  for (const s of loadSpeeches().slice(0, 40)) {
    const bytes = tok.encode(s.text);
    for (let k = 0; k < 8 && (k + 1) * 63 < bytes.length; k++) {
      const start = (k * 997) % Math.max(1, bytes.length - 63);
      seqs.push(Int32Array.from([tok.special.cls, ...bytes.subarray(start, start + 23 + (k % 4) * 10)]));
      labels.push(s.year < 1900 ? 1 : 0);
    }
  }
  return LabelledDataset.fromSequences(seqs, labels, { maxLen: 64, padId: 0 });
}

/**
 * Translation: reverse a 10-40 character slice of a speech (pairs of many lengths, so batches by token count
 * vary), as texts (BLEU needs them); ASCII only, so a byte is a character.
 */
function reversals(tok) {
  const source = [];
  const target = [];
  for (const s of loadSpeeches().slice(0, 20)) {
    const text = s.text.replace(/[^\x20-\x7e]/g, ' ');
    for (let k = 0; k < 12; k++) {
      const len = 10 + ((k * 7) % 31);
      const start = (k * 1009) % Math.max(1, text.length - len);
      const piece = text.slice(start, start + len);
      source.push(piece);
      target.push([...piece].reverse().join(''));
    }
  }
  return ParallelDataset.fromTexts(source, target, tok, { maxLen: 64 });
}

async function main() {
  const opts = JSON.parse(process.argv[2]);
  const tok = new ByteTokenizer();
  const classify = opts.task === 'classify';
  const translate = opts.task === 'translate';
  const data = classify
    ? passages(tok)
    : translate
      ? await reversals(tok)
      : MlmDataset.fromDocuments(
          splitSpeeches(loadSpeeches().slice(0, 20)).train.map((s) => tok.encode(s.text)),
          tok,
          { maxLen: 64 },
        );
  const model = await Transformer.create(
    {
      vocabSize: tok.vocabSize,
      maxLen: 64,
      dModel: 64,
      heads: 4,
      dropout: 0,
      attentionDropout: 0,
      ...(translate ? { task: 'translate', encoderLayers: 1, decoderLayers: 1 } : { layers: 2 }),
      ...(classify ? { task: 'classify', numLabels: 2 } : {}),
    },
    { seed: 5 },
  );
  let trainer;
  try {
    trainer = new Trainer(model, {
      maxSteps: opts.maxSteps,
      warmupSteps: 2,
      lr: 1e-3,
      ...(translate ? { batchTokens: opts.batchTokens, labelSmoothing: 0.1 } : { batchSize: opts.batchSize }),
      accumSteps: opts.accumSteps ?? 1,
      precision: 'fp32',
      seed: 7,
      distributed: opts.distributed ?? 'auto',
    });
    const die = opts.die;
    if (die && trainer.rank === die.rank) setTimeout(() => process.kill(process.pid, die.signal ?? 'SIGKILL'), die.afterMs);
    // Ctrl-C (the launcher forwards it): stop after an agreed step, rank 0 checkpoints.
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    let r;
    try {
      r = await trainer.fit(data, {
        dir: opts.dir,
        // opts.evalSamples: validation (on the training data, a fixed masking seed) after the last step.
        ...(opts.evalSamples ? { validData: data, evalSamples: opts.evalSamples, evalEvery: opts.maxSteps } : { evalEvery: 1000 }),
        // opts.bleuSamples: BLEU and chrF of that many translations at each evaluation (translate).
        ...(opts.bleuSamples ? { evalBleu: { samples: opts.bleuSamples } } : {}),
        checkpointEvery: opts.checkpointEvery ?? 1000,
        signal: controller.signal,
        onProgress: () => opts.announce && console.log('training'),
      });
    } catch (e) {
      if (e.name !== 'AbortError') throw e;
      console.log(`aborted at step ${e.step} on rank ${trainer.rank}`);
      process.exit(130);
    }
    if (opts.save && trainer.rank === 0) await model.save(opts.save);
    const loss = r.history.filter((h) => h.type === 'train').map((h) => h.loss);
    const evals = r.history.filter((h) => h.type === 'eval');
    const valid = evals.length ? evals[evals.length - 1] : undefined;
    console.log(
      JSON.stringify({ rank: trainer.rank, worldSize: trainer.worldSize, steps: r.steps, resumedFrom: r.resumedFrom, loss, valid }),
    );
  } catch (e) {
    console.log(`error: ${e.message}`);
    process.exit(3);
  }
}

main().catch((e) => {
  console.log(`error: ${e.message}`);
  process.exit(3);
});
