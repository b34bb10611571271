// Hugging Face transformers' RoBERTa format both ways: checkpoints made by transformers (random weights,
// test/peer/hf_roberta.py: no network) load with Transformer.fromHF and give transformers' logits; models
// trained here export with save({ format: 'hf' }), load in transformers with the same logits and come
// back bit for bit; bad checkpoints are refused with the problem named.
import * as fs from 'fs';
import * as path from 'path';
import { createService, Dataset, englishProseDocuments, hfLabels, prune, quantize, Tokenizer, Trainer, Transformer } from '../lib';
import { PythonPeer, speechData, tempDir, tok } from './helpers';

let peer: PythonPeer;
beforeAll(() => (peer = new PythonPeer()));
afterAll(() => peer.close());
const py = (...args: string[]) => peer.run('hf_roberta.py', ...args);

async function make(dir: string, spec: Record<string, unknown>): Promise<void> {
  await py(
    'make',
    dir,
    JSON.stringify({ vocab: 300, hidden: 64, layers: 2, heads: 4, ffn: 128, max_positions: 66, pad: 1, seed: 1, ...spec }),
  );
}

/** Ragged sequences padded as trainlarge pads them (padId, attention mask), and transformers' logits for them. */
async function transformersLogits(
  dir: string,
  seqs: number[][],
  padId: number,
): Promise<{ logits: number[]; dims: number[]; ids: number[][]; mask: number[][] }> {
  const T = Math.max(...seqs.map((s) => s.length));
  const ids = seqs.map((s) => [...s, ...Array<number>(T - s.length).fill(padId)]);
  const mask = seqs.map((s) => [...s.map(() => 1), ...Array<number>(T - s.length).fill(0)]);
  const work = tempDir('hf-io');
  fs.writeFileSync(path.join(work, 'in.json'), JSON.stringify({ ids, mask }));
  await py('logits', dir, path.join(work, 'in.json'), path.join(work, 'out.json'));
  return { ...JSON.parse(fs.readFileSync(path.join(work, 'out.json'), 'utf8')), ids, mask };
}

/** Max |a - b| over the real (unpadded) positions; MLM logits are (B, T, V), classify (B, C). */
function maxDiff(a: Float32Array, b: number[], dims: number[], mask: number[][]): number {
  let worst = 0;
  if (dims.length === 2) {
    b.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - a[i]))));
    return worst;
  }
  const [B, T, V] = dims;
  for (let s = 0; s < B; s++)
    for (let t = 0; t < T; t++) {
      if (!mask[s][t]) continue;
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(b[(s * T + t) * V + v] - a[(s * T + t) * V + v]));
    }
  return worst;
}

const seqs = [
  [0, 17, 45, 200, 33, 9, 2],
  [0, 250, 3, 2],
  [0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 2],
];

describe('Hugging Face RoBERTa', () => {
  test('a transformers RobertaForMaskedLM loads with fromHF and gives its logits (with padding)', async () => {
    const dir = tempDir('hf-mlm');
    await make(dir, { task: 'mlm' });
    const model = await Transformer.fromHF(dir);
    expect(model.config).toMatchObject({
      task: 'mlm',
      vocabSize: 300,
      maxLen: 64,
      dModel: 64,
      layers: 2,
      heads: 4,
      ffn: 128,
      padId: 1,
      norm: 'post',
    });
    const ref = await transformersLogits(dir, seqs, 1);
    const ours = await model.predict(seqs);
    expect(ours.dims).toEqual(ref.dims);
    expect(maxDiff(ours.data, ref.logits, ref.dims, ref.mask)).toBeLessThan(1e-4);
  });

  test('a RobertaForSequenceClassification loads with its labels; an MLM body takes a new classification head', async () => {
    const dir = tempDir('hf-clf');
    await make(dir, { task: 'classify', labels: ['neg', 'neutral', 'pos'], seed: 2 });
    const model = await Transformer.fromHF(dir);
    expect(model.config).toMatchObject({ task: 'classify', numLabels: 3 });
    expect(await hfLabels(dir)).toEqual(['neg', 'neutral', 'pos']);
    const ref = await transformersLogits(dir, seqs, 1);
    const ours = await model.predict(seqs);
    expect(ours.dims).toEqual([3, 3]);
    expect(maxDiff(ours.data, ref.logits, ref.dims, ref.mask)).toBeLessThan(1e-4);

    const mlmDir = tempDir('hf-body');
    await make(mlmDir, { task: 'mlm', seed: 3 });
    const clf = await Transformer.fromHF(mlmDir, { task: 'classify', numLabels: 2, seed: 4 });
    expect(clf.config).toMatchObject({ task: 'classify', numLabels: 2 });
    const body = await Transformer.fromHF(mlmDir);
    expect(Array.from((await clf.weight('layers.1.ffn.fc2.weight')).data)).toEqual(
      Array.from((await body.weight('layers.1.ffn.fc2.weight')).data),
    );
  });

  test('a model trained here exports to transformers with the same logits and comes back bit for bit (mlm and classify)', async () => {
    const { train } = speechData(32, 20);
    const model = await Transformer.create({ vocabSize: tok.vocabSize, maxLen: 32, dModel: 64, layers: 2, heads: 4 }, { seed: 3 });
    await new Trainer(model, { maxSteps: 10, warmupSteps: 2, lr: 2e-3, batchSize: 8, precision: 'fp32', seed: 1 }).fit(train);
    const dir = tempDir('hf-export');
    await model.save(dir, { format: 'hf' });
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architectures: ['RobertaForMaskedLM'],
      model_type: 'roberta',
      max_position_embeddings: 33,
      pad_token_id: 0,
    });
    const text = [tok.encode(' the Congress of the United States').slice(0, 20), tok.encode(' people')].map((a) => [
      1,
      ...Array.from(a),
      2,
    ]);
    const ref = await transformersLogits(dir, text, 0);
    const ours = await model.predict(text);
    expect(maxDiff(ours.data, ref.logits, ref.dims, ref.mask)).toBeLessThan(1e-4);
    const back = await Transformer.fromHF(dir);
    expect(Buffer.from((await back.predict(text)).data.buffer).equals(Buffer.from(ours.data.buffer))).toBe(true);

    const clf = await Transformer.create(
      { task: 'classify', numLabels: 2, vocabSize: tok.vocabSize, maxLen: 32, dModel: 64, layers: 2, heads: 4 },
      { seed: 5 },
    );
    const clfDir = tempDir('hf-export-clf');
    await clf.save(clfDir, { format: 'hf', labels: ['ham', 'spam'] });
    expect(await hfLabels(clfDir)).toEqual(['ham', 'spam']);
    const cref = await transformersLogits(clfDir, text, 0);
    const cours = await clf.predict(text);
    expect(maxDiff(cours.data, cref.logits, cref.dims, cref.mask)).toBeLessThan(1e-4);
    const cback = await Transformer.fromHF(clfDir);
    expect(Buffer.from((await cback.predict(text)).data.buffer).equals(Buffer.from(cours.data.buffer))).toBe(true);
  });

  test('refusals name the problem: pre-LN export, architecture, missing or mis-shaped tensor, truncated file, pickles', async () => {
    const pre = await Transformer.create({ vocabSize: 300, maxLen: 16, dModel: 32, layers: 1, heads: 2, norm: 'pre' });
    await expect(pre.save(tempDir('hf-pre'), { format: 'hf' })).rejects.toThrow(/pre-LN model .* has no RoBERTa equivalent/);
    await expect(pre.save(tempDir('hf-bad'), { format: 'onnx' as 'hf' })).rejects.toThrow(/save options: format: .*"trainlarge"\|"hf"/);

    const dir = tempDir('hf-refuse');
    await make(dir, { task: 'mlm' });
    const copy = (name: string) => {
      const d = tempDir(`hf-${name}`);
      fs.cpSync(dir, d, { recursive: true });
      return d;
    };
    const bert = copy('arch');
    const cfg = JSON.parse(fs.readFileSync(path.join(bert, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(bert, 'config.json'), JSON.stringify({ ...cfg, architectures: ['BertForMaskedLM'] }));
    await expect(Transformer.fromHF(bert)).rejects.toThrow(
      /architecture 'BertForMaskedLM' is not supported; expected one of RobertaForMaskedLM/,
    );

    const missing = copy('missing');
    await py('drop', missing, 'roberta.encoder.layer.1.attention.self.key.weight');
    await expect(Transformer.fromHF(missing)).rejects.toThrow(/lacks 'roberta\.encoder\.layer\.1\.attention\.self\.key\.weight'/);

    const shaped = copy('shape');
    await py('reshape', shaped, 'roberta.encoder.layer.0.intermediate.dense.weight');
    await expect(Transformer.fromHF(shaped)).rejects.toThrow(
      /'roberta\.encoder\.layer\.0\.intermediate\.dense\.weight' has shape \[127, 64\] in the file but the config needs \[128, 64\]/,
    );

    const truncated = copy('truncated');
    const weights = path.join(truncated, 'model.safetensors');
    fs.truncateSync(weights, fs.statSync(weights).size - 1000);
    await expect(Transformer.fromHF(truncated)).rejects.toThrow(/model\.safetensors/);

    const pickle = copy('pickle');
    fs.renameSync(path.join(pickle, 'model.safetensors'), path.join(pickle, 'pytorch_model.bin'));
    await expect(Transformer.fromHF(pickle)).rejects.toThrow(/pytorch_model\.bin is a pickle/);

    const huge = copy('huge');
    fs.writeFileSync(
      path.join(huge, 'config.json'),
      JSON.stringify({
        ...cfg,
        vocab_size: 4_000_000,
        hidden_size: 8192,
        num_attention_heads: 64,
        intermediate_size: 32768,
        num_hidden_layers: 48,
      }),
    );
    await expect(Transformer.fromHF(huge)).rejects.toThrow(/the model needs about [\d.]+ GiB .* of memory is available/);
  });
  test('the workflow on an imported checkpoint: fine-tune on sentiment, prune 50%, quantize 4-bit, save packed, load, serve', async () => {
    // A RoBERTa checkpoint as transformers users have one: a byte-level BPE tokenizer trained on english-prose
    // and a model with its vocabulary (random weights: no network here), in one directory.
    const dir = tempDir('hf-workflow');
    const prose = await englishProseDocuments();
    const textsFile = path.join(dir, 'texts.json');
    fs.writeFileSync(textsFile, JSON.stringify(prose.train.slice(0, 300).map((d) => d.text)));
    const trained = await peer.json<{ vocabSize: number }>('hf_bpe.py', 'train', textsFile, path.join(dir, 'roberta'), '2000');
    const vocab = trained.vocabSize;
    await make(path.join(dir, 'roberta'), { task: 'mlm', vocab, max_positions: 66, pad: 1 });

    const tokenizer = await Tokenizer.fromDir(path.join(dir, 'roberta'));
    expect(tokenizer.special).toMatchObject({ cls: 0, pad: 1, eos: 2, mask: 4 });
    const model = await Transformer.fromHF(path.join(dir, 'roberta'), { task: 'classify', numLabels: 2, seed: 3 });
    expect(model.tokenizer?.sha256).toBe(tokenizer.sha256);
    const task = await Dataset.classification({ source: 'sentiment', tokenizer, maxLen: 64 });
    const fit = await new Trainer(model, { maxSteps: 50, warmupSteps: 5, lr: 1e-3, batchSize: 16, precision: 'fp32', seed: 1 }).fit(
      task.train,
      {
        validData: task.valid,
        evalEvery: 50,
        evalSamples: 200,
      },
    );
    const losses = fit.history.filter((r) => r.type === 'train').map((r) => r.loss);
    expect(losses).toHaveLength(50);
    expect(losses.every((l) => Number.isFinite(l))).toBe(true);
    expect(fit.lastEval?.accuracy).toBeGreaterThan(0.3);
    const compressed = await quantize(await prune(model, { sparsity: 0.5 }), { bits: 4 });
    const before = await model.evaluate(task.test);
    const after = await compressed.evaluate(task.test);
    expect(after.accuracy).toBeGreaterThan(0.4);
    expect(Math.abs(after.accuracy! - before.accuracy!)).toBeLessThan(0.2);

    const packed = path.join(dir, 'packed');
    await compressed.save(packed, { tokenizer, labels: task.labels });
    const loaded = await Transformer.load(packed);
    expect(Object.values(loaded.compression.quantized).every((q) => q.bits === 4)).toBe(true);
    expect(loaded.tokenizer?.kind).toBe('hf-bpe');
    const service = await createService({ models: [{ name: 'sentiment', dir: packed }] });
    try {
      await service.app.listen({ host: '127.0.0.1', port: 0 });
      const addr = service.app.server.address();
      if (!addr || typeof addr === 'string') throw new Error('no address');
      const r = await fetch(`http://127.0.0.1:${addr.port}/v1/models/sentiment/classify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'a gripping, funny film' }),
      });
      expect(r.status).toBe(200);
      const body = (await r.json()) as { results: { label: string; score: number }[] };
      expect(task.labels).toContain(body.results[0].label);
      const ids = tokenizer.encode('a gripping, funny film');
      const direct = await loaded.predict([[tokenizer.special.cls, ...Array.from(ids), tokenizer.special.eos]]);
      const best = direct.data[1] > direct.data[0] ? 1 : 0;
      expect(body.results[0].label).toBe(task.labels[best]);
    } finally {
      await service.close();
    }
    task.dispose();
  });
});
