// trainlarge's encoder (native/models/transformer.cc) as an ONNX graph, opset 17, operator for operator in
// the order of the engine's forward: token + learned position embeddings (positions from 0), the embedding
// LayerNorm (post-LN), blocks post-LN or pre-LN (+ the final LayerNorm), attention with the padding mask as
// an additive -1e9 key bias, exact (erf) GELU, and the head: the masked-LM head (dense -> GELU -> LayerNorm ->
// the tied token embedding + bias) on every position, or the classification head (dense -> tanh -> out) on
// the first token. The hidden states stay (batch x sequence, dModel) between blocks, so every Linear layer is
// one Gemm (or, int8, one DynamicQuantizeLinear + MatMulInteger that ONNX Runtime fuses into its
// DynamicQuantizeMatMul kernel), with the weights as the engine stores them. (The (batch, sequence, dModel)
// layout with MatMul + Add, as torch.onnx writes Linear, lets ONNX Runtime 1.31 fuse BiasGelu but ran a
// medium classifier's fp32 8x128 about 9% slower there, and int8 no faster.)
import { ModelConfig } from '../config/model';
import { Tensor } from '../types';
import { Message } from '../protobuf';
import { AttributeValue, DataTypeName, Dim, graphProto, nodeProto, tensorProto, valueInfoProto } from './proto';

/** The opset the graph is written for: the first with LayerNormalization. */
export const ONNX_OPSET = 17;

/** The graph's input and output names (those transformers' ONNX exports use). */
export const ONNX_NAMES = { inputIds: 'input_ids', attentionMask: 'attention_mask', logits: 'logits' } as const;

/** A graph under construction: nodes in topological order, initializers, unique value names. */
class GraphBuilder {
  readonly nodes: Message[] = [];
  readonly initializers: Message[] = [];
  private readonly used = new Map<string, number>();

  /** A value name not yet taken, from `base`. */
  private fresh(base: string): string {
    const n = this.used.get(base) ?? 0;
    this.used.set(base, n + 1);
    return n === 0 ? base : `${base}_${n}`;
  }

  tensor(name: string, type: DataTypeName, dims: readonly number[], data: Float32Array | Int8Array | BigInt64Array): string {
    const id = this.fresh(name);
    this.initializers.push(tensorProto(id, type, dims, data));
    return id;
  }

  floats(name: string, values: number[], dims: number[] = []): string {
    return this.tensor(name, 'float', dims, Float32Array.from(values));
  }

  ints(name: string, values: number[], dims: number[] = [values.length]): string {
    return this.tensor(
      name,
      'int64',
      dims,
      BigInt64Array.from(values, (v) => BigInt(v)),
    );
  }

  /** One operator; returns its outputs' names (`outputs` of them), named from `name`. */
  opN(op: string, inputs: string[], name: string, outputs: number, attributes: Record<string, AttributeValue> = {}): string[] {
    const outs = Array.from({ length: outputs }, (_, i) => this.fresh(outputs === 1 ? name : `${name}.${i}`));
    this.nodes.push(nodeProto(op, inputs, outs, `${op}:${outs[0]}`, attributes));
    return outs;
  }

  op(op: string, inputs: string[], name: string, attributes: Record<string, AttributeValue> = {}): string {
    return this.opN(op, inputs, name, 1, attributes)[0];
  }
}

/** Round half to even, as at::quantize_per_channel (nearbyint) rounds. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * A Linear weight (out, in) as int8 per output channel, symmetric, scale max|w| / 127.5 in float32: the engine's
 * calibration (native/compress/compress.cc, `calibrate(w, 8, symmetric, channel)`, what toInt8 packs). Returned
 * transposed, (in, out), as MatMulInteger's B, with the scales per column.
 */
export function quantizeWeight(w: Tensor): { q: Int8Array; scales: Float32Array } {
  const [out, inp] = w.dims;
  const q = new Int8Array(out * inp);
  const scales = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let max = 0;
    for (let i = 0; i < inp; i++) max = Math.max(max, Math.abs(w.data[o * inp + i]));
    const s = Math.max(Math.fround(max / 127.5), 1.1920928955078125e-7);
    scales[o] = s;
    for (let i = 0; i < inp; i++) q[i * out + o] = Math.min(127, Math.max(-128, roundHalfEven(w.data[o * inp + i] / scales[o])));
  }
  return { q, scales };
}

/** What the graph is made from: the model's config and its parameters by their safetensors names. */
export interface EncoderSource {
  config: ModelConfig;
  weight(name: string): Promise<Tensor>;
}

/**
 * The GraphProto of an encoder ('mlm' or 'classify'). Inputs input_ids and attention_mask, both int64
 * (batch, sequence) with dynamic axes; output logits, (batch, sequence, vocabSize) or (batch, numLabels).
 * With `int8`, the attention and feed-forward Linear layers (those toInt8 runs on int8 kernels) are
 * quantized dynamically; the heads and embeddings stay float32.
 */
export async function encoderGraph(src: EncoderSource, opts: { int8: boolean; name: string }): Promise<Message> {
  const c = src.config;
  if (c.task !== 'mlm' && c.task !== 'classify') throw new TypeError(`onnx: expected an 'mlm' or 'classify' model, got '${c.task}'`);
  const g = new GraphBuilder();
  const D = c.dModel;
  const heads = c.heads;
  const headDim = c.headDim ?? D / heads;
  const A = heads * headDim; // the attention width (dModel unless heads were pruned)
  const param = async (name: string): Promise<string> => {
    const t = await src.weight(name);
    return g.tensor(name, 'float', t.dims, t.data);
  };

  // Constants shared by every layer.
  const one = g.floats('one', [1]);
  const half = g.floats('half', [0.5]);
  const sqrt2 = g.floats('sqrt2', [Math.SQRT2]);
  const flat = g.ints('shape.flat', [-1, D]);
  const zero = g.ints('zero', [0], []);

  const ids = ONNX_NAMES.inputIds;
  // T as a 1-element tensor: the sequence axis of input_ids.
  const T = g.op('Shape', [ids], 'seq_len', { start: 1, end: 2 });
  const dynShape = (name: string, tail: number[]): string =>
    g.op('Concat', [g.ints(`${name}.head`, [-1]), T, g.ints(`${name}.tail`, tail)], name, { axis: 0 });

  const linear = async (x: string, prefix: string, quantize: boolean): Promise<string> => {
    const w = await src.weight(`${prefix}.weight`);
    const b = await param(`${prefix}.bias`);
    if (!quantize) return g.op('Gemm', [x, g.tensor(`${prefix}.weight`, 'float', w.dims, w.data), b], prefix, { transB: 1 });
    // ONNX Runtime's quantize_dynamic pattern: its MatMulIntegerToFloat and DynamicQuantizeMatMul fusions take it whole.
    const { q, scales } = quantizeWeight(w);
    const wq = g.tensor(`${prefix}.weight_quantized`, 'int8', [w.dims[1], w.dims[0]], q);
    const ws = g.tensor(`${prefix}.weight_scale`, 'float', [w.dims[0]], scales);
    const [xq, xs, xz] = g.opN('DynamicQuantizeLinear', [x], `${prefix}.input_quantized`, 3);
    const acc = g.op('MatMulInteger', [xq, wq, xz], `${prefix}.int32`);
    const scale = g.op('Mul', [xs, ws], `${prefix}.scale`);
    const y = g.op('Mul', [g.op('Cast', [acc], `${prefix}.float`, { to: 1 }), scale], `${prefix}.unbiased`);
    return g.op('Add', [y, b], prefix);
  };
  const layerNorm = async (x: string, prefix: string): Promise<string> =>
    g.op('LayerNormalization', [x, await param(`${prefix}.weight`), await param(`${prefix}.bias`)], prefix, {
      axis: -1,
      epsilon: { float: c.layerNormEps },
    });
  // Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as torch::gelu; the form ONNX Runtime's GeluFusion recognises.
  const gelu = (x: string, prefix: string): string => {
    const e = g.op('Erf', [g.op('Div', [x, sqrt2], `${prefix}.scaled`)], `${prefix}.erf`);
    return g.op('Mul', [g.op('Mul', [x, g.op('Add', [e, one], `${prefix}.erf1`)], `${prefix}.x_erf1`), half], prefix);
  };

  // Embeddings: token + position (rows 0..T-1 of the learned table), (B, T, D) -> (B*T, D).
  const tokens = await param('tokens.weight');
  const positions = g.op('Slice', [await param('positions.weight'), g.ints('zero1', [0]), T, g.ints('axis0', [0])], 'positions');
  const embedded = g.op('Add', [g.op('Gather', [tokens, ids], 'token_embeddings', { axis: 0 }), positions], 'embeddings');
  let x = g.op('Reshape', [embedded, flat], 'embeddings.flat');
  if (c.norm === 'post') x = await layerNorm(x, 'embed_norm');

  // The padding mask as the engine's additive key bias: 0 for real keys, -1e9 for padding, (B, 1, 1, T).
  const padding = g.op('Equal', [ONNX_NAMES.attentionMask, zero], 'padding');
  const bias = g.op(
    'Unsqueeze',
    [
      g.op('Mul', [g.op('Cast', [padding], 'padding.float', { to: 1 }), g.floats('neg_inf', [-1e9])], 'key_bias.2d'),
      g.ints('axes12', [1, 2]),
    ],
    'key_bias',
  );
  const split3 = g.ints('qkv.split', [A, A, A]);
  const headsShape = dynShape('shape.heads', [heads, headDim]); // (B*T, A) -> (B, T, nh, hs)
  const attnFlat = g.ints('shape.attention', [-1, A]);
  const scale = g.floats('attention.scale', [1 / Math.sqrt(headDim)]);

  const attention = async (h: string, p: string): Promise<string> => {
    const [q, k, v] = g.opN('Split', [await linear(h, `${p}.qkv`, opts.int8), split3], `${p}.qkv`, 3, { axis: 1 });
    const perHead = (t: string, perm: number[], name: string) =>
      g.op('Transpose', [g.op('Reshape', [t, headsShape], `${name}.heads`)], name, { perm });
    const qh = perHead(q, [0, 2, 1, 3], `${p}.q`); // (B, nh, T, hs)
    const kt = perHead(k, [0, 2, 3, 1], `${p}.k`); // (B, nh, hs, T)
    const vh = perHead(v, [0, 2, 1, 3], `${p}.v`); // (B, nh, T, hs)
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [qh, kt], `${p}.qk`), scale], `${p}.qk_scaled`), bias], `${p}.scores`);
    const probs = g.op('Softmax', [scores], `${p}.probs`, { axis: -1 }); // (B, nh, T, T)
    const ctx = g.op('Transpose', [g.op('MatMul', [probs, vh], `${p}.context`)], `${p}.context.t`, { perm: [0, 2, 1, 3] });
    return linear(g.op('Reshape', [ctx, attnFlat], `${p}.context.flat`), `${p}.proj`, opts.int8);
  };
  const feedForward = async (h: string, p: string): Promise<string> =>
    linear(gelu(await linear(h, `${p}.fc1`, opts.int8), `${p}.gelu`), `${p}.fc2`, opts.int8);

  for (let l = 0; l < c.layers; l++) {
    const p = `layers.${l}`;
    if (c.norm === 'pre') {
      const h = g.op('Add', [x, await attention(await layerNorm(x, `${p}.norm1`), `${p}.attn`)], `${p}.residual1`);
      x = g.op('Add', [h, await feedForward(await layerNorm(h, `${p}.norm2`), `${p}.ffn`)], `${p}.residual2`);
    } else {
      const h = await layerNorm(g.op('Add', [x, await attention(x, `${p}.attn`)], `${p}.residual1`), `${p}.norm1`);
      x = await layerNorm(g.op('Add', [h, await feedForward(h, `${p}.ffn`)], `${p}.residual2`), `${p}.norm2`);
    }
  }
  if (c.norm === 'pre') x = await layerNorm(x, 'final_norm');

  let logits: string;
  let outShape: Dim[];
  if (c.task === 'mlm') {
    const h = await layerNorm(gelu(await linear(x, 'mlm_head.dense', false), 'mlm_head.gelu'), 'mlm_head.norm');
    // The decoder is the token embedding itself (tied), as the engine's head reads it.
    const v = g.op('Gemm', [h, tokens, await param('mlm_head.bias')], 'mlm_head.decoder', { transB: 1 });
    logits = g.op('Reshape', [v, dynShape('shape.logits', [c.vocabSize])], ONNX_NAMES.logits);
    outShape = ['batch', 'sequence', c.vocabSize];
  } else {
    const first = g.op('Gather', [g.op('Reshape', [x, dynShape('shape.hidden', [D])], 'hidden'), zero], 'first_token', {
      axis: 1,
    });
    const h = g.op('Tanh', [await linear(first, 'cls_head.dense', false)], 'cls_head.tanh');
    logits = g.op('Identity', [await linear(h, 'cls_head.out', false)], ONNX_NAMES.logits);
    outShape = ['batch', c.numLabels!];
  }
  if (logits !== ONNX_NAMES.logits) throw new Error(`onnx: the output was named '${logits}'`); // a second 'logits' value

  return graphProto({
    name: opts.name,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [
      valueInfoProto(ONNX_NAMES.inputIds, 'int64', ['batch', 'sequence']),
      valueInfoProto(ONNX_NAMES.attentionMask, 'int64', ['batch', 'sequence']),
    ],
    outputs: [valueInfoProto(ONNX_NAMES.logits, 'float', outShape)],
  });
}
