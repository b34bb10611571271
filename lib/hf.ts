// Hugging Face transformers' RoBERTa format: config.json both ways (the tensors are mapped by the engine,
// native/engine/roberta.h). A post-LN trainlarge encoder is RoBERTa: same embeddings + LayerNorm,
// post-LN blocks with GELU, the same LM head (tied decoder) and classification head. Positions: RoBERTa
// numbers the tokens of a sequence from pad_token_id + 1, so trainlarge's position i is RoBERTa's row
// padId + 1 + i and max_position_embeddings = maxLen + padId + 1.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ModelConfig, parseModelConfig } from './config/model';
import { readJson } from './io';
import { CompressionState } from './types';

/** The files of a transformers model directory. */
export const HF_FILES = { config: 'config.json', weights: 'model.safetensors' } as const;

const ARCHITECTURES = {
  RobertaForMaskedLM: 'mlm',
  RobertaForSequenceClassification: 'classify',
  RobertaModel: undefined,
  XLMRobertaForMaskedLM: 'mlm',
  XLMRobertaForSequenceClassification: 'classify',
  XLMRobertaModel: undefined,
} as const;
type Architecture = keyof typeof ARCHITECTURES;

/** Every transformers architecture Transformer.fromHF reads: RoBERTa's and XLM-RoBERTa's, and MarianMT's (lib/marian.ts). */
export const HF_ARCHITECTURES: readonly string[] = [...Object.keys(ARCHITECTURES), 'MarianMTModel'];

/** The first of config.json's `architectures` in a transformers directory (undefined when it names none). */
export async function hfArchitecture(dir: string): Promise<string | undefined> {
  const j = await readJson<{ architectures?: unknown }>(path.join(dir, HF_FILES.config), 'Transformer.fromHF');
  return Array.isArray(j.architectures) && typeof j.architectures[0] === 'string' ? j.architectures[0] : undefined;
}

/** The fields of a transformers RobertaConfig that trainlarge reads and writes. */
export interface RobertaConfigJson {
  architectures?: string[];
  model_type?: string;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act?: string;
  hidden_dropout_prob?: number;
  attention_probs_dropout_prob?: number;
  max_position_embeddings: number;
  type_vocab_size?: number;
  layer_norm_eps?: number;
  pad_token_id?: number;
  bos_token_id?: number;
  eos_token_id?: number;
  position_embedding_type?: string;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  [key: string]: unknown;
}

/** config.json for a model saved with format 'hf'. */
/** What an HF export of a compressed model says it holds (config.json's trainlarge.compression). */
export const DEQUANTIZED_NOTE =
  'exported dequantized: pruned weights are zeros and quantized weights hold their grid values, stored as float32 ' +
  "(trainlarge's own format keeps the packed file)";

export function robertaConfig(
  c: ModelConfig,
  opts: { labels?: string[]; special?: { cls: number; eos: number }; compression?: CompressionState },
): RobertaConfigJson {
  if (c.norm !== 'post') {
    throw new Error(
      "save: format 'hf': a pre-LN model (norm: 'pre') has no RoBERTa equivalent in transformers (RoBERTa is post-LN); " +
        "export a post-LN model, or keep trainlarge's own format",
    );
  }
  if (c.headDim !== undefined) {
    throw new Error(
      `save: format 'hf': a model with pruned attention heads (${c.heads} heads x headDim ${c.headDim} = ${c.heads * c.headDim}, ` +
        `not dModel ${c.dModel}) has no RoBERTa config in transformers 5 (no head_dim, no pruned_heads); keep trainlarge's own ` +
        "format, or prune feed-forward units only (structure 'ffn'), which exports",
    );
  }
  const labels = c.task === 'classify' ? (opts.labels ?? Array.from({ length: c.numLabels! }, (_, i) => `LABEL_${i}`)) : undefined;
  if (labels && labels.length !== c.numLabels) {
    throw new RangeError(`save: labels has ${labels.length} names but the model has numLabels ${c.numLabels}`);
  }
  const compressed =
    opts.compression && (Object.keys(opts.compression.pruned).length > 0 || Object.keys(opts.compression.quantized).length > 0);
  return {
    architectures: [c.task === 'mlm' ? 'RobertaForMaskedLM' : 'RobertaForSequenceClassification'],
    model_type: 'roberta',
    vocab_size: c.vocabSize,
    hidden_size: c.dModel,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    intermediate_size: c.ffn,
    hidden_act: 'gelu',
    hidden_dropout_prob: c.dropout,
    attention_probs_dropout_prob: c.attentionDropout,
    max_position_embeddings: c.maxLen + c.padId + 1,
    type_vocab_size: 1,
    initializer_range: 0.02,
    layer_norm_eps: c.layerNormEps,
    pad_token_id: c.padId,
    ...(opts.special ? { bos_token_id: opts.special.cls, eos_token_id: opts.special.eos } : {}),
    position_embedding_type: 'absolute',
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    ...(labels
      ? {
          id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
          label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
          problem_type: 'single_label_classification',
        }
      : {}),
    trainlarge: {
      model: c,
      ...(compressed
        ? {
            compression: DEQUANTIZED_NOTE,
            pruned: Object.keys(opts.compression!.pruned).length,
            quantized: Object.values(opts.compression!.quantized)[0]?.bits,
          }
        : {}),
    },
  };
}

/** The trainlarge config of a transformers RoBERTa directory, checked field by field. */
export async function readRobertaDir(
  dir: string,
  opts: { task?: 'mlm' | 'classify'; numLabels?: number } = {},
): Promise<{ config: ModelConfig; paddingIdx: number; labels?: string[]; checkpointTask?: 'mlm' | 'classify'; weights: string }> {
  const what = `Transformer.fromHF: ${dir}`;
  const j = await readJson<RobertaConfigJson>(path.join(dir, HF_FILES.config), 'Transformer.fromHF');
  const arch = j.architectures?.[0];
  if (!arch || !Object.prototype.hasOwnProperty.call(ARCHITECTURES, arch)) {
    throw new Error(
      `${what}: architecture '${arch ?? '(none)'}' is not supported; expected one of ${HF_ARCHITECTURES.join(', ')} ` +
        `(config.json's architectures: ${JSON.stringify(j.architectures ?? null)})`,
    );
  }
  const need = <K extends keyof RobertaConfigJson>(key: K): number => {
    const v = j[key];
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new Error(`${what}: config.json: ${String(key)} must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const act = j.hidden_act ?? 'gelu';
  if (act !== 'gelu')
    throw new Error(`${what}: config.json: hidden_act '${act}' is not supported (trainlarge's blocks use exact GELU: 'gelu')`);
  const posType = j.position_embedding_type ?? 'absolute';
  if (posType !== 'absolute')
    throw new Error(`${what}: config.json: position_embedding_type '${posType}' is not supported (only 'absolute')`);
  const padId = j.pad_token_id ?? 1;
  const maxLen = need('max_position_embeddings') - padId - 1;
  if (maxLen < 1)
    throw new Error(
      `${what}: config.json: max_position_embeddings ${j.max_position_embeddings} leaves no position after pad_token_id ${padId}`,
    );
  const checkpointTask = ARCHITECTURES[arch as Architecture];
  const task = opts.task ?? checkpointTask;
  if (!task) throw new Error(`${what}: a ${arch} checkpoint has no head; give task: 'mlm' or 'classify'`);
  const labelNames = labelsOf(j);
  const numLabels = task === 'classify' ? (opts.numLabels ?? (checkpointTask === 'classify' ? labelNames?.length : undefined)) : undefined;
  const config = parseModelConfig({
    task,
    vocabSize: need('vocab_size'),
    maxLen,
    dModel: need('hidden_size'),
    layers: need('num_hidden_layers'),
    heads: need('num_attention_heads'),
    ffn: need('intermediate_size'),
    dropout: j.hidden_dropout_prob ?? 0.1,
    attentionDropout: j.attention_probs_dropout_prob ?? 0.1,
    norm: 'post',
    layerNormEps: j.layer_norm_eps ?? 1e-5,
    padId,
    ...(numLabels !== undefined ? { numLabels } : {}),
  });
  const weights = path.join(dir, HF_FILES.weights);
  if (!fs.existsSync(weights)) {
    const other = ['model.safetensors.index.json', 'pytorch_model.bin'].find((f) => fs.existsSync(path.join(dir, f)));
    throw new Error(
      `${what}: no ${HF_FILES.weights}` +
        (other === 'pytorch_model.bin'
          ? ' (pytorch_model.bin is a pickle, which trainlarge does not read: re-save it with save_pretrained(dir, safe_serialization=True))'
          : other
            ? ' (sharded checkpoints are not supported: save it as one file with save_pretrained(dir, max_shard_size="100GB"))'
            : ''),
    );
  }
  // Refuse what cannot fit before allocating: the model's float32 weights plus the file's tensors, read whole.
  const params = parameterCount(config);
  const needed = params * 4 + fs.statSync(weights).size;
  if (needed > os.freemem()) {
    throw new Error(
      `${what}: the model needs about ${(needed / 2 ** 30).toFixed(1)} GiB (${(params / 1e6).toFixed(0)} M parameters in float32 plus ` +
        `the file) but ${(os.freemem() / 2 ** 30).toFixed(1)} GiB of memory is available`,
    );
  }
  return {
    config,
    paddingIdx: padId,
    ...(task === 'classify' && checkpointTask === 'classify' && labelNames ? { labels: labelNames } : {}),
    checkpointTask,
    weights,
  };
}

/** The class names of a transformers classification checkpoint (config.json's id2label), in label order. */
export async function hfLabels(dir: string): Promise<string[] | undefined> {
  return labelsOf(await readJson<RobertaConfigJson>(path.join(dir, HF_FILES.config), 'hfLabels'));
}

function labelsOf(j: RobertaConfigJson): string[] | undefined {
  return j.id2label
    ? Object.keys(j.id2label)
        .sort((a, b) => Number(a) - Number(b))
        .map((k) => j.id2label![k])
    : undefined;
}

/** Parameters of a trainlarge encoder with this config (as the engine counts them). */
export function parameterCount(c: ModelConfig): number {
  const d = c.dModel,
    a = c.heads * (c.headDim ?? d / c.heads); // attention width: d unless heads were pruned
  const embeddings = c.vocabSize * d + c.maxLen * d + 2 * d;
  const layer = 3 * a * d + 3 * a + a * d + d + 2 * d + d * c.ffn + c.ffn + c.ffn * d + d + 2 * d;
  const head = c.task === 'mlm' ? d * d + d + 2 * d + c.vocabSize : d * d + d + d * c.numLabels! + c.numLabels!;
  return embeddings + c.layers * layer + head;
}
