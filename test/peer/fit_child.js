// A training process for the crash tests (test/crash.test.ts): trains a small MLM on State of the Union
// speeches into a run directory, printing "step N" as it goes and one JSON line at the end. A failed fit is
// caught and printed ("error: ..."), then the process shows it is still alive by predicting, and exits 3.
//   node test/peer/fit_child.js '{"dir": "...", "maxSteps": 20, "checkpointEvery": 2, "lr": 1e-3}'
'use strict';
const { ByteTokenizer, loadSpeeches, MlmDataset, splitSpeeches, Trainer, Transformer } = require('../../dist/lib');

async function main() {
  const opts = JSON.parse(process.argv[2]);
  const tok = new ByteTokenizer();
  const { train } = splitSpeeches(loadSpeeches().slice(0, 20));
  const data = MlmDataset.fromDocuments(
    train.map((s) => tok.encode(s.text)),
    tok,
    { maxLen: 64 },
  );
  const model = await Transformer.create({ vocabSize: tok.vocabSize, maxLen: 64, dModel: 64, layers: 2, heads: 4 }, { seed: 5 });
  const trainer = new Trainer(model, {
    maxSteps: opts.maxSteps,
    warmupSteps: 2,
    lr: opts.lr ?? 1e-3,
    batchSize: 8,
    precision: 'fp32',
    seed: 7,
  });
  try {
    const r = await trainer.fit(data, {
      dir: opts.dir,
      checkpointEvery: opts.checkpointEvery ?? 2,
      evalEvery: 1000,
      progressSeconds: 0.001,
      onProgress: (p) => console.log(`step ${p.step}`),
    });
    console.log(JSON.stringify({ resumedFrom: r.resumedFrom, resumeNote: r.resumeNote ?? null, steps: r.steps }));
  } catch (e) {
    console.log(`error: ${e.message}`);
    const logits = await model.predict([[1, 40, 50, 60]]);
    console.log(`alive: predicted ${logits.dims.join(' x ')}`);
    process.exit(3);
  }
}

main().catch((e) => {
  console.log(`fatal: ${e.stack}`);
  process.exit(1);
});
