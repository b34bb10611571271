import {
  Int8Options,
  Int8OptionsSchema,
  PruneOptions,
  PruneSchema,
  PruneSettings,
  QuantizeOptions,
  QuantizeSchema,
} from '../config/compress';
import { parseModelConfig } from '../config/model';
import { parseConfig } from '../config/parse';

export {
  INT8_ENGINES,
  Int8Engine,
  Int8Options,
  PruneOptions,
  PruneSettings,
  PruneStructure,
  QuantizeOptions,
  QuantizeSettings,
} from '../config/compress';
import { TrainConfigInput } from '../config/train';
import { TrainingData } from '../data/dataset';
import { modelInternals, Transformer } from '../model';
import type { CompressionState } from '../types';
import { FitOptions, FitResult, Trainer } from '../train/trainer';

/** Fine-tuning that runs inside prune (gradual) or quantize (qat). */
export interface CompressionTraining {
  data: TrainingData;
  /** Trainer config; maxSteps is the length of the fine-tuning. */
  config: TrainConfigInput;
  fit?: Omit<FitOptions, 'signal'> & { signal?: AbortSignal };
}

async function fineTune(model: Transformer, train: CompressionTraining | undefined, what: string): Promise<FitResult | undefined> {
  if (!train) return undefined;
  const trainer = new Trainer(model, train.config);
  try {
    return await trainer.fit(train.data, { ...train.fit });
  } catch (e) {
    throw new Error(`${what}: fine-tuning failed: ${(e as Error).message}`);
  } finally {
    trainer.dispose();
  }
}

/**
 * Magnitude pruning (unstructured, smallest |w| first) of the Transformer's weight matrices, as
 * torch.nn.utils.prune's l1_unstructured (scope 'layer') or global_unstructured (scope 'global').
 * Pruned weights stay zero through any later training: the trainer re-applies the masks after every
 * optimizer update. 'gradual' attaches the schedule; pruning then happens during fine-tuning: the next
 * Trainer.fit on the model, or `train` here. Returns a pruned copy unless inPlace.
 *
 * Structured (`structure` 'heads', 'ffn' or 'heads+ffn'): returns a new, smaller dense model without the
 * round(sparsity x heads) heads and/or round(sparsity x ffn) feed-forward units of least L2 norm in every
 * layer; it computes what the original computes with those units zeroed, and `train` fine-tunes it.
 */
export async function prune(model: Transformer, options: PruneOptions & { train?: CompressionTraining }): Promise<Transformer> {
  const { train, ...rest } = options;
  const o = parseConfig(PruneSchema, rest, 'prune options');
  if (o.schedule === 'gradual' && train && o.endStep! > Number(train.config.maxSteps ?? 0)) {
    throw new RangeError(`prune: endStep (${o.endStep}) is beyond the fine-tuning's maxSteps (${train.config.maxSteps})`);
  }
  const structured = o.structure !== 'unstructured';
  const target = structured ? await removeUnits(model, o) : o.inPlace ? model : await model.clone();
  try {
    const t = modelInternals(target);
    if (!structured) await t.run(() => t.handle.prune(o));
    await fineTune(target, train, 'prune');
  } catch (e) {
    if (structured || !o.inPlace) target.dispose();
    throw e;
  }
  return target;
}

/** Structured pruning: the engine builds the smaller model; its config differs in heads, headDim and ffn. */
async function removeUnits(model: Transformer, o: PruneSettings): Promise<Transformer> {
  const m = modelInternals(model);
  const r = await m.run(() => m.handle.pruneStructured(o));
  const smaller = m.derive(r.model, parseModelConfig({ ...model.config, heads: r.heads, headDim: r.headDim, ffn: r.ffn }));
  smaller.tokenizer = model.tokenizer;
  return smaller;
}

/**
 * Uniform k-bit weight quantization of the Transformer's weight matrices, per output channel or per
 * tensor, symmetric or asymmetric (ranges as PyTorch's min/max observers; values as its fake-quant op).
 * 'qat' then fine-tunes with `train`: forward and backward see the quantized weights, the optimizer
 * updates full-precision copies (straight-through estimator) and the weights are re-quantized after each
 * update. Quantizing a quantized model is an error. Returns a quantized copy unless inPlace.
 */
export async function quantize(model: Transformer, options: QuantizeOptions & { train?: CompressionTraining }): Promise<Transformer> {
  const { train, ...rest } = options;
  const o = parseConfig(QuantizeSchema, rest, 'quantize options');
  if (o.method === 'qat' && !train) throw new TypeError("quantize: method 'qat' needs train: { data, config } to fine-tune with");
  if (o.method === 'ptq' && train) throw new TypeError("quantize: method 'ptq' does not train; use method 'qat' to fine-tune");
  const already = Object.keys(model.compression.quantized);
  if (already.length > 0) {
    throw new Error(
      `quantize: the model is already quantized (${already.length} weights, e.g. '${already[0]}' at ` +
        `${model.compression.quantized[already[0]].bits} bits); quantize the full-precision model instead`,
    );
  }
  const target = o.inPlace ? model : await model.clone();
  try {
    const t = modelInternals(target);
    await t.run(() => t.handle.quantize(o));
    await fineTune(target, train, 'quantize');
  } catch (e) {
    if (!o.inPlace) target.dispose();
    throw e;
  }
  return target;
}

export interface CompressedSize {
  /** Bytes of model.safetensors as save() writes it: what the model costs to store and ship. */
  bytes: number;
  /** Of which the length prefix and JSON header. */
  headerBytes: number;
  /** Data bytes per model tensor (a compressed one: its codes, mask, values, scales, zero points). */
  tensors: Record<string, number>;
}

/** The exact size of the file save() writes for this model (packed when it is compressed). */
export async function compressedSize(model: Transformer): Promise<CompressedSize> {
  const m = modelInternals(model);
  const r = await m.run(() => m.handle.packedSize(m.fileMetadata()));
  return { bytes: r.fileBytes, headerBytes: r.headerBytes, tensors: r.tensors };
}

/**
 * The data bytes of the Transformer layers alone (every tensor under `layers.N.`, an encoder's and a decoder's:
 * attention, FFN, their LayerNorms and biases): the file less its header, the embeddings and the heads. The
 * paper's compression figures count these; a small model's file is mostly its embedding.
 */
export function layerBytes(size: CompressedSize): number {
  let sum = 0;
  for (const [name, bytes] of Object.entries(size.tensors)) if (/(^|\.)layers\.\d+\./.test(name)) sum += bytes;
  return sum;
}

/** The parts of a model a size is reported by (the same parts compression targets select). */
export type ModelPart = 'token embeddings' | 'position embeddings' | 'attention' | 'ffn' | 'other';

/** Which part a tensor belongs to: the token embedding (also the tied output projection), positions, the attention and FFN weight matrices, the rest (LayerNorm, biases, heads). */
export function partOf(tensor: string): ModelPart {
  if (/(^|\.)tokens\.weight$/.test(tensor)) return 'token embeddings';
  if (/(^|\.)positions\.weight$/.test(tensor)) return 'position embeddings';
  if (/\.(attn|cross|self_attn|cross_attn)\.[a-z_]+\.weight$/.test(tensor)) return 'attention';
  if (/\.ffn\.fc\d\.weight$/.test(tensor)) return 'ffn';
  return 'other';
}

/**
 * A model's file bytes by part, and how each part was compressed ('pruned 50%', '4-bit', both, or undefined when
 * it was left as it was): what `trainlarge compress` and the compression reports state, so a reader sees whether
 * the embeddings (often most of a small model) were compressed at all.
 */
export function bytesByPart(
  size: CompressedSize,
  compression: CompressionState,
): { part: ModelPart; bytes: number; tensors: number; compressed?: string }[] {
  const parts = new Map<ModelPart, { bytes: number; tensors: number; how: Set<string> }>();
  for (const [name, bytes] of Object.entries(size.tensors)) {
    const part = partOf(name);
    const p = parts.get(part) ?? { bytes: 0, tensors: 0, how: new Set<string>() };
    p.bytes += bytes;
    p.tensors++;
    const pruned = compression.pruned[name];
    const quant = compression.quantized[name];
    if (pruned) p.how.add(`pruned ${Math.round(pruned.sparsity * 100)}%`);
    if (quant) p.how.add(`${quant.bits}-bit`);
    parts.set(part, p);
  }
  const order: ModelPart[] = ['token embeddings', 'position embeddings', 'attention', 'ffn', 'other'];
  return order
    .filter((p) => parts.has(p))
    .map((part) => {
      const p = parts.get(part)!;
      return { part, bytes: p.bytes, tensors: p.tensors, ...(p.how.size ? { compressed: [...p.how].join(', ') } : {}) };
    });
}

/**
 * The paper's analysis: for each weight matrix, how far compression moved it, ||W - C(W)|| / ||W||
 * against the uncompressed `reference` (the same model before pruning or quantization).
 */
export async function weightErrors(compressed: Transformer, reference: Transformer): Promise<Record<string, number>> {
  if (compressed === reference) throw new TypeError('weightErrors: the reference must be another model (the uncompressed original)');
  const c = modelInternals(compressed),
    r = modelInternals(reference);
  return c.run(() => r.run(() => c.handle.weightErrors(r.handle)));
}

/**
 * A copy whose attention and feed-forward Linear layers (a translate model's decoder's too) run on
 * libtorch's int8 kernels (dynamic quantization: weights int8 per output channel, activations quantized
 * per call) for CPU inference. A model quantized
 * symmetrically keeps its exact grid; any other model is quantized to 8 bits here. Inference only:
 * fine-tune the model it came from. `engine`: one of INT8_ENGINES (Int8OptionsSchema, lib/config/compress.ts).
 */
export async function toInt8(model: Transformer, options: Int8Options = {}): Promise<Transformer> {
  const { engine } = parseConfig(Int8OptionsSchema, options, 'toInt8 options');
  if (model.device !== 'cpu') throw new Error("toInt8: libtorch's quantized kernels run on CPU only; load the model on 'cpu'");
  const m = modelInternals(model);
  const handle = await m.run(() => m.handle.toInt8(engine));
  const int8 = m.derive(handle);
  int8.tokenizer = model.tokenizer;
  return int8;
}
