// Quickstart: train a small masked-LM Transformer on 225 years of State of the Union addresses for
// about two minutes, watch validation loss and perplexity fall, then let it fill in masked text.
//   npm run quickstart                 (about 2 minutes)
//   npm run quickstart -- --seconds 20 (a short run)
import * as fs from 'fs';
import * as path from 'path';
import {
  ByteTokenizer, loadSpeeches, MlmDataset, splitSpeeches, Trainer, Transformer, engineInfo, unigramEntropy,
} from '../lib';
import { measureStepSeconds } from '../lib/budget';
import { progressReporter } from '../lib/progress';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const seconds = Number(arg('seconds', '120'));
  const dir = path.resolve(arg('dir', 'runs/quickstart'));
  const info = engineInfo();
  console.log(`trainlarge quickstart: libtorch ${info.torchVersion}, CUDA ${info.cudaAvailable ? 'yes' : 'no'}, ` +
    `${info.hardwareThreads} hardware threads; budget ${seconds} s; run directory ${dir}`);

  const tok = new ByteTokenizer();
  const { train, valid } = splitSpeeches(loadSpeeches());
  const trainDocs = train.map((s) => tok.encode(s.text));
  const validDocs = valid.map((s) => tok.encode(s.text));
  const maxLen = 128;
  const trainData = MlmDataset.fromDocuments(trainDocs, tok, { maxLen });
  const validData = MlmDataset.fromDocuments(validDocs, tok, { maxLen });
  const entropy = unigramEntropy(trainDocs, tok.vocabSize);
  console.log(`data: ${train.length} speeches for training (${(trainData.tokenCount / 1e6).toFixed(1)} M byte tokens), ` +
    `${valid.length} held out whole for validation; unigram entropy ${entropy.toFixed(3)} nats/token`);

  const modelConfig = { vocabSize: tok.vocabSize, maxLen, dModel: 256, layers: 4, heads: 4, dropout: 0.1 };
  const trainBase = { lr: 1e-3, batchSize: 16, clipNorm: 1.0 };
  const stepSeconds = await measureStepSeconds(modelConfig, trainBase, trainData);
  const maxSteps = Math.max(10, Math.floor(seconds / stepSeconds));
  console.log(`a step takes ${stepSeconds.toFixed(3)} s: training ${maxSteps} steps`);

  fs.rmSync(dir, { recursive: true, force: true });
  const model = await Transformer.create(modelConfig, { seed: 1 });
  console.log(`model: ${(model.parameterCount / 1e6).toFixed(2)} M parameters, ${model.device}`);
  const trainer = new Trainer(model, { ...trainBase, maxSteps, warmupSteps: Math.round(maxSteps * 0.06) });
  const progress = progressReporter('quickstart');
  const evalEvery = Math.max(1, Math.round(maxSteps / 8));
  const result = await trainer.fit(trainData, {
    validData, evalEvery, evalSamples: 256, dir, onProgress: progress.onProgress,
  }).finally(progress.stop);

  console.log('\nstep   valid loss   perplexity   bits/byte   train seconds');
  for (const r of result.history) {
    if (r.type !== 'eval') continue;
    console.log(`${String(r.step).padStart(4)}   ${r.loss.toFixed(4).padStart(10)}   ${r.perplexity.toFixed(3).padStart(10)}   ` +
      `${(r.loss / Math.LN2).toFixed(3).padStart(9)}   ${r.trainSeconds.toFixed(1).padStart(13)}`);
  }
  const final = result.lastEval!;
  console.log(`\nfinal validation loss ${final.loss.toFixed(3)} nats (perplexity ${final.perplexity.toFixed(2)}) vs ` +
    `unigram entropy ${entropy.toFixed(3)}: ${final.loss < entropy ? 'the model uses context' : 'not yet below the unigram baseline'}`);

  // Fill-mask: hide a few characters of a sentence and let the model guess them.
  const sentence = 'The Congress of the United States shall have power to lay and collect taxes.';
  const ids = [tok.special.cls, ...tok.encode(sentence)];
  const hidden = [5, 6, 7, 20, 21, 22]; // "Con" and "Uni" (offset by cls)
  for (const i of hidden) ids[i] = tok.special.mask;
  const logits = await model.predict([ids]);
  const V = logits.dims[2];
  const filled = ids.slice();
  for (const i of hidden) {
    const row = logits.data.subarray(i * V, (i + 1) * V);
    let best = ByteTokenizer.OFFSET;
    for (let v = ByteTokenizer.OFFSET; v < V; v++) if (row[v] > row[best]) best = v;
    filled[i] = best;
  }
  console.log(`fill-mask: "${tok.decode(ids.map((t) => (t === tok.special.mask ? tok.encode('_')[0] : t)))}"`);
  console.log(`       ->  "${tok.decode(filled)}"`);
  console.log(`saved: ${dir} (model.safetensors, config.json, trainer_state.safetensors, metrics.jsonl)`);
  trainer.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
