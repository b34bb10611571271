// A project that depends on trainlarge (installed from the packed tarball by .ci/packed-install): create a
// model, train a few steps on real English (trainlarge's README, as bytes), save, load, predict.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { ByteTokenizer, engineInfo, MlmDataset, Trainer, Transformer } = require('trainlarge');

async function main() {
  const info = engineInfo();
  const tok = new ByteTokenizer();
  const text = fs.readFileSync(require.resolve('trainlarge/README.md'), 'utf8');
  const data = MlmDataset.fromDocuments([tok.encode(text)], tok, { maxLen: 64 });
  const model = await Transformer.create(
    { task: 'mlm', vocabSize: tok.vocabSize, maxLen: 64, dModel: 64, layers: 2, heads: 4 },
    { seed: 1 },
  );
  const r = await new Trainer(model, { maxSteps: 20, batchSize: 8, lr: 2e-3, warmupSteps: 2, precision: 'fp32' }).fit(data, {
    evalEvery: 100,
  });
  const losses = r.history.filter((h) => h.type === 'train').map((h) => h.loss);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainlarge-consumer-'));
  await model.save(dir);
  const again = await Transformer.load(dir);
  const ids = [[tok.special.cls, ...tok.encode('The Congress shall have power')]];
  const [a, b] = [await model.predict(ids), await again.predict(ids)];
  const same = a.data.every((x, i) => x === b.data[i]);
  const first = losses.slice(0, 3).reduce((s, x) => s + x, 0) / 3,
    last = losses.slice(-3).reduce((s, x) => s + x, 0) / 3;
  console.log(
    `consumer: libtorch ${info.torchVersion}; trained ${losses.length} steps, loss ${first.toFixed(3)} -> ${last.toFixed(3)}; ` +
      `saved, loaded, predicted ${a.dims.join(' x ')}; loaded model ${same ? 'equal' : 'DIFFERENT'}`,
  );
  if (losses.length !== 20 || !(last < first) || !same) process.exit(1);
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
