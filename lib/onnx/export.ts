// exportOnnx: a trainlarge encoder as an ONNX model directory for ONNX Runtime (onnxruntime-node, or any
// runtime that reads opset 17): model.onnx, config.json (task, inputs, labels) and the tokenizer in
// transformers' format. The file is written from TypeScript (lib/onnx/proto.ts, graph.ts): no Python and no
// second framework at export time, and the graph is the engine's forward written out operator by operator.
import * as fs from 'fs';
import * as path from 'path';
import { ModelConfig } from '../config/model';
import { OnnxExportOptions, OnnxExportOptionsSchema } from '../config/onnx';
import { parseConfig } from '../config/parse';
import { writeFileAtomic, writeJsonAtomic } from '../io';
import { Transformer } from '../model';
import { encoderGraph, ONNX_NAMES, ONNX_OPSET } from './graph';
import { serialize } from '../protobuf';
import { modelProto } from './proto';

export { OnnxExportOptions, OnnxTokenizer } from '../config/onnx';

/** The files of an ONNX export directory (beside them, the tokenizer's). */
export const ONNX_FILES = { model: 'model.onnx', config: 'config.json' } as const;

// Protobuf's limit on one message: the whole model.onnx (weights inline).
const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** config.json of an ONNX export: what a consumer needs to feed the graph and read its output. */
export interface OnnxConfigJson {
  format: 'onnx';
  task: 'mlm' | 'classify';
  int8: boolean;
  opset: number;
  inputs: Record<string, string>;
  outputs: Record<string, string>;
  maxLen: number;
  vocabSize: number;
  padId: number;
  /** The tokenizer's <s>/<cls> and </s> ids (a sequence is cls, tokens..., eos), when a tokenizer was written. */
  special?: { cls: number; eos: number };
  /** Classification: class names by index, and transformers' id2label / label2id. */
  labels?: string[];
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  /** The trainlarge model config the graph was made from. */
  model: ModelConfig;
}

/** What exportOnnx wrote. */
export interface OnnxExportResult {
  dir: string;
  files: string[];
  /** Bytes of model.onnx. */
  bytes: number;
}

/**
 * Writes `dir/model.onnx` (opset 17) with `config.json` and the tokenizer (transformers' tokenizer.json, plus
 * tokenizer.model for SentencePiece) beside it, for an 'mlm' or 'classify' model. Inputs `input_ids` and
 * `attention_mask`, int64 (batch, sequence), dynamic axes; output `logits`, (batch, sequence, vocabSize) for
 * masked-LM or (batch, numLabels) for classification, equal to `model.predict`'s. With `int8: true` the
 * attention and feed-forward Linear layers are quantized dynamically (int8 weights per output channel,
 * activations per call), which ONNX Runtime runs on its int8 kernels. A compressed model exports with its
 * effective weights (pruned ones zero, quantized ones on their grid) as float32, or requantized to 8 bits.
 * Translation models are refused: an encoder-decoder is searched step by step, which one graph does not hold.
 */
export async function exportOnnx(model: Transformer, dir: string, options: OnnxExportOptions = {}): Promise<OnnxExportResult> {
  const o = parseConfig(OnnxExportOptionsSchema, options, 'exportOnnx options');
  const c = model.config;
  if (c.task !== 'mlm' && c.task !== 'classify') {
    throw new TypeError(
      `exportOnnx: a '${c.task}' model (encoder-decoder) is not exported to ONNX; supported: 'mlm' and 'classify' encoders. ` +
        "Run a translator with model.translate or 'trainlarge serve', or save it in trainlarge's format",
    );
  }
  if (model.compression.int8) {
    throw new TypeError(
      'exportOnnx: this model runs on int8 kernels (toInt8), whose float weights are not the ones it runs; export the model ' +
        'toInt8 was made from, with { int8: true } for an int8 graph',
    );
  }
  const labels = c.task === 'classify' ? (o.labels ?? Array.from({ length: c.numLabels! }, (_, i) => `LABEL_${i}`)) : undefined;
  if (o.labels && c.task !== 'classify')
    throw new TypeError(`exportOnnx options: labels: apply to a 'classify' model, this one is '${c.task}'`);
  if (labels && labels.length !== c.numLabels) {
    throw new RangeError(`exportOnnx options: labels: has ${labels.length} names but the model has numLabels ${c.numLabels}`);
  }
  const tokenizer = o.tokenizer ?? model.tokenizer;

  await fs.promises.mkdir(dir, { recursive: true });
  // The tokenizer first: one that cannot be written as tokenizer.json stops the export before the big file.
  if (tokenizer) await tokenizer.saveTo(dir, { format: 'hf' });
  const graph = await encoderGraph({ config: c, weight: (name) => model.weight(name) }, { int8: o.int8, name: `trainlarge-${c.task}` });
  const proto = modelProto({
    graph,
    opset: ONNX_OPSET,
    producer: 'trainlarge',
    producerVersion: '',
    doc: `trainlarge ${c.task} encoder${o.int8 ? ', int8 (dynamic quantization)' : ''}`,
    metadata: { trainlarge_config: JSON.stringify(c), ...(labels ? { labels: JSON.stringify(labels) } : {}) },
  });
  if (proto.length > PROTOBUF_LIMIT) {
    throw new RangeError(
      `exportOnnx: the model is ${proto.length} bytes, over protobuf's 2 GiB limit for one .onnx file; ` +
        'export with int8: true, or a smaller model',
    );
  }
  const file = path.join(dir, ONNX_FILES.model);
  await writeFileAtomic(file, serialize(proto));
  const config: OnnxConfigJson = {
    format: 'onnx',
    task: c.task,
    int8: o.int8,
    opset: ONNX_OPSET,
    inputs: {
      [ONNX_NAMES.inputIds]: 'int64 (batch, sequence): token ids, padded with padId',
      [ONNX_NAMES.attentionMask]: 'int64 (batch, sequence): 1 for a token, 0 for padding',
    },
    outputs: { [ONNX_NAMES.logits]: c.task === 'mlm' ? 'float32 (batch, sequence, vocabSize)' : 'float32 (batch, numLabels)' },
    maxLen: c.maxLen,
    vocabSize: c.vocabSize,
    padId: c.padId,
    ...(tokenizer ? { special: { cls: tokenizer.special.cls, eos: tokenizer.special.eos } } : {}),
    ...(labels
      ? {
          labels,
          id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
          label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
        }
      : {}),
    model: c,
  };
  // config.json last: a directory that has it is complete.
  await writeJsonAtomic(path.join(dir, ONNX_FILES.config), config);
  return { dir, files: (await fs.promises.readdir(dir)).sort(), bytes: proto.length };
}
