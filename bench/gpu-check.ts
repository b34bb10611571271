/**
 * The GPU checks, run by `npm run gpu-check` (scripts/gpu-check builds the CUDA addon first; see README,
 * "Checking a GPU"). A plain script, not jest, so that a bare GPU machine needs only Node and this file's
 * compiled JavaScript.
 *
 *   node dist/bench/gpu-check.js --data CORPUS_DIR [--peak JSON] [--dry-run]
 *
 * --data: a prepared corpus's folder (its manifest.json and some of its train-NNNNN.tok / valid-NNNNN.tok shards).
 * --peak: GEMM peaks measured beside the check, {"fp32": TFLOP/s, "bf16": ..., "fp16": ...}, for MFU.
 * With a CUDA device visible: trains the medium MLM on cuda in fp32, bf16 and fp16, compares CPU and GPU
 * logits, moves checkpoints between GPU and CPU, resumes on the GPU, predicts, fills masks, prunes,
 * quantizes with QAT, refuses toInt8, trains data-parallel (2 ranks through `trainlarge launch`: NCCL where
 * there are 2 GPUs and the build has it, Gloo with CUDA tensors on one GPU), and prints tokens/s and MFU at
 * the medium and large sizes.
 * Without one it prints "gpu-check: no CUDA device visible" and exits 0, unless --dry-run: then it runs the
 * same checks that need no GPU, on the CPU and at a small size (the carry-and-build path's test).
 * Ends with "N passed, N failed"; exits 1 when a check failed.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { AbortError, engineInfo, MlmDataset, prune, quantize, toInt8, Trainer, Transformer, TokenizerLike } from '../lib';
import type { Precision, StepRecord } from '../lib';
import { median, mlmStepFlops, runMain } from './report';

interface Size {
  name: string;
  dModel: number;
  layers: number;
  heads: number;
}
const MEDIUM: Size = { name: 'medium', dModel: 256, layers: 4, heads: 4 };
const LARGE: Size = { name: 'large', dModel: 512, layers: 8, heads: 8 };
const TINY: Size = { name: 'tiny', dModel: 64, layers: 2, heads: 2 };
const T = 128;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The corpus's token shards as MLM data (no tokenizer library needed: ids only). */
function corpusData(dir: string): { train: MlmDataset; valid: MlmDataset; vocab: number } {
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
    train: MlmDataset.fromShards(shards('train'), tok, { maxLen: T }),
    valid: MlmDataset.fromShards(shards('valid'), tok, { maxLen: T }),
    vocab,
  };
}

const results: Array<{ name: string; ok: boolean; detail: string }> = [];

async function check(name: string, fn: () => Promise<string>): Promise<void> {
  const t0 = Date.now();
  try {
    const detail = await fn();
    results.push({ name, ok: true, detail });
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${detail}`);
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    results.push({ name, ok: false, detail });
    console.log(`FAIL ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${detail}`);
  }
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

async function main(): Promise<void> {
  if (arg('--dist-child')) {
    (await trainDistChild(JSON.parse(arg('--dist-child')!) as DistChild)).dispose();
    return;
  }
  const dry = process.argv.includes('--dry-run');
  const dataDir = arg('--data');
  const peak: Partial<Record<Precision, number>> = arg('--peak') ? (JSON.parse(arg('--peak')!) as Partial<Record<Precision, number>>) : {};
  const info = engineInfo();
  console.log(
    `gpu-check: libtorch ${info.torchVersion}; CUDA built: ${info.cudaBuilt ? 'yes' : 'no'}, available: ` +
      `${info.cudaAvailable ? `yes (${info.cudaDevices} device(s))` : 'no'}; Node ${process.version}; ${os.cpus().length} CPU threads`,
  );
  if (!info.cudaAvailable && !dry) {
    console.log('gpu-check: no CUDA device visible');
    return;
  }
  if (!dataDir) throw new Error('gpu-check: --data CORPUS_DIR is required (scripts/gpu-check passes the packed corpus)');
  const gpu = info.cudaAvailable;
  const device = gpu ? 'cuda' : 'cpu';
  const size = gpu ? MEDIUM : TINY;
  const steps = gpu ? 50 : 40;
  const batchSize = gpu ? 32 : 8;
  const { train, valid, vocab } = corpusData(dataDir);
  const config = (s: Size, task: 'mlm' | 'classify' = 'mlm') => ({
    task,
    vocabSize: vocab,
    maxLen: T,
    dModel: s.dModel,
    layers: s.layers,
    heads: s.heads,
  });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trainlarge-gpu-check-'));
  const ids = [Array.from({ length: 40 }, (_, i) => (i === 0 ? 1 : 5 + ((i * 7919) % (vocab - 5)))), [1, 50, 4, 70, 80, 4, 90]];

  // 1. Training in each precision: loss falls, nothing non-finite, fp16's skipped steps reported.
  const precisions: Precision[] = gpu ? ['fp32', 'bf16', 'fp16'] : ['fp32'];
  for (const precision of precisions) {
    await check(`train ${size.name} MLM ${steps} steps on ${device}, ${precision}`, async () => {
      const model = await Transformer.create(config(size), { seed: 1, device });
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
      return (
        `loss ${first.toFixed(3)} -> ${last.toFixed(3)}` +
        (precision === 'fp16' ? `; ${skipped} step(s) skipped by the loss scaler, scale now ${trainer.lossScale}` : '')
      );
    });
  }

  // 2. The same weights on CPU and GPU give the same logits.
  if (gpu) {
    await check('CPU and GPU logits agree (fp32, max abs diff < 1e-3)', async () => {
      const cpu = await Transformer.create(config(size), { seed: 3 });
      const dir = path.join(tmp, 'weights');
      await cpu.save(dir);
      const onGpu = await Transformer.load(dir, { device: 'cuda' });
      const d = maxAbsDiff((await cpu.predict(ids)).data, (await onGpu.predict(ids)).data);
      cpu.dispose();
      onGpu.dispose();
      assert(d < 1e-3, `max abs diff ${d}`);
      return `max abs diff ${d.toExponential(2)}`;
    });
  }

  // 3. Checkpoints: saved on the device, loaded on the CPU (and trained on from there); resume exact.
  const trainCfg = { maxSteps: 16, warmupSteps: 4, lr: 1e-3, batchSize, precision: 'fp32' as const, seed: 7 };
  await check(`a checkpoint saved on ${device} loads on the CPU and training continues there`, async () => {
    const dir = path.join(tmp, 'to-cpu');
    const model = await Transformer.create(config(size), { seed: 5, device });
    await new Trainer(model, { ...trainCfg, maxSteps: 8 }).fit(train, { dir, evalEvery: 8 });
    const onCpu = await Transformer.load(dir, { device: 'cpu' });
    const d = maxAbsDiff((await model.predict(ids)).data, (await onCpu.predict(ids)).data);
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
    return `logits within ${d.toExponential(2)}; steps 9-10 on the CPU, loss ${more.map((h) => h.loss.toFixed(3)).join(', ')}`;
  });
  await check(`resume on ${device} continues exactly (fp32, losses within 1e-5)`, async () => {
    const full = await new Trainer(await Transformer.create(config(size), { seed: 5, device }), trainCfg).fit(train, {
      evalEvery: 8,
      dir: path.join(tmp, 'full'),
    });
    const dir = path.join(tmp, 'resume');
    const b = await Transformer.create(config(size), { seed: 5, device });
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
    const rest = await new Trainer(await Transformer.create(config(size), { seed: 99, device }), trainCfg).fit(train, {
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
    return `stopped at ${stoppedAt}, ${got.length} steps after it within ${d.toExponential(2)}`;
  });

  // 4. Inference and compression on the device.
  await check(`predict, fillMask, prune, quantize (QAT) on ${device}`, async () => {
    const model = await Transformer.create(config(size), { seed: 2, device });
    await new Trainer(model, { maxSteps: 10, batchSize, lr: 1e-3, precision: 'fp32' }).fit(train, { evalEvery: 100 });
    const logits = await model.predict(ids);
    assert(logits.dims.join() === [2, 40, vocab].join(), `predict dims ${logits.dims.join()}`);
    const masks = await model.fillMask(ids, { topK: 3 });
    assert(masks.length === 2 && masks.every((m) => m.ids.length === 3 && m.probs[0] >= m.probs[2]), `fillMask: ${JSON.stringify(masks)}`);
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
    return `valid loss pruned ${before.loss.toFixed(3)}, pruned + 4-bit QAT ${after.loss.toFixed(3)}`;
  });
  if (gpu) {
    await check('toInt8 on a GPU model is refused clearly', async () => {
      const model = await Transformer.create(config(size, 'classify'), { seed: 2, device: 'cuda' });
      const err = await toInt8(model).then(
        () => null,
        (e: Error) => e,
      );
      model.dispose();
      assert(err && /cpu/i.test(err.message), `toInt8 on cuda: ${err ? err.message : 'no error'}`);
      return err.message;
    });
  } else {
    await check(`device 'cuda' is refused clearly on this machine`, async () => {
      const err = await Transformer.create(config(size), { device: 'cuda' }).then(
        () => null,
        (e: Error) => e,
      );
      const want = info.cudaBuilt ? /no CUDA device is visible/ : /CPU-only libtorch/;
      assert(err && want.test(err.message), `Transformer.create on cuda: ${err ? err.message : 'no error'}`);
      return err.message;
    });
  }

  // 5. Data-parallel: 2 ranks with batch B reach the logits of one process with 2B (3 steps, fp32). NCCL needs a
  // GPU per rank; on one GPU the ranks share it through Gloo's CUDA path.
  const nccl = gpu && info.cudaDevices >= 2 && info.distributedBackends.includes('nccl');
  const backends: Array<'auto' | 'gloo' | 'nccl'> = !gpu ? ['auto'] : nccl ? ['nccl', 'gloo'] : ['gloo'];
  for (const backend of backends) {
    await check(`data-parallel on ${device}: 2 ranks (${backend}) reach the logits of one process at twice the batch`, async () => {
      const child: DistChild = { data: dataDir, size, device, backend, batchSize: 4, steps: 3, save: path.join(tmp, `dist-${backend}`) };
      const cli = path.join(__dirname, '..', 'lib', 'cli.js');
      const launched = spawnSync(
        process.execPath,
        [
          cli,
          'launch',
          '--nproc',
          '2',
          '--master',
          `127.0.0.1:${await freePort()}`,
          __filename,
          '--',
          '--dist-child',
          JSON.stringify(child),
        ],
        { encoding: 'utf8', timeout: 300_000 },
      );
      const output = `${launched.stdout}${launched.stderr}`.trim().split('\n').slice(-3).join(' / ');
      assert(launched.status === 0, `trainlarge launch exited ${launched.status ?? launched.signal}: ${output}`);
      const alone = await trainDistChild({ ...child, backend: undefined, batchSize: 8, save: path.join(tmp, `alone-${backend}`) });
      const ranks = await Transformer.load(child.save, { device });
      const d = maxAbsDiff((await alone.predict(ids)).data, (await ranks.predict(ids)).data);
      alone.dispose();
      ranks.dispose();
      const bound = gpu ? 1e-3 : 1e-4;
      assert(d < bound, `logits differ by ${d} (bound ${bound})`);
      return `max abs diff ${d.toExponential(2)}${gpu && !nccl ? `; NCCL not checked (${info.cudaDevices} GPU, NCCL built: ${info.distributedBackends.includes('nccl')})` : ''}`;
    });
  }

  // 6. Throughput and model FLOP utilisation.
  const rows: string[] = [];
  await check('throughput table', async () => {
    for (const s of gpu ? [MEDIUM, LARGE] : [TINY]) {
      for (const precision of gpu ? (['fp32', 'bf16'] as Precision[]) : (['fp32'] as Precision[])) {
        const B = gpu ? 64 : 8;
        const model = await Transformer.create(config(s), { seed: 1, device });
        const warm = gpu ? 5 : 2;
        const timed = gpu ? 20 : 4;
        const r = await new Trainer(model, { maxSteps: warm + timed, batchSize: B, lr: 5e-4, precision, seed: 1 }).fit(train, {
          evalEvery: 1e9,
        });
        const recs = trainRecords(r.history).slice(warm);
        const sec = median(recs.map((h) => h.seconds));
        const tokens = recs[0].tokens;
        const flops = mlmStepFlops({ dModel: s.dModel, layers: s.layers, vocab, maxLen: T, maskProb: 0.15 }, tokens);
        const tflops = flops / sec / 1e12;
        const p = peak[precision];
        rows.push(
          `| ${s.name} (d${s.dModel}, ${s.layers} layers) | ${precision} | ${B} x ${T} | ${(sec * 1000).toFixed(1)} | ${Math.round(tokens / sec)} | ` +
            `${tflops.toFixed(2)} | ${p ? `${((100 * tflops) / p).toFixed(1)}% of ${p.toFixed(0)}` : 'n/a'} |`,
        );
        model.dispose();
      }
    }
    return `${rows.length} rows`;
  });
  console.log('');
  console.log(
    '| model | precision | batch x tokens | ms / step (median) | tokens/s | model TFLOP/s | MFU (of the measured GEMM peak, TFLOP/s) |',
  );
  console.log('|---|---|---|---|---|---|---|');
  rows.forEach((r) => console.log(r));
  console.log('');
  fs.rmSync(tmp, { recursive: true, force: true });
  const failed = results.filter((r) => !r.ok).length;
  console.log(`gpu-check: ${results.length - failed} passed, ${failed} failed`);
  if (failed) process.exitCode = 1;
}

runMain(main);
