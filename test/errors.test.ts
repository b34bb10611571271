import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ByteTokenizer, ConfigError, engineInfo, LabelledDataset, MlmDataset, Tokenizer, Trainer, Transformer } from '../lib';
import { small, speechData, withEnv } from './helpers';

describe('bad configs and inputs give JS errors that name the problem', () => {
  test.each([
    [{ ...small, dModel: -8 }, /dModel/],
    [{ ...small, heads: 5 }, /heads: must divide dModel \(64\), got 5/],
    [{ ...small, colour: 'red' }, /colour/],
    [{ ...small, layers: '2' }, /layers/],
    [{ ...small, dropout: 1.5 }, /dropout/],
    [{ ...small, task: 'classify' }, /numLabels: is required/],
    [{ ...small, norm: 'sandwich' }, /norm/],
    [{ ...small, headDim: 0 }, /headDim: Too small/],
    [{ ...small, headDim: 7.5 }, /headDim: Invalid input: expected int/],
  ])('model config %#', async (config, message) => {
    const p = Transformer.create(config as any);
    await expect(p).rejects.toBeInstanceOf(ConfigError);
    await expect(p).rejects.toThrow(message);
  });

  test('train config names the field', async () => {
    const model = await Transformer.create(small);
    expect(() => new Trainer(model, { maxSteps: 0 })).toThrow(/train config: maxSteps/);
    expect(() => new Trainer(model, { maxSteps: 10, precision: 'fp8' } as any)).toThrow(/precision/);
    expect(() => new Trainer(model, { maxSteps: 10, warmupSteps: 20 })).toThrow(/warmupSteps: must be <= maxSteps/);
    expect(() => new Trainer(model, { maxSteps: 10, precision: 'fp16' })).toThrow(/fp16.*CUDA/);
    model.dispose();
  });

  test('token ids out of range, wrong shapes and a disposed model are errors, and the process survives', async () => {
    const model = await Transformer.create(small);
    await expect(model.predict([[1, 2, 999]])).rejects.toThrow(/tokens\[0\]\[2\]: token id 999 is outside \[0, vocabSize=261\)/);
    await expect(model.predict([[1, 2, -1]])).rejects.toThrow(/vocabSize/);
    await expect(model.predict([Array(65).fill(5)])).rejects.toThrow(/maxLen \(64\)/);
    await expect(model.predict({ ids: new Int32Array(5), batch: 2, length: 3 })).rejects.toThrow(
      /tokens: has 5 elements but the shape needs 6/,
    );
    await expect(model.predict([[1, 2.5]])).rejects.toThrow(/tokens\[0\]\[1\]: expected an integer token id, got 2.5/);
    // Shapes and types the public API refuses before the engine sees them (each names the argument).
    const bad: Array<[unknown, RegExp]> = [
      [null, /tokens: expected an array of token-id sequences .* got null/],
      [undefined, /tokens: expected an array of token-id sequences .* got undefined/],
      ['1 2 3', /tokens: expected an array .* got string/],
      [[], /tokens: the batch is empty/],
      [[[]], /tokens: every sequence is empty/],
      [[[1, 5, 6], 7], /tokens\[1\]: expected a sequence of token ids \(an array or typed array\), got the number 7/],
      [[[1, 5], null], /tokens\[1\]: expected a sequence of token ids .* got null/],
      [[[1, '5']], /tokens\[0\]\[1\]: expected an integer token id, got string/],
      [[[1, NaN]], /tokens\[0\]\[1\]: expected an integer token id, got NaN/],
      [[new Float32Array([1, 2.5])], /tokens\[0\]\[1\]: expected an integer token id, got 2.5/],
      [{ ids: [1, 2], batch: 1, length: 2 }, /tokens.ids: expected an Int32Array, got an array/],
      [{ ids: new Uint16Array(2), batch: 1, length: 2 }, /tokens.ids: expected an Int32Array, got Uint16Array/],
      [{ ids: new Int32Array(2), batch: 0, length: 2 }, /tokens.batch: expected a positive integer, got 0/],
      [{ ids: new Int32Array([1, 300]), batch: 1, length: 2 }, /tokens.ids\[1\]: token id 300 is outside \[0, vocabSize=261\)/],
      [
        { ids: new Int32Array(2), batch: 1, length: 2, attentionMask: new Int32Array(2) },
        /tokens.attentionMask: expected a Uint8Array, got Int32Array/,
      ],
      [
        { ids: new Int32Array(2), batch: 1, length: 2, attentionMask: new Uint8Array(3) },
        /tokens.attentionMask: has 3 elements, ids has 2/,
      ],
    ];
    for (const [tokens, message] of bad) {
      await expect(model.predict(tokens as never)).rejects.toThrow(message);
      await expect(model.fillMask(tokens as never)).rejects.toThrow(message);
    }
    // The data factories and tokenizers check theirs the same way.
    const tok = new ByteTokenizer();
    const spm = Tokenizer.load(path.join(__dirname, '..', 'native', 'fuzz', 'corpus', 'tokenizer', 'bpe.model'));
    const sync: Array<[() => unknown, RegExp]> = [
      [() => MlmDataset.fromDocuments(null as never, tok), /docs: expected an array of token-id sequences .* got null/],
      [() => MlmDataset.fromDocuments([[1, 2], 5] as never, tok), /docs\[1\]: expected a sequence of token ids .* got the number 5/],
      [() => MlmDataset.fromDocuments([[1, 999]], tok), /docs\[0\]\[1\]: token id 999 is outside \[0, vocabSize=261\)/],
      [() => MlmDataset.fromStream(Int32Array.from([7, 7, 9999, 7]), tok), /stream\[2\]: token id 9999 is outside \[0, vocabSize=261\)/],
      [() => MlmDataset.fromStream([1, 2, 3] as never, tok), /tokens: expected an Int32Array, Uint32Array or Uint16Array/],
      [() => LabelledDataset.fromSequences(null as never, [0], { maxLen: 8, padId: 0 }), /sequences: expected an array .* got null/],
      [
        () => LabelledDataset.fromSequences([[1, 2]], [0.5], { maxLen: 8, padId: 0 }),
        /labels\[0\]: expected a label index \(an integer >= 0\), got 0.5/,
      ],
      [() => LabelledDataset.fromSequences([[1, 2]], [0, 1], { maxLen: 8, padId: 0 }), /labels: got 2 labels for 1 sequences/],
      [() => tok.encode(5 as never), /text: expected a string, got number/],
      [() => tok.decode(null as never), /ids: expected a sequence of token ids .* got null/],
      [() => spm.encode(null as never), /text: expected a string/],
      [() => spm.decode([1, 1.5]), /ids\[1\]: expected an integer token id, got 1.5/],
      [() => spm.decode([1, 99999]), /ids\[1\]: token id 99999 is outside \[0, vocabSize=600\)/],
    ];
    for (const [call, message] of sync) expect(call).toThrow(message);
    // A damaged normalizer table is refused at load (SentencePiece would read out of bounds on encode), also
    // behind a second normalizer_spec naming 'identity' (protobuf merges the two: the damaged table stays).
    const damaged = fs.readFileSync(path.join(__dirname, '..', 'native', 'fuzz', 'corpus', 'tokenizer', 'regression-damaged-charsmap'));
    const identity = Buffer.concat([Buffer.from([0x1a, 10, 0x0a, 8]), Buffer.from('identity')]);
    for (const [name, bytes, rule] of [
      ['damaged', damaged, 'nmt_nfkc'],
      ['damaged-identity', Buffer.concat([damaged, identity]), 'identity'],
    ] as const) {
      const file = path.join(os.tmpdir(), `trainlarge-${process.pid}-${name}.model`);
      fs.writeFileSync(file, bytes);
      expect(() => Tokenizer.load(file)).toThrow(`tokenizer model: its normalizer does not match the rule '${rule}' it names`);
    }
    await expect(spm.encodeBatch([1] as never)).rejects.toThrow(/texts\[0\]: expected a string/);
    // No GPU here: a CPU-only build says how to get a CUDA one; the CUDA build says no device is visible.
    await expect(Transformer.create(small, { device: 'cuda' })).rejects.toThrow(
      engineInfo().cudaBuilt ? /no CUDA device is visible/ : /CPU-only libtorch.*TRAINLARGE_TORCH=cuda/,
    );
    await expect(Transformer.load('/nonexistent/run')).rejects.toThrow(/cannot read \/nonexistent\/run\/config.json/);
    // A second model predicts through all of this: logits of its shape (batch, length, vocabulary).
    const big = await Transformer.create({ ...small, vocabSize: 300 });
    expect((await big.predict([[1, 2, 3]])).dims).toEqual([1, 3, 300]);
    model.dispose();
    await expect(model.predict([[1, 2]])).rejects.toThrow(/disposed/);
    // Data whose ids exceed the model's vocabulary.
    const { train } = speechData(64, 12);
    const tiny = await Transformer.create({ ...small, vocabSize: 100 });
    await expect(new Trainer(tiny, { maxSteps: 2 }).fit(train)).rejects.toThrow(/token id \d+ is >= the model's vocabSize \(100\)/);
    expect((await big.predict([[1]])).dims).toEqual([1, 1, 300]); // still alive
  });

  test('a data-parallel backend the build or the model cannot use is refused before any rendezvous', async () => {
    // CI runs this suite on the CPU build and on the CUDA one (libtorch 2.14.1 with NCCL's headers).
    const info = engineInfo();
    expect(info.distributedBackends).toEqual(info.cudaBuilt ? ['gloo', 'nccl'] : ['gloo']);
    const model = await Transformer.create(small, { seed: 1 });
    // A rendezvous would serve port 1 and wait 2 s for rank 1: the refusal must come first. (The trainer reads
    // torchrun's variables when it is made.)
    const trainer = withEnv(
      { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '1' },
      () => new Trainer(model, { maxSteps: 2, batchSize: 2, distributed: { backend: 'nccl', timeoutSeconds: 2 } }),
    );
    expect(trainer.worldSize).toBe(2);
    const { train } = speechData(32, 12);
    const started = Date.now();
    await expect(trainer.fit(train)).rejects.toThrow(
      info.cudaBuilt
        ? "distributed: backend 'nccl' carries CUDA tensors only, and this model is on the cpu; use 'auto' or 'gloo'"
        : /^distributed: backend 'nccl' is not in this build \(libtorch 2\.\d+\.\d+, CPU only\); use 'auto' or 'gloo'/,
    );
    expect(Date.now() - started).toBeLessThan(1500);
    expect((await model.predict([[1, 2]])).dims).toEqual([1, 2, small.vocabSize]); // the model is free again
    model.dispose();
  });

  test('the addon loads and the process exits cleanly (no crash in static destructors)', () => {
    const addon = process.env.TRAINLARGE_ADDON ?? path.resolve(__dirname, '../build/trainlarge.node');
    const out = execFileSync(
      process.execPath,
      [
        '-e',
        `const a=require(${JSON.stringify(addon)});a.createModel({task:'mlm',vocabSize:10,maxLen:4,dModel:8,layers:1,heads:2,ffn:16,dropout:0,attentionDropout:0,norm:'post',layerNormEps:1e-5,padId:0},1,'cpu').then(m=>console.log(m.parameterCount))`,
      ],
      { encoding: 'utf8' },
    );
    expect(Number(out.trim())).toBeGreaterThan(0);
  });
});
