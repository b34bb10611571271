// Compression: magnitude pruning and k-bit quantization of real fine-tuned models, the packed file, and
// parity with PyTorch's own pruning and fake quantization.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import {
  classificationLayout,
  compressedSize,
  compressionStudy,
  Dataset,
  engineInfo,
  prune,
  quantize,
  toInt8,
  Tokenizer,
  Trainer,
  Transformer,
  weightErrors,
} from '../lib';
import { ClassificationTask } from '../lib/data/task';
import { native } from '../lib/native';
import { modelInternals } from '../lib/model';
import { parseModelConfig } from '../lib/config/model';
import { classificationExamples, englishProseDocuments } from '../lib/data/builtin/sources';
import { PEER_PYTHON } from '../bench/report';
import { duringLines } from '../lib/experiment/compression';
import { editTensors, tempDir } from './helpers';

jest.setTimeout(300_000);

const PY = PEER_PYTHON;
const PEER = path.join(__dirname, 'peer', 'compress_parity.py');
const MATRICES = ['attn.qkv', 'attn.proj', 'ffn.fc1', 'ffn.fc2'];

/** One-shot unstructured pruning's options as the addon takes them, for the engine's own checks (no schema before them). */
const RAW_PRUNE = {
  structure: 'unstructured',
  sparsity: 0.5,
  scope: 'layer',
  schedule: 'oneshot',
  initialSparsity: 0,
  startStep: 0,
  every: 1,
} as const;

let dir: string;
let tok: Tokenizer;
let task: ClassificationTask;
let base: Transformer; // a classifier fine-tuned on real sentiment data

/** The matrices compression selects by default: every layer's attention and FFN weights, and the token embedding. */
function targetsOf(m: Transformer): string[] {
  const out: string[] = [];
  for (let l = 0; l < m.config.layers; l++) for (const n of MATRICES) out.push(`layers.${l}.${n}.weight`);
  out.push('tokens.weight');
  return out;
}

function zeros(a: Float32Array): number {
  let n = 0;
  for (const x of a) if (x === 0) n++;
  return n;
}

/** Python's round(): half to even, as torch.nn.utils.prune counts the entries to prune. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

beforeAll(async () => {
  dir = tempDir('compress');
  const texts = (await englishProseDocuments()).train.slice(0, 120).map((d) => d.text);
  tok = await Tokenizer.train({ texts, vocabSize: 1000 });
  task = await Dataset.classification({ source: 'sentiment', tokenizer: tok, maxLen: 48 });
  base = await Transformer.create(
    { task: 'classify', numLabels: 2, vocabSize: tok.vocabSize, maxLen: 48, dModel: 64, layers: 2, heads: 4, dropout: 0 },
    { seed: 3 },
  );
  const trainer = new Trainer(base, { maxSteps: 60, batchSize: 32, lr: 1e-3, warmupSteps: 5 });
  await trainer.fit(task.train, { evalEvery: 1000 });
  trainer.dispose();
});

afterAll(() => {
  base?.dispose();
  task?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('pruning', () => {
  test('per-layer sparsity is exact in every matrix; the original is untouched', async () => {
    const pruned = await prune(base, { sparsity: 0.6, scope: 'layer' });
    for (const name of targetsOf(base)) {
      const w = await pruned.weight(name);
      expect(zeros(w.data)).toBe(roundHalfEven(0.6 * w.data.length));
      expect(pruned.compression.pruned[name].kept).toBe(w.data.length - zeros(w.data));
    }
    expect(zeros((await base.weight('layers.0.ffn.fc1.weight')).data)).toBe(0);
    expect(Object.keys(pruned.compression.pruned).sort()).toEqual(targetsOf(base).sort()); // heads, LayerNorm, positions untouched
    pruned.dispose();
  });

  test('global sparsity is exact over all matrices together, and uneven across them', async () => {
    const pruned = await prune(base, { sparsity: 0.5, scope: 'global' });
    let total = 0,
      zero = 0;
    const perMatrix: number[] = [];
    for (const name of targetsOf(base)) {
      const w = await pruned.weight(name);
      total += w.data.length;
      zero += zeros(w.data);
      perMatrix.push(zeros(w.data) / w.data.length);
    }
    expect(zero).toBe(roundHalfEven(0.5 * total));
    expect(Math.max(...perMatrix) - Math.min(...perMatrix)).toBeGreaterThan(0.01);
    pruned.dispose();
  });

  test('pruned weights stay zero through fine-tuning', async () => {
    const pruned = await prune(base, { sparsity: 0.7 });
    const before = await pruned.weight('layers.1.ffn.fc2.weight');
    const trainer = new Trainer(pruned, { maxSteps: 15, batchSize: 32, lr: 3e-3, warmupSteps: 0 });
    await trainer.fit(task.train, { evalEvery: 1000 });
    trainer.dispose();
    const after = await pruned.weight('layers.1.ffn.fc2.weight');
    let moved = 0;
    before.data.forEach((b, i) => {
      if (b === 0) expect(after.data[i]).toBe(0);
      else if (after.data[i] !== b) moved++;
    });
    expect(moved).toBeGreaterThan(before.data.length * 0.2); // the kept weights did train
    pruned.dispose();
  });

  test('gradual pruning follows the cubic schedule during fine-tuning and ends at the target', async () => {
    const sparsity = 0.6;
    const half = await prune(base, { sparsity, schedule: 'gradual', startStep: 0, endStep: 30, every: 10 });
    const t1 = new Trainer(half, { maxSteps: 15, batchSize: 16, lr: 1e-3 });
    await t1.fit(task.train, { evalEvery: 1000 }); // prunes at steps 0 and 10
    t1.dispose();
    const expected10 = sparsity + (0 - sparsity) * (1 - 10 / 30) ** 3;
    const w = await half.weight('layers.0.attn.qkv.weight');
    expect(zeros(w.data)).toBe(roundHalfEven(expected10 * w.data.length));
    half.dispose();

    const full = await prune(base, {
      sparsity,
      schedule: 'gradual',
      startStep: 0,
      endStep: 30,
      every: 10,
      train: { data: task.train, config: { maxSteps: 35, batchSize: 16, lr: 1e-3 } },
    });
    for (const name of targetsOf(base)) expect(full.compression.pruned[name].sparsity).toBeCloseTo(sparsity, 3);
    full.dispose();
  });

  test('masks match torch.nn.utils.prune (l1_unstructured, global_unstructured) on random tensors', () => {
    const dims = [
      [48, 32],
      [64, 48],
      [16, 64],
    ];
    const tensors = dims.map(([r, c]) => Float32Array.from({ length: r * c }, () => Math.random() * 2 - 1));
    const configs = [
      { bits: 8, symmetric: true, perChannel: true },
      { bits: 4, symmetric: true, perChannel: false },
      { bits: 3, symmetric: false, perChannel: true },
      { bits: 2, symmetric: false, perChannel: false },
    ];
    const input = JSON.stringify({
      tensors: tensors.map((t, i) => ({ data: Array.from(t), dims: dims[i] })),
      sparsity: 0.37,
      quant: configs,
    });
    const torch = JSON.parse(execFileSync(PY, [PEER], { input, encoding: 'utf8', maxBuffer: 1 << 26 }));
    const layer = native().testing.magnitudeMasks(tensors, dims, 0.37, 'layer');
    const global = native().testing.magnitudeMasks(tensors, dims, 0.37, 'global');
    tensors.forEach((_, i) => {
      expect(Array.from(layer[i])).toEqual(torch.layer[i]);
      expect(Array.from(global[i])).toEqual(torch.global[i]);
    });
    configs.forEach((c, k) =>
      tensors.forEach((t, i) => {
        const ours = native().testing.fakeQuantize(t, dims[i], c.bits, c.symmetric, c.perChannel);
        const theirs = torch.quant[k][i];
        expect(Array.from(ours.scale)).toEqual(theirs.scale.map((x: number) => Math.fround(x)));
        expect(Array.from(ours.zeroPoint)).toEqual(theirs.zeroPoint);
        expect(Array.from(ours.values)).toEqual(theirs.values.map((x: number) => Math.fround(x)));
      }),
    );
  });
});

describe('quantization', () => {
  test.each([2, 3, 4, 8])('%i-bit codes have at most 2^k levels per channel and dequantize to the weights', (bits) => {
    const [r, c] = [32, 40];
    const w = Float32Array.from({ length: r * c }, () => Math.random() * 4 - 1);
    for (const symmetric of [true, false]) {
      const q = native().testing.fakeQuantize(w, [r, c], bits, symmetric, true);
      for (let row = 0; row < r; row++) {
        const codes = new Set(q.codes.subarray(row * c, (row + 1) * c));
        const values = new Set(q.values.subarray(row * c, (row + 1) * c));
        expect(codes.size).toBeLessThanOrEqual(2 ** bits);
        expect(values.size).toBeLessThanOrEqual(2 ** bits);
        for (const code of codes) expect(code >= 0 && code < 2 ** bits).toBe(true);
        for (let j = 0; j < c; j++) {
          const k = row * c + j;
          expect(q.values[k]).toBe(Math.fround((q.codes[k] + q.qmin - q.zeroPoint[row]) * q.scale[row]));
        }
      }
    }
  });

  test('a quantized model holds at most 2^k distinct values per output row of each matrix', async () => {
    const q = await quantize(base, { bits: 3, granularity: 'channel' });
    const w = await q.weight('layers.0.ffn.fc1.weight');
    const [rows, cols] = w.dims;
    for (let r = 0; r < rows; r++) expect(new Set(w.data.subarray(r * cols, (r + 1) * cols)).size).toBeLessThanOrEqual(8);
    const errors = await weightErrors(q, base);
    expect(errors['layers.0.ffn.fc1.weight']).toBeGreaterThan(0.01);
    expect(errors['layers.0.ffn.fc1.weight']).toBeLessThan(0.5);
    expect(errors['layers.0.norm1.weight']).toBeUndefined(); // 1-D tensors are not reported
    expect(errors['cls_head.dense.weight']).toBe(0); // heads stay full precision
    q.dispose();
  });

  test('quantization-aware fine-tuning keeps the weights on their grid while they learn', async () => {
    const ptq = await quantize(base, { bits: 2 });
    const ptqAcc = (await ptq.evaluate(task.valid)).accuracy!;
    const qat = await quantize(base, {
      bits: 2,
      method: 'qat',
      train: { data: task.train, config: { maxSteps: 40, batchSize: 32, lr: 1e-3, warmupSteps: 0 } },
    });
    const w = await qat.weight('layers.1.attn.qkv.weight');
    const [rows, cols] = w.dims;
    for (let r = 0; r < rows; r++) expect(new Set(w.data.subarray(r * cols, (r + 1) * cols)).size).toBeLessThanOrEqual(4);
    const before = await ptq.weight('layers.1.attn.qkv.weight');
    expect(Array.from(w.data)).not.toEqual(Array.from(before.data));
    const qatAcc = (await qat.evaluate(task.valid)).accuracy!;
    expect(qatAcc).toBeGreaterThan(0.5); // above chance on 2 balanced classes after fine-tuning at 2 bits
    console.log(`sentiment valid accuracy at 2 bits: PTQ ${ptqAcc.toFixed(3)}, QAT ${qatAcc.toFixed(3)}`);
    ptq.dispose();
    qat.dispose();
  });
});

describe('packed file', () => {
  test('bit packing round-trips every width', () => {
    for (let bits = 1; bits <= 8; bits++) {
      const values = Int32Array.from({ length: 1001 }, () => Math.floor(Math.random() * 2 ** bits));
      const packed = native().testing.packBits(values, bits);
      expect(packed.length).toBe(Math.ceil((1001 * bits) / 8));
      expect(Array.from(native().testing.unpackBits(packed, 1001, bits))).toEqual(Array.from(values));
    }
    expect(() => native().testing.packBits(Int32Array.from([16]), 4)).toThrow(/16 does not fit in 4 bits/);
  });

  test.each([
    ['pruned', { prune: 0.6 }],
    ['quantized 4-bit', { bits: 4 }],
    ['pruned + 3-bit asymmetric per-tensor', { prune: 0.5, bits: 3, symmetric: false, granularity: 'tensor' as const }],
    ['uncompressed', {}],
  ])(
    '%s: the file size equals compressedSize, and loading gives the same logits and state',
    async (_, how: { prune?: number; bits?: number; symmetric?: boolean; granularity?: 'channel' | 'tensor' }) => {
      let m = await base.clone();
      if (how.prune) m = await prune(m, { sparsity: how.prune, inPlace: true });
      if (how.bits) m = await quantize(m, { bits: how.bits, symmetric: how.symmetric, granularity: how.granularity, inPlace: true });
      const out = path.join(dir, `packed-${how.prune ?? 0}-${how.bits ?? 32}`);
      const size = await compressedSize(m);
      await m.save(out);
      expect(fs.statSync(path.join(out, 'model.safetensors')).size).toBe(size.bytes);
      expect(size.headerBytes + Object.values(size.tensors).reduce((a, b) => a + b, 0)).toBe(size.bytes);
      const loaded = await Transformer.load(out);
      expect(loaded.compression).toEqual(m.compression);
      const ids = [Array.from(tok.encode('A wonderful, moving film.')), Array.from(tok.encode('Terrible service and cold food.'))];
      const a = await m.predict(ids.map((s) => [tok.special.cls, ...s]));
      const b = await loaded.predict(ids.map((s) => [tok.special.cls, ...s]));
      expect(Array.from(b.data)).toEqual(Array.from(a.data));
      for (const name of targetsOf(base).slice(0, 3))
        expect(Array.from((await loaded.weight(name)).data)).toEqual(Array.from((await m.weight(name)).data));
      if (how.bits || how.prune) {
        const plain = await compressedSize(base);
        expect(size.bytes).toBeLessThan(plain.bytes);
        const matrix = 'layers.0.ffn.fc1.weight';
        const n = 64 * 256;
        const expected =
          (how.prune ? Math.ceil(n / 8) : 0) +
          (how.bits
            ? Math.ceil(((how.prune ? n - roundHalfEven(how.prune * n) : n) * how.bits) / 8) +
              (how.granularity === 'tensor' ? 4 : 4 * 256) +
              (how.symmetric === false ? (how.granularity === 'tensor' ? 1 : 256) : 0)
            : 4 * (n - roundHalfEven(how.prune! * n)));
        expect(size.tensors[matrix]).toBe(expected);
      }
      m.dispose();
      loaded.dispose();
    },
  );
});

describe('int8 inference', () => {
  test('toInt8 runs the encoder on int8 kernels with the quantized grid kept exactly; accuracy holds', async () => {
    const q8 = await quantize(base, { bits: 8 });
    const fastest = await toInt8(q8);
    expect(fastest.compression.int8).toMatchObject({ layers: 8, exactLayers: 8 });
    const sentences = ['A wonderful, moving film.', 'Terrible service and cold food.', 'It works, I guess.'].map((t) => [
      tok.special.cls,
      ...tok.encode(t),
    ]);
    const a = await q8.predict(sentences);
    const b = await fastest.predict(sentences);
    const diff = Math.max(...Array.from(a.data).map((x, i) => Math.abs(x - b.data[i])));
    expect(diff).toBeGreaterThan(0); // activations are quantized on the fly: not the fp32 kernel
    expect(diff).toBeLessThan(0.05);
    const [accFp32, accInt8] = [(await base.evaluate(task.test)).accuracy!, (await fastest.evaluate(task.test)).accuracy!];
    expect(Math.abs(accFp32 - accInt8)).toBeLessThan(0.03);
    const plain = await toInt8(base, { engine: 'qnnpack' }); // not quantized: packed to 8 bits here
    expect(plain.compression.int8).toMatchObject({ engine: 'qnnpack', layers: 8, exactLayers: 0 });
    expect(() => new Trainer(fastest, { maxSteps: 1 })).toThrow(/int8 model is for inference/);
    await expect(toInt8(base, { engine: 'mkl' as never })).rejects.toThrow(
      /engine: must be one of 'auto', 'x86', 'onednn', 'fbgemm', 'qnnpack'; got 'mkl'/,
    );
    // 'auto' takes onednn where the libtorch has it (the fastest from 512 rows in BENCHMARKS.md, "Int8 inference");
    // on a CPU with AVX-512 VNNI (where fbgemm keeps 8-bit activations) it packs fbgemm too and runs calls of up
    // to 256 rows (batch x tokens) on it, where fbgemm was faster. Each call runs exactly one engine's kernel.
    const available = engineInfo().quantizedEngines.map((e) => e.toLowerCase());
    const vnni = /^flags\s*:.*\bavx512_vnni\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (available.includes('onednn') && available.includes('fbgemm') && vnni) {
      expect(fastest.compression.int8!.engine).toBe('fbgemm+onednn');
      const long = Array.from({ length: 12 }, (_, i) => [
        ...sentences[i % 3],
        ...sentences[(i + 1) % 3].slice(1),
        ...sentences[(i + 2) % 3].slice(1),
      ]);
      const rows = long.length * Math.max(...long.map((s) => s.length));
      expect(rows).toBeGreaterThan(256);
      const [onednn, fbgemm] = [await toInt8(q8, { engine: 'onednn' }), await toInt8(q8, { engine: 'fbgemm' })];
      expect(Array.from((await fastest.predict(sentences)).data)).toEqual(Array.from((await fbgemm.predict(sentences)).data));
      expect(Array.from((await fastest.predict(long)).data)).toEqual(Array.from((await onednn.predict(long)).data));
      expect(Array.from((await fastest.predict(long)).data)).not.toEqual(Array.from((await fbgemm.predict(long)).data));
      [onednn, fbgemm].forEach((m) => m.dispose());
    } else if (available.includes('onednn')) expect(fastest.compression.int8!.engine).toBe('onednn');
    if (available.includes('x86')) {
      const x86 = await toInt8(q8, { engine: 'x86' });
      expect(x86.compression.int8).toMatchObject({ engine: 'x86', layers: 8, exactLayers: 8 });
      const c = await x86.predict(sentences);
      expect(Math.max(...Array.from(a.data).map((x, i) => Math.abs(x - c.data[i])))).toBeLessThan(0.05);
      x86.dispose();
    }
    // An engine this libtorch lacks (libtorch 2.x from pip has all four; a TORCH_DIR build may not).
    const missing = (['x86', 'onednn', 'qnnpack', 'fbgemm'] as const).find((e) => !available.includes(e));
    if (missing)
      await expect(toInt8(base, { engine: missing })).rejects.toThrow(
        new RegExp(`'${missing}' is not a quantized engine of this libtorch; available: `),
      );
    [q8, fastest, plain].forEach((m) => m.dispose());
  });

  test('int8 gives the fp32 label on >= 98% of the sentiment test sentences, on every engine', async () => {
    // `base` (60 steps) is near chance on the test split; this classifier learns the task (~76% in 7 s), so
    // its logits are not all near the decision boundary and agreement means what it does for a real model.
    const clf = await Transformer.create(
      { task: 'classify', numLabels: 2, vocabSize: tok.vocabSize, maxLen: 48, dModel: 64, layers: 2, heads: 4, dropout: 0 },
      { seed: 3 },
    );
    const trainer = new Trainer(clf, { maxSteps: 200, batchSize: 32, lr: 1e-3, warmupSteps: 5 });
    await trainer.fit(task.train, { evalEvery: 1000 });
    trainer.dispose();
    // The whole test split, laid out as Dataset.classification does, in batches of 32 padded to the longest
    // (as the service batches): the activation scale of dynamic int8 is taken over each batch.
    const test = (await classificationExamples('sentiment')).splits.test;
    const seqs = test.map((e) => classificationLayout(tok, tok.encode(e.text), undefined, 48));
    const labelsOf = async (m: Transformer): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < seqs.length; i += 32) {
        const { data } = await m.predict(seqs.slice(i, i + 32));
        for (let k = 0; k < data.length; k += 2) out.push(data[k + 1] > data[k] ? 1 : 0);
      }
      return out;
    };
    const fp32 = await labelsOf(clf);
    expect(fp32.filter((l, i) => l === test[i].label).length / test.length).toBeGreaterThan(0.7);
    const available = engineInfo().quantizedEngines.map((e) => e.toLowerCase());
    for (const engine of ['auto', ...(['x86', 'onednn', 'fbgemm', 'qnnpack'] as const).filter((e) => available.includes(e))] as const) {
      const int8 = await toInt8(clf, { engine });
      const labels = await labelsOf(int8);
      int8.dispose();
      const agreement = labels.filter((l, i) => l === fp32[i]).length / test.length;
      expect({ engine, agreement: agreement >= 0.98 ? 'ok' : agreement }).toEqual({ engine, agreement: 'ok' });
    }
    clf.dispose();
  });
});

describe('analysis', () => {
  test('compressionStudy reports bytes, accuracy drop and weight error per setting for each model', async () => {
    const rows = await compressionStudy({
      models: [{ name: 'base', model: base }],
      data: task.test,
      sparsities: [0.3, 0.6, 0.9],
      bits: [8, 4, 2],
    });
    expect(rows.map((r) => `${r.method}:${r.setting}`)).toEqual([
      'none:0',
      'prune:0.3',
      'prune:0.6',
      'prune:0.9',
      'quantize:8',
      'quantize:4',
      'quantize:2',
    ]);
    const pruneRows = rows.filter((r) => r.method === 'prune');
    const quantRows = rows.filter((r) => r.method === 'quantize');
    // More zeros: a smaller file and weights further from the original; fewer bits likewise.
    for (let i = 1; i < 3; i++) {
      expect(pruneRows[i].bytes).toBeLessThan(pruneRows[i - 1].bytes);
      expect(pruneRows[i].meanWeightError).toBeGreaterThan(pruneRows[i - 1].meanWeightError);
      expect(quantRows[i].bytes).toBeLessThan(quantRows[i - 1].bytes);
      expect(quantRows[i].meanWeightError).toBeGreaterThan(quantRows[i - 1].meanWeightError);
    }
    expect(Object.keys(pruneRows[0].weightErrors)).toHaveLength(targetsOf(base).length);
    // Layer bytes: the layers' share of the file, which shrinks with the file but never holds the embedding.
    const embedding = base.config.vocabSize * base.config.dModel * 4;
    expect(rows[0].layerBytes).toBeGreaterThan(0);
    expect(rows[0].layerBytes).toBeLessThanOrEqual(rows[0].bytes - embedding);
    for (let i = 1; i < 3; i++) expect(quantRows[i].layerBytes).toBeLessThan(quantRows[i - 1].layerBytes);
    expect(quantRows[0].layerBytes).toBeLessThan(rows[0].layerBytes / 3); // 8-bit codes: about a quarter of fp32
    expect(rows[0].accuracyDrop).toBe(0);
    expect(rows[0].accuracy).toBeGreaterThan(0.5);
    expect(quantRows[0].accuracyDrop).toBeLessThan(0.03); // 8 bits costs almost nothing
  });

  test('with recover, each setting is also reached during fine-tuning (gradual pruning, QAT), replayable exactly', async () => {
    const recover = { data: task.train, steps: 24, lr: 2e-4, batchSize: 32, seed: 2 };
    const rows = await compressionStudy({
      models: [{ name: 'base', model: base }],
      data: task.test,
      sparsities: [0.6],
      bits: [4],
      recover,
    });
    expect(rows.map((r) => `${r.method}:${r.setting}`)).toEqual(['none:0', 'prune:0.6', 'quantize:4', 'gradual:0.6', 'qat:4']);
    const [, oneShotPrune, oneShotQuant, gradual, qat] = rows;
    // The same sparsity (exact per matrix) and the same bits pack to the same file size.
    expect(gradual.bytes).toBe(oneShotPrune.bytes);
    expect(qat.bytes).toBe(oneShotQuant.bytes);
    expect(Object.keys(gradual.weightErrors)).toHaveLength(targetsOf(base).length);
    expect(gradual.accuracy).toBeGreaterThan(0.5);
    // The gradual variant by hand: the schedule ends at 3/4 of the steps, the matrices at exactly 60% zeros.
    const replay = await prune(base, {
      sparsity: 0.6,
      schedule: 'gradual',
      endStep: 18,
      every: 1,
      train: { data: task.train, config: { lr: 2e-4, batchSize: 32, maxSteps: 24, warmupSteps: 1, seed: 2 } },
    });
    const w = await replay.weight('layers.0.ffn.fc1.weight');
    expect(w.data.filter((x) => x === 0).length / w.data.length).toBeCloseTo(0.6, 2);
    expect((await replay.evaluate(task.test)).accuracy).toBe(gradual.accuracy);
    replay.dispose();
    const lines = duringLines(rows).join('\n');
    expect(lines).toContain(`| base | 0.6 | prune | ${oneShotPrune.accuracy.toFixed(3)} | gradual | ${gradual.accuracy.toFixed(3)} |`);
    expect(lines).toContain(`| base | 4 | quantize | ${oneShotQuant.accuracy.toFixed(3)} | qat | ${qat.accuracy.toFixed(3)} |`);
  });
});

// ---------------------------------------------------------------------------------------------------
// Structured pruning: whole heads / feed-forward units removed, the matrices physically smaller.

const D = 64,
  H = 4,
  HS = 16,
  F = 256; // base's shape

/** Indices, ascending, of the `keep` largest scores (ties: the lower index), as the engine picks them. */
function keptUnits(scores: number[], keep: number): number[] {
  const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  return order.slice(0, keep).sort((a, b) => a - b);
}

/**
 * The units a structured prune keeps, computed here from the weights (the test's own oracle): a head's
 * importance is the L2 norm of its q, k, v rows and its proj columns; an FFN unit's of its fc1 row and
 * fc2 column.
 */
async function oracleKept(
  m: Transformer,
  layer: number,
  keepHeads: number,
  keepUnits: number,
): Promise<{ heads: number[]; units: number[] }> {
  const at = `layers.${layer}.`;
  const [qkv, proj, fc1, fc2] = await Promise.all(
    ['attn.qkv.weight', 'attn.proj.weight', 'ffn.fc1.weight', 'ffn.fc2.weight'].map((n) => m.weight(at + n)),
  );
  const heads = Array.from({ length: H }, (_, h) => {
    let n = 0;
    for (let c = 0; c < 3; c++) for (let i = 0; i < HS; i++) for (let d = 0; d < D; d++) n += qkv.data[((c * H + h) * HS + i) * D + d] ** 2;
    for (let d = 0; d < D; d++) for (let i = 0; i < HS; i++) n += proj.data[d * H * HS + h * HS + i] ** 2;
    return n;
  });
  const units = Array.from({ length: F }, (_, j) => {
    let n = 0;
    for (let d = 0; d < D; d++) n += fc1.data[j * D + d] ** 2 + fc2.data[d * F + j] ** 2;
    return n;
  });
  return { heads: keptUnits(heads, keepHeads), units: keptUnits(units, keepUnits) };
}

/** base with the removed heads' and units' weights set to zero (and their biases): what pruning claims to compute. */
async function zeroedCopy(out: string, kept: { heads: number[]; units: number[] }[]): Promise<Transformer> {
  await base.save(out);
  const edits: Record<string, (data: Float32Array, dims: number[]) => void> = {};
  kept.forEach(({ heads, units }, l) => {
    const at = `layers.${l}.`;
    const goneHeads = [0, 1, 2, 3].filter((h) => !heads.includes(h));
    const goneUnits = Array.from({ length: F }, (_, j) => j).filter((j) => !units.includes(j));
    const qkvRows = goneHeads.flatMap((h) => [0, 1, 2].flatMap((c) => Array.from({ length: HS }, (_, i) => (c * H + h) * HS + i)));
    edits[at + 'attn.qkv.weight'] = (w) => qkvRows.forEach((r) => w.fill(0, r * D, (r + 1) * D));
    edits[at + 'attn.qkv.bias'] = (b) => qkvRows.forEach((r) => (b[r] = 0));
    edits[at + 'attn.proj.weight'] = (w) => {
      for (let d = 0; d < D; d++) for (const h of goneHeads) w.fill(0, d * H * HS + h * HS, d * H * HS + (h + 1) * HS);
    };
    edits[at + 'ffn.fc1.weight'] = (w) => goneUnits.forEach((j) => w.fill(0, j * D, (j + 1) * D));
    edits[at + 'ffn.fc1.bias'] = (b) => goneUnits.forEach((j) => (b[j] = 0));
    edits[at + 'ffn.fc2.weight'] = (w) => {
      for (let d = 0; d < D; d++) for (const j of goneUnits) w[d * F + j] = 0;
    };
  });
  editTensors(path.join(out, 'model.safetensors'), edits);
  return Transformer.load(out);
}

async function realSentences(count: number): Promise<number[][]> {
  const { splits } = await classificationExamples('sentiment');
  return splits.test.slice(0, count).map((e) => [tok.special.cls, ...Array.from(tok.encode(e.text)).slice(0, 46), tok.special.eos]);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('structured pruning', () => {
  test.each([
    ['heads', 2, F],
    ['ffn', H, 128],
    ['heads+ffn', 2, 128],
  ] as const)(
    "structure '%s' at 0.5 shrinks the matrices, and its logits equal the original's with those units zeroed",
    async (structure, heads, ffn) => {
      const pruned = await prune(base, { structure, sparsity: 0.5 });
      expect(pruned.config).toEqual({ ...base.config, heads, ffn, ...(heads < H ? { headDim: HS } : {}) });
      const shape = async (n: string) => (await pruned.weight(`layers.1.${n}`)).dims;
      expect(await shape('attn.qkv.weight')).toEqual([3 * heads * HS, D]);
      expect(await shape('attn.qkv.bias')).toEqual([3 * heads * HS]);
      expect(await shape('attn.proj.weight')).toEqual([D, heads * HS]);
      expect(await shape('ffn.fc1.weight')).toEqual([ffn, D]);
      expect(await shape('ffn.fc2.weight')).toEqual([D, ffn]);
      expect(pruned.parameterCount).toBeLessThan(base.parameterCount);
      expect(base.config.heads).toBe(H); // the original is untouched
      expect((await base.weight('layers.0.ffn.fc1.weight')).dims).toEqual([F, D]);
      expect(pruned.compression).toEqual({ pruned: {}, quantized: {} }); // a plain dense model, no masks

      // The kept units are the ones of largest L2 norm (this test's own computation), copied exactly.
      const kept = [await oracleKept(base, 0, heads, ffn), await oracleKept(base, 1, heads, ffn)];
      const fc1 = await base.weight('layers.1.ffn.fc1.weight');
      const prunedFc1 = await pruned.weight('layers.1.ffn.fc1.weight');
      kept[1].units.forEach((j, k) => expect(prunedFc1.data.subarray(k * D, (k + 1) * D)).toEqual(fc1.data.subarray(j * D, (j + 1) * D)));

      // Masking equivalence on real sentences and on the whole real test split.
      const zeroed = await zeroedCopy(path.join(dir, `zeroed-${structure}`), kept);
      const sentences = await realSentences(16);
      const [a, b, full] = [await pruned.predict(sentences), await zeroed.predict(sentences), await base.predict(sentences)];
      const diff = maxAbsDiff(a.data, b.data);
      expect(diff).toBeLessThan(1e-5);
      expect(maxAbsDiff(a.data, full.data)).toBeGreaterThan(1e-3); // removing the units did change the logits
      const [ep, ez, eb] = [await pruned.evaluate(task.test), await zeroed.evaluate(task.test), await base.evaluate(task.test)];
      expect(Math.abs(ep.loss - ez.loss)).toBeLessThan(1e-5);
      expect(ep.accuracy).toBe(ez.accuracy);
      console.log(
        `structured pruning '${structure}' 0.5 on sentiment test (${ep.count} examples): accuracy ${eb.accuracy!.toFixed(3)} -> ` +
          `${ep.accuracy!.toFixed(3)}, loss ${eb.loss.toFixed(4)} -> ${ep.loss.toFixed(4)}, parameters ${base.parameterCount} -> ` +
          `${pruned.parameterCount}; max |logit - zeroed original's| ${diff.toExponential(1)}`,
      );
      pruned.dispose();
      zeroed.dispose();
    },
  );

  test('the pruned model is a normal model: a smaller file, save/load, fine-tuning, quantize, toInt8, HF export of FFN pruning', async () => {
    const pruned = await prune(base, { structure: 'heads+ffn', sparsity: 0.5 });
    const out = path.join(dir, 'structured');
    const [size, plain] = [await compressedSize(pruned), await compressedSize(base)];
    await pruned.save(out);
    expect(fs.statSync(path.join(out, 'model.safetensors')).size).toBe(size.bytes);
    expect(size.bytes).toBeLessThan(plain.bytes * 0.75);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).model).toMatchObject({ heads: 2, headDim: 16, ffn: 128 });
    expect(parseModelConfig({ ...base.config, headDim: 16 })).toEqual(base.config); // headDim is written only where it is not dModel / heads
    const loaded = await Transformer.load(out);
    expect(loaded.config).toEqual(pruned.config);
    const sentences = await realSentences(8);
    expect(Array.from((await loaded.predict(sentences)).data)).toEqual(Array.from((await pruned.predict(sentences)).data));

    // Fine-tuning recovers accuracy on the smaller shape.
    const before = (await loaded.evaluate(task.valid)).accuracy!;
    const trainer = new Trainer(loaded, { maxSteps: 30, batchSize: 32, lr: 1e-3, warmupSteps: 0 });
    await trainer.fit(task.train, { evalEvery: 1000 });
    trainer.dispose();
    const after = (await loaded.evaluate(task.valid)).accuracy!;
    expect((await loaded.weight('layers.0.attn.qkv.weight')).dims).toEqual([96, 64]);
    expect(after).toBeGreaterThan(0.5);
    console.log(`heads+ffn 0.5, sentiment valid accuracy: ${before.toFixed(3)} pruned, ${after.toFixed(3)} after 30 fine-tuning steps`);

    // Then unstructured pruning and quantization compose with it, and int8 kernels run it.
    const q = await quantize(await prune(pruned, { sparsity: 0.5, inPlace: false }), { bits: 4 });
    const qOut = path.join(dir, 'structured-q4');
    await q.save(qOut);
    expect((await compressedSize(q)).bytes).toBeLessThan(size.bytes);
    const qLoaded = await Transformer.load(qOut);
    expect(Array.from((await qLoaded.predict(sentences)).data)).toEqual(Array.from((await q.predict(sentences)).data));
    const fast = await toInt8(pruned);
    expect(fast.compression.int8).toMatchObject({ layers: 8 });
    expect(maxAbsDiff((await fast.predict(sentences)).data, (await pruned.predict(sentences)).data)).toBeLessThan(0.05);

    // transformers' RobertaConfig has no head_dim: a head-pruned model is refused; an FFN-pruned one exports.
    await expect(pruned.save(path.join(dir, 'structured-hf'), { format: 'hf' })).rejects.toThrow(
      /format 'hf': a model with pruned attention heads \(2 heads x headDim 16 = 32, not dModel 64\).*structure 'ffn'/,
    );
    const ffnOnly = await prune(base, { structure: 'ffn', sparsity: 0.25 });
    const hfOut = path.join(dir, 'structured-ffn-hf');
    await ffnOnly.save(hfOut, { format: 'hf' });
    expect(JSON.parse(fs.readFileSync(path.join(hfOut, 'config.json'), 'utf8')).intermediate_size).toBe(192);
    const back = await Transformer.fromHF(hfOut);
    expect(maxAbsDiff((await back.predict(sentences)).data, (await ffnOnly.predict(sentences)).data)).toBeLessThan(1e-5);
    [pruned, loaded, q, qLoaded, fast, ffnOnly, back].forEach((m) => m.dispose());
  });

  test('bad structured options give errors naming the field and the allowed values', async () => {
    await expect(prune(base, { structure: 'rows' as 'heads', sparsity: 0.5 })).rejects.toThrow(
      /prune options: structure: .*"unstructured"\|"heads"\|"ffn"\|"heads\+ffn"/,
    );
    await expect(prune(base, { structure: 'heads', sparsity: 0.5, scope: 'global' })).rejects.toThrow(
      /prune options: scope: structure 'heads' removes the same number of units from every layer: only 'layer' applies, got 'global'/,
    );
    await expect(prune(base, { structure: 'ffn', sparsity: 0.5, schedule: 'gradual', endStep: 10 })).rejects.toThrow(
      /schedule: structure 'ffn' is one-shot: only 'oneshot' applies, got 'gradual'/,
    );
    await expect(prune(base, { structure: 'heads', sparsity: 0.5, targets: ['attention'] })).rejects.toThrow(
      /targets: does not apply to structure 'heads'/,
    );
    await expect(prune(base, { structure: 'heads', sparsity: 0.5, inPlace: true })).rejects.toThrow(
      /inPlace: structure 'heads' makes a new, smaller model/,
    );
    await expect(prune(base, { structure: 'heads', sparsity: 0.9 })).rejects.toThrow(
      /sparsity: 0\.9 would remove all 4 attention heads of every layer; it must leave at least one \(at most 0\.75\)/,
    );
    await expect(prune(base, { structure: 'ffn', sparsity: 0.999 })).rejects.toThrow(
      /sparsity: 0\.999 would remove all 256 feed-forward units/,
    );
    const masked = await prune(base, { sparsity: 0.3 });
    await expect(prune(masked, { structure: 'heads', sparsity: 0.5 })).rejects.toThrow(/structured pruning needs an uncompressed model/);
    // The engine's own checks, for a caller of the addon that skips the schema.
    const m = modelInternals(base);
    const raw = { ...RAW_PRUNE, structure: 'heads' } as const;
    await expect(m.run(() => m.handle.pruneStructured({ ...raw, scope: 'global' }))).rejects.toThrow(
      /scope: .*only 'layer' applies, got 'global'/,
    );
    await expect(m.run(() => m.handle.prune(raw))).rejects.toThrow(/structured pruning makes a new, smaller model/);
    await expect(m.run(() => m.handle.pruneStructured({ ...raw, structure: 'unstructured', targets: ['ffn'] }))).rejects.toThrow(
      /structure is 'unstructured'/,
    );
    masked.dispose();
  });

  test('compressionStudy measures structured entries: accuracy, file bytes and the weight norm removed', async () => {
    const rows = await compressionStudy({
      models: [{ name: 'base', model: base }],
      data: task.test,
      sparsities: [],
      bits: [],
      structured: { heads: [0.25, 0.5], ffn: [0.5], 'heads+ffn': [0.5] },
    });
    expect(rows.map((r) => `${r.method}:${r.setting}`)).toEqual([
      'none:0',
      'prune-heads:0.25',
      'prune-heads:0.5',
      'prune-ffn:0.5',
      'prune-heads+ffn:0.5',
    ]);
    const [none, h25, h50, f50, hf50] = rows;
    expect(h50.bytes).toBeLessThan(h25.bytes);
    expect(h25.bytes).toBeLessThan(none.bytes);
    expect(hf50.bytes).toBeLessThan(Math.min(h50.bytes, f50.bytes));
    expect(h50.meanWeightError).toBeGreaterThan(h25.meanWeightError);
    expect(Object.keys(h50.weightErrors)).toHaveLength(4); // qkv and proj of 2 layers
    expect(Object.keys(hf50.weightErrors)).toHaveLength(8);
    for (const r of rows.slice(1)) {
      expect(r.meanWeightError).toBeGreaterThan(0);
      expect(r.meanWeightError).toBeLessThan(1);
    }
    console.log(
      rows
        .map(
          (r) => `${r.method} ${r.setting}: ${r.bytes} B, accuracy ${r.accuracy.toFixed(3)}, weight error ${r.meanWeightError.toFixed(3)}`,
        )
        .join('\n'),
    );
  });
});

describe('fine-tuning a pretrained body', () => {
  test('fromPretrained copies the encoder of an MLM run and starts a fresh head', async () => {
    const mlm = await Transformer.create({ vocabSize: tok.vocabSize, maxLen: 48, dModel: 64, layers: 2, heads: 4 }, { seed: 9 });
    const out = path.join(dir, 'mlm');
    await mlm.save(out);
    const clf = await Transformer.fromPretrained(out, { task: 'classify', numLabels: 2 });
    expect(clf.config.task).toBe('classify');
    for (const name of ['tokens.weight', 'layers.1.ffn.fc2.weight'])
      expect(Array.from((await clf.weight(name)).data)).toEqual(Array.from((await mlm.weight(name)).data));
    await expect(Transformer.fromPretrained(out, { task: 'classify' })).rejects.toThrow(/numLabels.*required/);
    mlm.dispose();
    clf.dispose();
  });
});

describe('bad arguments', () => {
  test('give clear errors naming the field and the allowed values', async () => {
    await expect(prune(base, { sparsity: 1 })).rejects.toThrow(/prune options: sparsity: .*1/);
    await expect(prune(base, { sparsity: -0.1 })).rejects.toThrow(/sparsity/);
    await expect(prune(base, { sparsity: 0.5, scope: 'row' as 'layer' })).rejects.toThrow(/scope: .*"layer"\|"global"/);
    await expect(prune(base, { sparsity: 0.5, schedule: 'gradual' })).rejects.toThrow(/endStep: is required for schedule 'gradual'/);
    await expect(prune(base, { sparsity: 0.5, targets: [] })).rejects.toThrow(/targets: select at least one of attention, ffn, embeddings/);
    await expect(quantize(base, { bits: 0 })).rejects.toThrow(/quantize options: bits: .*2/);
    await expect(quantize(base, { bits: 9 })).rejects.toThrow(/quantize options: bits: .*8/);
    await expect(quantize(base, { bits: 4, granularity: 'row' as 'channel' })).rejects.toThrow(/granularity: .*"channel"\|"tensor"/);
    await expect(quantize(base, { bits: 4, method: 'qat' })).rejects.toThrow(/method 'qat' needs train/);
    const q = await quantize(base, { bits: 4 });
    await expect(quantize(q, { bits: 4 })).rejects.toThrow(/already quantized .*4 bits/);
    const qi = modelInternals(q);
    await expect(
      qi.run(() => qi.handle.quantize({ bits: 4, symmetric: true, granularity: 'channel', targets: ['attention'] })),
    ).rejects.toThrow(/'layers\.0\.attn\.qkv\.weight' is already quantized/);
    await expect(qi.run(() => qi.handle.prune({ ...RAW_PRUNE, targets: [] }))).rejects.toThrow(/no weight matrices to prune/);
    expect(() => native().testing.fakeQuantize(new Float32Array(4), [2, 2], 9, true, true)).toThrow(
      /bits: must be an integer in 2\.\.8, got 9/,
    );
    expect(() => native().testing.magnitudeMasks([new Float32Array(4)], [[2, 2]], 1, 'layer')).toThrow(/sparsity: must be in \[0, 1\)/);
    q.dispose();
  });
});
