/**
 * The GPU checks, run by `npm run gpu-check` (scripts/gpu-check preflights and builds the CUDA addon and
 * measures the GEMM peak first; see README, "Checking a GPU"). A plain script, not jest, so that a bare GPU
 * machine needs only Node and this file's compiled JavaScript.
 *
 *   node dist/bench/gpu-check.js --data CORPUS_DIR --results DIR [--budget SECONDS] [--only REGEX] [--dry-run]
 *
 * --data: a prepared corpus's folder (its manifest.json and some of its train-NNNNN.tok / valid-NNNNN.tok shards).
 * --results: where scripts/gpu-check left preflight.json (GPUs, free memory, TF32) and peak.json (the GEMM
 * peaks), and where every check's result goes as it comes: checks/NN-ID.json and .log, summary.json, table.md.
 * --budget: seconds for all the checks together (each also has its own limit).
 * --only REGEX: only the checks whose id matches.
 *
 * The checks run in order of value, each in a child process of this script (`--check ID`) with its own time
 * limit, so a hung or slow one is killed and the rest still run, inside the budget:
 *   1. training in fp32, bf16 and fp16 (medium MLM, 50 steps: loss falls, nothing non-finite, fp16's skipped steps);
 *   2. CPU and GPU logits of the same weights;
 *   3. checkpoints: saved on the GPU, loaded and trained on the CPU; resume on the GPU exact;
 *   4. the throughput table: medium and large, and a GPU-sized model (d1024, 12 layers, T 512, attention
 *      dropout 0 so attention is libtorch's fused kernel, the batch that fills the GPU's free memory), in bf16 and
 *      fp32 with TF32 on and off; every step synchronized; the time waiting for data; model TFLOP/s beside the
 *      measured GEMM peak and the datasheet's;
 *   5. predict, fillMask, prune and 4-bit QAT on the GPU; toInt8 refused there;
 *   6. data-parallel (short): 2 ranks through `trainlarge launch` against one process at twice the batch (NCCL
 *      where there are 2 GPUs and the build has it, Gloo with CUDA tensors on one GPU).
 * The correctness checks run with TF32 off (TORCH_ALLOW_TF32_CUBLAS_OVERRIDE removed from their environment):
 * "fp32" means fp32 there. What the build or the machine lacks is skipped with its reason (no gloo: no
 * data-parallel check; one GPU: no NCCL check; no GPU in the dry run: the GPU-only checks).
 * Without a GPU it prints "gpu-check: no CUDA device visible" and exits 0, unless --dry-run: then the checks
 * that need no GPU run on the CPU at a small size (the carry-and-build path's test).
 * Ends with "N passed, N failed, N skipped"; exits 1 when a check failed.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { AbortError, engineInfo, MlmDataset, prune, quantize, toInt8, Trainer, Transformer, TokenizerLike } from '../lib';
import type { EngineInfo, Precision, StepRecord } from '../lib';
import { median, mlmStepFlops, runMain } from './report';
import { shapeOf, SIZES } from './sizes';

interface Size {
  name: string;
  dModel: number;
  layers: number;
  heads: number;
  /** Sequence length (T); 128 unless given. */
  maxLen?: number;
  attentionDropout?: number;
}
const MEDIUM: Size = SIZES.medium;
const LARGE: Size = SIZES.large;
const TINY: Size = SIZES.tiny;
/** The GPU-sized model: attention dropout 0, so attention is libtorch's fused scaled_dot_product_attention. */
const XL: Size = { name: 'xl', dModel: 1024, layers: 12, heads: 16, maxLen: 512, attentionDropout: 0 };
const T = 128;
const seqLen = (s: Size) => s.maxLen ?? T;
/** Size `s` as a model config over `vocab` tokens, of `task` (an MLM by default). */
const sizeConfig = (s: Size, vocab: number, task: 'mlm' | 'classify' = 'mlm') => ({
  task,
  vocabSize: vocab,
  maxLen: seqLen(s),
  ...shapeOf(s),
  ...(s.attentionDropout !== undefined ? { attentionDropout: s.attentionDropout } : {}),
});

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The corpus's token shards as MLM data (no tokenizer library needed: ids only). */
function corpusData(dir: string, maxLen = T): { train: MlmDataset; valid: MlmDataset; vocab: number } {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
    tokenizer?: { vocabSize?: number };
    vocabSize?: number;
  };
  const vocab = manifest.tokenizer?.vocabSize ?? manifest.vocabSize ?? NaN;
  if (!Number.isInteger(vocab)) throw new Error(`gpu-check: ${dir}/manifest.json has no tokenizer.vocabSize`);
  const tok: TokenizerLike = {
    vocabSize: vocab,
    special: { pad: 0, cls: 1, eos: 2, unk: 3, mask: 4 },
    encode: () => {
      throw new Error('gpu-check: encode is not used');
    },
    decode: () => '',
  };
  const shards = (split: string) =>
    fs
      .readdirSync(dir)
      .filter((f) => new RegExp(`^${split}-\\d{5}\\.tok$`).test(f))
      .sort()
      .map((f) => path.join(dir, f));
  return {
    train: MlmDataset.fromShards(shards('train'), tok, { maxLen }),
    valid: MlmDataset.fromShards(shards('valid'), tok, { maxLen }),
    vocab,
  };
}

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert(a.length === b.length, `shapes differ: ${a.length} vs ${b.length} values`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** One rank of the data-parallel check (this script with --dist-child JSON, under `trainlarge launch`). */
interface DistChild {
  data: string;
  size: Size;
  device: 'cpu' | 'cuda';
  backend?: 'auto' | 'gloo' | 'nccl';
  batchSize: number;
  steps: number;
  save: string;
}

/** Trains o.steps steps without dropout (ranks would draw their own masks); rank 0 (or a lone process) saves. */
async function trainDistChild(o: DistChild): Promise<Transformer> {
  const { train, vocab } = corpusData(o.data);
  const model = await Transformer.create(
    {
      task: 'mlm',
      vocabSize: vocab,
      maxLen: T,
      dModel: o.size.dModel,
      layers: o.size.layers,
      heads: o.size.heads,
      dropout: 0,
      attentionDropout: 0,
    },
    { seed: 1, device: o.device },
  );
  await new Trainer(model, {
    maxSteps: o.steps,
    batchSize: o.batchSize,
    lr: 1e-3,
    warmupSteps: 0,
    precision: 'fp32',
    seed: 1,
    distributed: o.backend ? { backend: o.backend } : 'off',
  }).fit(train, { evalEvery: 1e9 });
  if ((process.env.RANK ?? '0') === '0') await model.save(o.save);
  return model;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

const trainRecords = (h: Array<{ type: string }>) => h.filter((r) => r.type === 'train') as StepRecord[];
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** What scripts/gpu-check measured before the checks (scripts/gpu-check.py's probe and peak). */
interface Preflight {
  python?: { gpus?: Array<{ name: string; totalBytes: number; freeBytes: number }>; torch?: string };
}
type PeakKey = 'fp32' | 'tf32' | 'bf16' | 'fp16';
interface Peak {
  device?: string;
  n?: number;
  reps?: number;
  method?: string;
  measured?: Partial<Record<PeakKey, number>>;
  datasheet?: ({ matched: string } & Partial<Record<PeakKey, number>>) | null;
  tf32Effective?: boolean;
}

/** One row of the throughput table. */
interface Row {
  model: string;
  precision: string;
  batch: number;
  T: number;
  ms: number;
  dataMs: number;
  tokensPerSec: number;
  tflops: number;
  peak?: number;
  datasheet?: number;
  note?: string;
}

interface Outcome {
  detail: string;
  row?: Row;
}

interface Ctx {
  dry: boolean;
  gpu: boolean;
  device: 'cpu' | 'cuda';
  info: EngineInfo;
  dataDir: string;
  results: string;
  preflight: Preflight;
  peak: Peak;
  tmp: string;
}

/** A check: its limits (seconds, on a GPU and in the dry run), its environment, and a skip reason if any. */
interface Check {
  id: string;
  name: string;
  limit: number;
  limitDry: number;
  /** TF32 for fp32 matmuls in its process: off (the override removed) unless 'on'. */
  tf32?: 'on' | 'off';
  skip?: string;
  run: () => Promise<Outcome>;
}

const NO_GPU = 'needs a GPU (dry run on the CPU)';

/** Every check in the order they run (the order of their value to a GPU user). */
function plan(ctx: Ctx): Check[] {
  const { gpu, device, dataDir, info, tmp } = ctx;
  const size = gpu ? MEDIUM : TINY;
  const steps = gpu ? 50 : 40;
  const batchSize = gpu ? 32 : 8;
  const data = () => corpusData(dataDir);
  const ids = (vocab: number) => [
    Array.from({ length: 40 }, (_, i) => (i === 0 ? 1 : 5 + ((i * 7919) % (vocab - 5)))),
    [1, 50, 4, 70, 80, 4, 90],
  ];
  const checks: Check[] = [];

  // 1. Training in each precision: loss falls, nothing non-finite, fp16's skipped steps reported.
  for (const precision of ['fp32', 'bf16', 'fp16'] as Precision[]) {
    checks.push({
      id: `train-${precision}`,
      name: `train ${size.name} MLM ${steps} steps on ${device}, ${precision}`,
      limit: 40,
      limitDry: 240,
      skip: !gpu && precision !== 'fp32' ? `${NO_GPU}: the dry run trains in fp32` : undefined,
      run: async () => {
        const { train, vocab } = data();
        const model = await Transformer.create(sizeConfig(size, vocab), { seed: 1, device });
        const trainer = new Trainer(model, { maxSteps: steps, batchSize, lr: 1e-3, warmupSteps: 5, precision, seed: 1 });
        const r = await trainer.fit(train, { evalEvery: 1e9 });
        const losses = trainRecords(r.history).map((h) => h.loss);
        assert(losses.length === steps, `${losses.length} steps recorded, expected ${steps}`);
        assert(losses.every(Number.isFinite), `a loss is not finite: ${losses.find((l) => !Number.isFinite(l))}`);
        const first = mean(losses.slice(0, 5)),
          last = mean(losses.slice(-5));
        assert(last < first - 0.3, `loss did not fall: first 5 steps ${first.toFixed(3)}, last 5 ${last.toFixed(3)}`);
        const skipped = trainRecords(r.history).filter((h) => h.skipped).length;
        model.dispose();
        return {
          detail:
            `loss ${first.toFixed(3)} -> ${last.toFixed(3)}` +
            (precision === 'fp16' ? `; ${skipped} step(s) skipped by the loss scaler, scale now ${trainer.lossScale}` : ''),
        };
      },
    });
  }

  // 2. The same weights on CPU and GPU give the same logits.
  checks.push({
    id: 'logits',
    name: 'CPU and GPU logits agree (fp32, max abs diff < 1e-3)',
    limit: 30,
    limitDry: 60,
    skip: gpu ? undefined : NO_GPU,
    run: async () => {
      const { vocab } = data();
      const cpu = await Transformer.create(sizeConfig(size, vocab), { seed: 3 });
      const dir = path.join(tmp, 'weights');
      await cpu.save(dir);
      const onGpu = await Transformer.load(dir, { device: 'cuda' });
      const d = maxAbsDiff((await cpu.predict(ids(vocab))).data, (await onGpu.predict(ids(vocab))).data);
      cpu.dispose();
      onGpu.dispose();
      assert(d < 1e-3, `max abs diff ${d}`);
      return { detail: `max abs diff ${d.toExponential(2)}` };
    },
  });

  // 3. Checkpoints: saved on the device, loaded on the CPU (and trained on from there); resume exact.
  const trainCfg = { maxSteps: 16, warmupSteps: 4, lr: 1e-3, batchSize, precision: 'fp32' as const, seed: 7 };
  checks.push({
    id: 'checkpoint-to-cpu',
    name: `a checkpoint saved on ${device} loads on the CPU and training continues there`,
    limit: 40,
    limitDry: 180,
    run: async () => {
      const { train, vocab } = data();
      const dir = path.join(tmp, 'to-cpu');
      const model = await Transformer.create(sizeConfig(size, vocab), { seed: 5, device });
      await new Trainer(model, { ...trainCfg, maxSteps: 8 }).fit(train, { dir, evalEvery: 8 });
      const onCpu = await Transformer.load(dir, { device: 'cpu' });
      const d = maxAbsDiff((await model.predict(ids(vocab))).data, (await onCpu.predict(ids(vocab))).data);
      assert(d < 1e-3, `logits of the loaded checkpoint differ by ${d}`);
      const r = await new Trainer(onCpu, { ...trainCfg, maxSteps: 10 }).fit(train, { dir, evalEvery: 10 });
      assert(r.resumedFrom === 8, `resumed from ${r.resumedFrom}, expected 8`);
      const more = trainRecords(r.history).filter((h) => h.step > 8);
      assert(
        more.length === 2 && more.every((h) => Number.isFinite(h.loss)),
        `steps 9-10 on the CPU: ${JSON.stringify(more.map((h) => h.loss))}`,
      );
      model.dispose();
      onCpu.dispose();
      return {
        detail: `logits within ${d.toExponential(2)}; steps 9-10 on the CPU, loss ${more.map((h) => h.loss.toFixed(3)).join(', ')}`,
      };
    },
  });
  checks.push({
    id: 'resume',
    name: `resume on ${device} continues exactly (fp32, losses within 1e-5)`,
    limit: 45,
    limitDry: 240,
    run: async () => {
      const { train, vocab } = data();
      const full = await new Trainer(await Transformer.create(sizeConfig(size, vocab), { seed: 5, device }), trainCfg).fit(train, {
        evalEvery: 8,
        dir: path.join(tmp, 'full'),
      });
      const dir = path.join(tmp, 'resume');
      const b = await Transformer.create(sizeConfig(size, vocab), { seed: 5, device });
      const controller = new AbortController();
      await new Trainer(b, trainCfg)
        .fit(train, {
          evalEvery: 8,
          dir,
          progressSeconds: 0.001,
          signal: controller.signal,
          onProgress: (p) => p.step >= 6 && controller.abort(),
        })
        .then(
          () => {
            throw new Error('the run was not aborted');
          },
          (e) => {
            if (!(e instanceof AbortError)) throw e;
          },
        );
      const stoppedAt = (JSON.parse(fs.readFileSync(path.join(dir, 'trainer.json'), 'utf8')) as { step: number }).step;
      b.dispose();
      const rest = await new Trainer(await Transformer.create(sizeConfig(size, vocab), { seed: 99, device }), trainCfg).fit(train, {
        evalEvery: 8,
        dir,
      });
      const want = trainRecords(full.history)
        .filter((h) => h.step > stoppedAt)
        .map((h) => h.loss);
      const got = trainRecords(rest.history)
        .filter((h) => h.step > stoppedAt)
        .map((h) => h.loss);
      assert(got.length === want.length && got.length > 0, `${got.length} steps after the resume, expected ${want.length}`);
      const d = Math.max(...got.map((l, i) => Math.abs(l - want[i])));
      assert(d < 1e-5, `losses after step ${stoppedAt} differ by up to ${d}`);
      return { detail: `stopped at ${stoppedAt}, ${got.length} steps after it within ${d.toExponential(2)}` };
    },
  });

  // 4. Throughput: the GPU-sized model first, then the small ones; fp32 with TF32 off last (the slowest row).
  type RowSpec = { size: Size; precision: Precision; tf32?: 'on' | 'off'; batch: number | 'fill' };
  const rows: RowSpec[] = gpu
    ? [
        { size: XL, precision: 'bf16', batch: 'fill' },
        { size: MEDIUM, precision: 'bf16', batch: 64 },
        { size: MEDIUM, precision: 'fp32', tf32: 'off', batch: 64 },
        { size: LARGE, precision: 'bf16', batch: 64 },
        { size: LARGE, precision: 'fp32', tf32: 'off', batch: 64 },
        { size: XL, precision: 'fp32', tf32: 'on', batch: 'fill' },
        { size: XL, precision: 'fp32', tf32: 'off', batch: 'fill' },
      ]
    : [
        { size: XL, precision: 'bf16', batch: 'fill' },
        { size: TINY, precision: 'fp32', batch: 8 },
      ];
  // NVIDIA_TF32_OVERRIDE=0 makes cuBLAS refuse TF32 whatever libtorch asks: such a row says so.
  const tf32Refused = process.env.NVIDIA_TF32_OVERRIDE === '0';
  for (const spec of rows) {
    const label =
      spec.precision !== 'fp32' || !gpu
        ? spec.precision
        : spec.tf32 === 'on' && tf32Refused
          ? 'fp32 (TF32 asked, refused by NVIDIA_TF32_OVERRIDE=0)'
          : `fp32 (TF32 ${spec.tf32})`;
    checks.push({
      id: `table-${spec.size.name}-${spec.precision}${spec.tf32 ? `-tf32-${spec.tf32}` : ''}`,
      name: `throughput ${spec.size.name} (d${spec.size.dModel}, ${spec.size.layers} layers, T ${seqLen(spec.size)}) ${label}`,
      limit: spec.size === XL ? 60 : 30,
      limitDry: 180,
      tf32: spec.tf32,
      skip: !gpu && spec.size === XL ? `${NO_GPU}: d1024 x 12 layers at T 512 with the batch that fills a GPU's memory` : undefined,
      run: () => throughputRow(ctx, spec.size, spec.precision, label, spec.batch),
    });
  }

  // 5. Inference and compression on the device.
  checks.push({
    id: 'compress',
    name: `predict, fillMask, prune, quantize (QAT) on ${device}`,
    limit: 40,
    limitDry: 240,
    run: async () => {
      const { train, valid, vocab } = data();
      const model = await Transformer.create(sizeConfig(size, vocab), { seed: 2, device });
      await new Trainer(model, { maxSteps: 10, batchSize, lr: 1e-3, precision: 'fp32' }).fit(train, { evalEvery: 100 });
      const logits = await model.predict(ids(vocab));
      assert(logits.dims.join() === [2, 40, vocab].join(), `predict dims ${logits.dims.join()}`);
      const masks = await model.fillMask(ids(vocab), { topK: 3 });
      assert(
        masks.length === 2 && masks.every((m) => m.ids.length === 3 && m.probs[0] >= m.probs[2]),
        `fillMask: ${JSON.stringify(masks)}`,
      );
      const pruned = await prune(model, { sparsity: 0.5 });
      const q = await quantize(pruned, {
        bits: 4,
        method: 'qat',
        train: { data: train, config: { maxSteps: 5, batchSize, lr: 1e-4, precision: 'fp32' } },
      });
      const before = await pruned.evaluate(valid, { maxSamples: 64 });
      const after = await q.evaluate(valid, { maxSamples: 64 });
      assert(Number.isFinite(after.loss), `QAT model's validation loss is ${after.loss}`);
      const c = q.compression;
      const quantized = Object.values(c.quantized),
        pruned50 = Object.values(c.pruned);
      assert(quantized.length > 0 && quantized.every((x) => x.bits === 4), `quantized: ${JSON.stringify(c.quantized)}`);
      assert(pruned50.length > 0 && pruned50.every((x) => Math.abs(x.sparsity - 0.5) < 0.01), `pruned: ${JSON.stringify(c.pruned)}`);
      [model, pruned, q].forEach((m) => m.dispose());
      return { detail: `valid loss pruned ${before.loss.toFixed(3)}, pruned + 4-bit QAT ${after.loss.toFixed(3)}` };
    },
  });
  if (gpu) {
    checks.push({
      id: 'int8-refused',
      name: 'toInt8 on a GPU model is refused clearly',
      limit: 20,
      limitDry: 60,
      run: async () => {
        const { vocab } = data();
        const model = await Transformer.create(sizeConfig(size, vocab, 'classify'), { seed: 2, device: 'cuda' });
        const err = await toInt8(model).then(
          () => null,
          (e: Error) => e,
        );
        model.dispose();
        assert(err && /cpu/i.test(err.message), `toInt8 on cuda: ${err ? err.message : 'no error'}`);
        return { detail: err.message };
      },
    });
  } else {
    checks.push({
      id: 'cuda-refused',
      name: `device 'cuda' is refused clearly on this machine`,
      limit: 20,
      limitDry: 60,
      run: async () => {
        const { vocab } = data();
        const err = await Transformer.create(sizeConfig(size, vocab), { device: 'cuda' }).then(
          () => null,
          (e: Error) => e,
        );
        const want = info.cudaBuilt ? /no CUDA device is visible/ : /CPU-only libtorch/;
        assert(err && want.test(err.message), `Transformer.create on cuda: ${err ? err.message : 'no error'}`);
        return { detail: err.message };
      },
    });
  }

  // 6. Data-parallel: 2 ranks with batch B reach the logits of one process with 2B (3 steps, fp32). NCCL needs a
  // GPU per rank; on one GPU the ranks share it through Gloo's CUDA path. Short: it is the last thing to learn.
  const gloo = info.distributedBackends.includes('gloo');
  const ncclBuilt = info.distributedBackends.includes('nccl');
  const noGloo =
    'this build has no gloo, so no data-parallel training: its headers were not found when it was built ' +
    '(.gpu-check/include/gloo from the pack, GLOO_INCLUDE, or Debian’s libgloo-dev)';
  const backends: Array<{ backend: 'auto' | 'gloo' | 'nccl'; skip?: string }> = !gpu
    ? [{ backend: 'auto', skip: gloo ? undefined : noGloo }]
    : [
        {
          backend: 'nccl',
          skip: !gloo
            ? noGloo
            : !ncclBuilt
              ? 'this build has no NCCL (no nccl.h beside the CUDA torch when it was built)'
              : info.cudaDevices < 2
                ? `NCCL needs a GPU per rank; ${info.cudaDevices} GPU visible`
                : undefined,
        },
        { backend: 'gloo', skip: gloo ? undefined : noGloo },
      ];
  for (const { backend, skip } of backends) {
    checks.push({
      id: `data-parallel-${backend}`,
      name: `data-parallel on ${device}: 2 ranks (${backend}) reach the logits of one process at twice the batch`,
      limit: 45,
      limitDry: 300,
      skip,
      run: async () => {
        const child: DistChild = { data: dataDir, size, device, backend, batchSize: 4, steps: 3, save: path.join(tmp, `dist-${backend}`) };
        const cli = path.join(__dirname, '..', 'lib', 'cli.js');
        const args = [
          'launch',
          '--nproc',
          '2',
          '--master',
          `127.0.0.1:${await freePort()}`,
          __filename,
          '--',
          '--dist-child',
          JSON.stringify(child),
        ];
        const launched = await runProcess(process.execPath, [cli, ...args], process.env, undefined, 600);
        const output = launched.output.trim().split('\n').slice(-3).join(' / ');
        assert(launched.code === 0, `trainlarge launch exited ${launched.code ?? launched.signal}: ${output}`);
        const alone = await trainDistChild({ ...child, backend: undefined, batchSize: 8, save: path.join(tmp, `alone-${backend}`) });
        const ranks = await Transformer.load(child.save, { device });
        const { vocab } = data();
        const d = maxAbsDiff((await alone.predict(ids(vocab))).data, (await ranks.predict(ids(vocab))).data);
        alone.dispose();
        ranks.dispose();
        const bound = gpu ? 1e-3 : 1e-4;
        assert(d < bound, `logits differ by ${d} (bound ${bound})`);
        return { detail: `max abs diff ${d.toExponential(2)}` };
      },
    });
  }
  return checks;
}

/** Bytes of GPU memory one sequence of the size costs in training (activations; a deliberate overestimate). */
function bytesPerSequence(s: Size, precision: Precision): number {
  // ~56 bytes per token, layer and unit of width under bf16 autocast (residual stream in fp32, the linear
  // layers' inputs and outputs, the MLP's 4d activations, dropout masks), ~96 in fp32.
  return s.layers * s.dModel * (precision === 'fp32' ? 96 : 56) * seqLen(s);
}

/** The batch that fills most of the first GPU's free memory, in multiples of 8 (8 at least). */
function fillBatch(ctx: Ctx, s: Size, vocab: number, precision: Precision): number {
  const free = ctx.preflight.python?.gpus?.[0]?.freeBytes ?? 0;
  const params = s.layers * 12 * s.dModel * s.dModel + (vocab + seqLen(s)) * s.dModel;
  // Weights, gradients and AdamW's two moments in fp32, plus autocast's bf16 copies.
  const fixed = params * 18;
  const b = Math.floor((0.8 * free - fixed) / bytesPerSequence(s, precision) / 8) * 8;
  return Math.max(8, Math.min(b, 512));
}

/** One row of the table: warm-up steps, then timed ones (each synchronized by the engine); medians. */
async function throughputRow(ctx: Ctx, s: Size, precision: Precision, label: string, batch: number | 'fill'): Promise<Outcome> {
  const { train, vocab } = corpusData(ctx.dataDir, seqLen(s));
  let B = batch === 'fill' ? fillBatch(ctx, s, vocab, precision) : batch;
  const notes: string[] = [];
  for (let attempt = 0; ; attempt++) {
    const model = await Transformer.create(sizeConfig(s, vocab), { seed: 1, device: ctx.device });
    // The CPU's first steps (allocations, oneDNN's kernels) take 10-20x a later one: 3 warm-up steps either way.
    const warm = 3;
    const timed = ctx.gpu ? 10 : 6;
    const trainer = new Trainer(model, { maxSteps: warm + timed, batchSize: B, lr: 5e-4, precision, seed: 1 });
    try {
      const r = await trainer.fit(train, { evalEvery: 1e9 });
      const recs = trainRecords(r.history).slice(warm);
      const sec = median(recs.map((h) => h.seconds));
      const dataSec = median(recs.map((h) => h.dataSeconds));
      const tokens = recs[0].tokens;
      const flops = mlmStepFlops({ dModel: s.dModel, layers: s.layers, vocab, maxLen: seqLen(s), maskProb: 0.15 }, tokens);
      const tflops = flops / sec / 1e12;
      const key: PeakKey =
        precision === 'bf16'
          ? 'bf16'
          : precision === 'fp16'
            ? 'fp16'
            : label.includes('TF32 on') && ctx.peak.tf32Effective
              ? 'tf32'
              : 'fp32';
      const row: Row = {
        model: `${s.name} (d${s.dModel}, ${s.layers} layers)`,
        precision: label,
        batch: B,
        T: seqLen(s),
        ms: sec * 1000,
        dataMs: dataSec * 1000,
        tokensPerSec: tokens / sec,
        tflops,
        peak: ctx.peak.measured?.[key],
        datasheet: ctx.peak.datasheet?.[key],
        note: notes.join('; ') || undefined,
      };
      return {
        detail: `${(sec * 1000).toFixed(1)} ms/step at ${B} x ${seqLen(s)}, ${fmt(tflops, tflops < 1 ? 4 : 2)} model TFLOP/s${notes.length ? ` (${notes.join('; ')})` : ''}`,
        row,
      };
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (batch !== 'fill' || !/out of memory/i.test(message) || attempt >= 3 || B <= 8) throw e;
      notes.push(`batch ${B} ran out of memory`);
      B = Math.max(8, Math.floor(B / 2 / 8) * 8);
    } finally {
      trainer.dispose();
      model.dispose();
    }
  }
}

/**
 * Runs a process; at `limit` seconds sends SIGTERM (`trainlarge launch` passes it to its ranks), SIGKILL 3 s
 * later. With `group`, the process leads a process group of its own and the signals go to the whole group (a
 * check's child and the launcher it started). Output to the file `log`, else returned.
 */
function runProcess(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  log: string | undefined,
  limit: number,
  group = false,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean; output: string }> {
  return new Promise((resolve) => {
    const fd = log ? fs.openSync(log, 'w') : undefined;
    const child = spawn(cmd, args, { env, detached: group, stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'] });
    let output = '';
    child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
    let timedOut = false;
    const signal = (s: NodeJS.Signals) => {
      try {
        if (group) process.kill(-child.pid!, s);
        else child.kill(s);
      } catch {
        // already gone
      }
    };
    let killer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      signal('SIGTERM');
      killer = setTimeout(() => signal('SIGKILL'), 3000);
    }, limit * 1000);
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      if (killer) clearTimeout(killer);
      if (fd !== undefined) fs.closeSync(fd);
      resolve({ code, signal: sig, timedOut, output });
    });
  });
}

interface Result {
  id: string;
  name: string;
  status: 'ok' | 'fail' | 'skip' | 'timeout';
  seconds: number;
  limit?: number;
  detail: string;
  row?: Row;
}

const tail = (file: string, n: number) =>
  fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').slice(-n).join(' / ') : '';

function readJson<T>(file: string, fallback: T): T {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return fallback;
  }
}

function fmt(x: number | undefined, digits: number): string {
  return x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
}

function tableLines(rows: Row[], peak: Peak): string[] {
  const pct = (v: number, of?: number) => (of ? `${((100 * v) / of).toFixed(1)}% of ${of < 10 ? of.toFixed(3) : of.toFixed(0)}` : 'n/a');
  return [
    '| model | precision | batch x T | ms / step (median, synchronized) | waiting for data, ms (median) | tokens/s | model TFLOP/s | of the measured GEMM peak (TFLOP/s) | of the datasheet (TFLOP/s) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.model} | ${r.precision} | ${r.batch} x ${r.T} | ${fmt(r.ms, 1)} | ${fmt(r.dataMs, 1)} | ${Math.round(r.tokensPerSec)} | ` +
        `${fmt(r.tflops, r.tflops < 1 ? 4 : 2)} | ${pct(r.tflops, r.peak)} | ${pct(r.tflops, r.datasheet)} |${r.note ? ` ${r.note}` : ''}`,
    ),
    '',
    `GEMM peak: ${peak.reps ?? '?'} multiplies of ${peak.n ?? '?'} x ${peak.n ?? '?'} per dtype on ${peak.device ?? 'unknown'}, timed with ${peak.method ?? 'nothing (not measured)'}; ` +
      `datasheet: ${peak.datasheet ? `NVIDIA's dense figure for ${peak.datasheet.matched}` : 'n/a'}. ` +
      'medium and large: dropout 0.1 (attention computed explicitly for its dropout); xl: attention dropout 0 (fused attention), dropout 0.1 elsewhere.',
  ];
}

async function main(): Promise<void> {
  if (arg('--dist-child')) {
    (await trainDistChild(JSON.parse(arg('--dist-child')!) as DistChild)).dispose();
    return;
  }
  const dry = process.argv.includes('--dry-run');
  const dataDir = arg('--data');
  const results = path.resolve(arg('--results') ?? path.join(os.tmpdir(), 'trainlarge-gpu-check-results'));
  const info = engineInfo();
  const only = arg('--check');
  if (!only) {
    console.log(
      `gpu-check: libtorch ${info.torchVersion}; CUDA built: ${info.cudaBuilt ? 'yes' : 'no'}, available: ` +
        `${info.cudaAvailable ? `yes (${info.cudaDevices} device(s))` : 'no'}; distributed backends: ${info.distributedBackends.join(', ') || 'none'}; ` +
        `Node ${process.version}; ${os.cpus().length} CPU threads`,
    );
  }
  if (!info.cudaAvailable && !dry) {
    console.log('gpu-check: no CUDA device visible');
    return;
  }
  if (!dataDir) throw new Error('gpu-check: --data CORPUS_DIR is required (scripts/gpu-check passes the packed corpus)');
  const gpu = info.cudaAvailable;
  const ctx: Ctx = {
    dry,
    gpu,
    device: gpu ? 'cuda' : 'cpu',
    info,
    dataDir,
    results,
    preflight: readJson<Preflight>(path.join(results, 'preflight.json'), {}),
    peak: readJson<Peak>(path.join(results, 'peak.json'), {}),
    tmp: arg('--tmp') ?? '',
  };

  // A child: one check, its result written to --result-file (the parent prints it).
  if (only) {
    const check = plan(ctx).find((c) => c.id === only);
    if (!check) throw new Error(`gpu-check: no check '${only}'`);
    const t0 = Date.now();
    let result: Result;
    try {
      const o = await check.run();
      result = { id: check.id, name: check.name, status: 'ok', seconds: (Date.now() - t0) / 1000, detail: o.detail, row: o.row };
    } catch (e) {
      result = {
        id: check.id,
        name: check.name,
        status: 'fail',
        seconds: (Date.now() - t0) / 1000,
        detail: e instanceof Error ? e.message : String(e),
      };
    }
    fs.writeFileSync(arg('--result-file')!, JSON.stringify(result, null, 2) + '\n');
    return;
  }

  const budget = Number(arg('--budget') ?? (gpu ? 240 : 900));
  fs.mkdirSync(path.join(results, 'checks'), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trainlarge-gpu-check-'));
  const selected = arg('--only');
  const checks = plan({ ...ctx, tmp }).filter((c) => !selected || new RegExp(selected).test(c.id));
  const m = ctx.peak.measured ?? {};
  const ds = ctx.peak.datasheet;
  console.log(
    `gpu-check: GEMM peak (TFLOP/s; ${ctx.peak.reps ?? '?'} multiplies of ${ctx.peak.n ?? '?'}², ${ctx.peak.method ?? 'not measured'}): ` +
      (gpu
        ? `fp32 (TF32 off) ${fmt(m.fp32, 1)}, fp32 (TF32 on${ctx.peak.tf32Effective === false ? ', refused by NVIDIA_TF32_OVERRIDE=0' : ''}) ${fmt(m.tf32, 1)}, ` +
          `bf16 ${fmt(m.bf16, 1)}, fp16 ${fmt(m.fp16, 1)}; datasheet ${ds ? `(${ds.matched}, dense): fp32 ${ds.fp32}, tf32 ${ds.tf32}, bf16 ${ds.bf16}, fp16 ${ds.fp16}` : 'n/a (unknown GPU)'}`
        : `fp32 ${fmt(m.fp32, 3)} on the CPU; TF32 and the datasheet: n/a (no GPU)`),
  );
  console.log(
    `gpu-check: plan: ${checks.length} checks in order of value, each in its own process with its own limit, ${budget} s for all: ` +
      checks.map((c) => `${c.id} ${c.skip ? 'skip' : `${dry ? c.limitDry : c.limit} s`}`).join(', '),
  );

  const done: Result[] = [];
  const deadline = Date.now() + budget * 1000;
  const writeSummary = () => {
    const count = (s: Result['status']) => done.filter((r) => r.status === s).length;
    fs.writeFileSync(
      path.join(results, 'summary.json'),
      JSON.stringify(
        {
          passed: count('ok'),
          failed: count('fail') + count('timeout'),
          skipped: count('skip'),
          budget,
          planned: checks.map((c) => c.id),
          results: done,
        },
        null,
        2,
      ) + '\n',
    );
  };
  for (const [i, c] of checks.entries()) {
    const base = path.join(results, 'checks', `${String(i + 1).padStart(2, '0')}-${c.id}`);
    const left = Math.floor((deadline - Date.now()) / 1000);
    let r: Result;
    if (c.skip || left < 5) {
      r = { id: c.id, name: c.name, status: 'skip', seconds: 0, detail: c.skip ?? `the checks' budget (${budget} s) is spent` };
      console.log(`skip ${c.name}: ${r.detail}`);
    } else {
      const limit = Math.min(dry ? c.limitDry : c.limit, left);
      const env = { ...process.env };
      if (c.tf32 === 'on') env.TORCH_ALLOW_TF32_CUBLAS_OVERRIDE = '1';
      else delete env.TORCH_ALLOW_TF32_CUBLAS_OVERRIDE;
      const resultFile = `${base}.json`;
      fs.rmSync(resultFile, { force: true });
      const args = [
        __filename,
        '--check',
        c.id,
        '--data',
        ctx.dataDir,
        '--results',
        results,
        '--result-file',
        resultFile,
        '--tmp',
        tmp,
        ...(dry ? ['--dry-run'] : []),
      ];
      const t0 = Date.now();
      const p = await runProcess(process.execPath, args, env, `${base}.log`, limit, true);
      const seconds = (Date.now() - t0) / 1000;
      const written = readJson<Result | null>(resultFile, null);
      r = written
        ? { ...written, seconds, limit }
        : {
            id: c.id,
            name: c.name,
            status: p.timedOut ? 'timeout' : 'fail',
            seconds,
            limit,
            detail: p.timedOut
              ? `killed at its limit of ${limit} s; last output: ${tail(`${base}.log`, 3) || 'none'}`
              : `exited ${p.code ?? p.signal} without a result: ${tail(`${base}.log`, 3)}`,
          };
      const tag = r.status === 'ok' ? 'ok  ' : r.status === 'timeout' ? 'TIME' : 'FAIL';
      console.log(`${tag} ${c.name} (${seconds.toFixed(1)} s of ${limit}): ${r.detail}`);
    }
    fs.writeFileSync(`${base}.json`, JSON.stringify(r, null, 2) + '\n');
    done.push(r);
    writeSummary();
  }

  const rows = done.filter((r) => r.row).map((r) => r.row!);
  const table = tableLines(rows, ctx.peak);
  fs.writeFileSync(path.join(results, 'table.md'), table.join('\n') + '\n');
  console.log('');
  table.forEach((l) => console.log(l));
  console.log('');
  fs.rmSync(tmp, { recursive: true, force: true });
  const failed = done.filter((r) => r.status === 'fail' || r.status === 'timeout').length;
  const skipped = done.filter((r) => r.status === 'skip').length;
  console.log(`gpu-check: ${done.length - failed - skipped} passed, ${failed} failed, ${skipped} skipped`);
  if (failed) process.exitCode = 1;
}

runMain(main);
