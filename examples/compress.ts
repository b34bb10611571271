// The paper's compression analysis at small scale: pretrain two sizes on english-prose for the same
// wall-clock budget, fine-tune each on sentiment, then prune and quantize each and compare accuracy
// drop, file bytes and relative weight error per size.
//   node dist/examples/compress.js [--seconds 120] [--finetune-steps 300] [--dir runs/compress]
import * as fs from 'fs';
import * as path from 'path';
import { compressionStudy, CompressionRow, Corpus, Dataset, measureStepSeconds, Trainer, Transformer } from '../lib';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const SIZES = [
  { name: 'small', dModel: 128, layers: 2, heads: 2 },
  { name: 'medium', dModel: 256, layers: 4, heads: 4 },
];

async function main(): Promise<void> {
  const seconds = Number(arg('seconds', '120'));
  const finetuneSteps = Number(arg('finetune-steps', '300'));
  const dir = path.resolve(arg('dir', 'runs/compress'));
  const maxLen = 128;
  const corpus = await Corpus.prepare({ source: 'english-prose', dir: path.resolve(arg('data', 'data/english-prose')) });
  const tok = corpus.tokenizer;
  const train = corpus.train({ maxLen });
  const task = await Dataset.classification({ source: 'sentiment', tokenizer: tok, maxLen: 64 });
  const models: { name: string; model: Transformer }[] = [];
  for (const s of SIZES) {
    const config = { vocabSize: tok.vocabSize, maxLen, dModel: s.dModel, layers: s.layers, heads: s.heads };
    const base = { lr: 1e-3, batchSize: 16 };
    const steps = Math.max(10, Math.floor(seconds / (await measureStepSeconds(config, base, train))));
    const mlm = await Transformer.create(config, { seed: 1 });
    const pre = new Trainer(mlm, { ...base, maxSteps: steps, warmupSteps: Math.round(steps * 0.06) });
    await pre.fit(train, { evalEvery: steps + 1 });
    pre.dispose();
    const runDir = path.join(dir, s.name, 'mlm');
    await mlm.save(runDir);
    mlm.dispose();
    const clf = await Transformer.fromPretrained(runDir, { task: 'classify', numLabels: 2 });
    const ft = new Trainer(clf, { lr: 5e-4, batchSize: 32, maxSteps: finetuneSteps, warmupSteps: Math.round(finetuneSteps * 0.06) });
    const r = await ft.fit(task.train, { validData: task.valid, evalEvery: finetuneSteps });
    ft.dispose();
    console.log(
      `${s.name}: ${(clf.parameterCount / 1e6).toFixed(2)} M parameters, pretrained ${steps} steps (~${seconds} s), ` +
        `fine-tuned ${finetuneSteps} steps: valid accuracy ${r.lastEval?.accuracy?.toFixed(3)}`,
    );
    models.push({ name: s.name, model: clf });
  }
  const rows = await compressionStudy({
    models,
    data: task.test,
    onRow: (r) =>
      console.log(
        `${r.model.padEnd(7)} ${r.method.padEnd(8)} ${String(r.setting).padStart(4)}  ${(r.bytes / 1e6).toFixed(2).padStart(6)} MB  ` +
          `accuracy ${r.accuracy.toFixed(3)} (drop ${r.accuracyDrop >= 0 ? '+' : ''}${r.accuracyDrop.toFixed(3)})  weight error ${r.meanWeightError.toFixed(4)}`,
      ),
  });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'compression.json'), JSON.stringify(rows, null, 2) + '\n');
  // A classifier at the majority-class rate has nothing to lose: comparing its drop would say nothing.
  const majority = Math.max(...task.counts.test) / task.counts.test.reduce((a, b) => a + b, 0);
  for (const m of models) {
    const r = rows.find((x) => x.model === m.name && x.method === 'none')!;
    if (r.accuracy <= majority + 0.02) {
      console.log(
        `\nwarning: ${m.name} scores ${r.accuracy.toFixed(3)}, the majority-class rate is ${majority.toFixed(3)}: it did not learn ` +
          'the task, so its accuracy drops below are not evidence either way (train longer or tune lr)',
      );
    }
  }
  // The paper's claim, checked on these numbers: at each setting, does the larger model lose less?
  const at = (m: string, method: string, setting: number): CompressionRow | undefined =>
    rows.find((r) => r.model === m && r.method === method && r.setting === setting);
  console.log('\nlarger model more robust? (medium vs small, same setting)');
  for (const r of rows.filter((x) => x.model === 'small' && x.method !== 'none')) {
    const big = at('medium', r.method, r.setting)!;
    console.log(
      `  ${r.method} ${r.setting}: weight error ${big.meanWeightError.toFixed(4)} vs ${r.meanWeightError.toFixed(4)} ` +
        `(${big.meanWeightError < r.meanWeightError ? 'smaller' : 'not smaller'}); accuracy drop ${big.accuracyDrop.toFixed(3)} vs ` +
        `${r.accuracyDrop.toFixed(3)} (${big.accuracyDrop < r.accuracyDrop ? 'smaller' : 'not smaller'})`,
    );
  }
  console.log(`\nwrote ${path.join(dir, 'compression.json')}`);
  models.forEach((m) => m.model.dispose());
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
