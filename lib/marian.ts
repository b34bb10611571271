// Hugging Face transformers' MarianMT (MarianMTModel / MarianConfig, the opus-mt family) both ways for a
// trainlarge translator. A translator with Marian's architecture options (lib/config/model.ts: positions
// 'sinusoidal', activation 'swish' (or 'gelu', 'relu'), scaleEmbeddings, embeddingNorm false,
// finalLogitsBias, post-LN, tieEmbeddings 'all') IS a MarianMTModel; the tensors are renamed here, in
// TypeScript (lib/safetensors.ts), and the fused q|k|v and k|v matrices split or joined:
//   tokens.weight                           model.shared.weight (= both embed_tokens and lm_head, tied)
//   layers.N.attn.qkv                       model.encoder.layers.N.self_attn.{q,k,v}_proj
//   layers.N.attn.proj, norm1               ...self_attn.out_proj, self_attn_layer_norm
//   layers.N.ffn.fc1, fc2, norm2            ...fc1, fc2, final_layer_norm
//   decoder.layers.N.self_attn.qkv, proj    model.decoder.layers.N.self_attn.{q,k,v}_proj, out_proj
//   decoder.layers.N.norm1                  ...self_attn_layer_norm
//   decoder.layers.N.cross_attn.q, kv, proj ...encoder_attn.q_proj, {k,v}_proj, out_proj
//   decoder.layers.N.norm2, ffn, norm3      ...encoder_attn_layer_norm, fc1, fc2, final_layer_norm
//   output_bias (V)                         final_logits_bias (1, V)
// The sinusoidal position tables are no tensors on either side (transformers does not save them).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ModelConfig, parseModelConfig } from './config/model';
import { Tokenizer } from './data/tokenizer';
import { DEQUANTIZED_NOTE } from './hf';
import { readJson, writeFileAtomic, writeJsonAtomic } from './io';
import { native, NativeModel } from './native';
import { FloatTensor, readSafetensors, writeSafetensors } from './safetensors';
import { CompressionState } from './types';

/** The architecture transformers names in a MarianMT directory's config.json. */
export const MARIAN_ARCHITECTURE = 'MarianMTModel';

/** The files of a MarianMT directory that trainlarge reads and writes. */
export const MARIAN_FILES = {
  config: 'config.json',
  generation: 'generation_config.json',
  weights: 'model.safetensors',
  /** torch.save's state dict, which many opus-mt checkpoints ship alone (read in C++: native/io/torch_checkpoint.h). */
  torchWeights: 'pytorch_model.bin',
  source: 'source.spm',
  target: 'target.spm',
  vocab: 'vocab.json',
  tokenizerConfig: 'tokenizer_config.json',
} as const;

/** The fields of transformers' MarianConfig that trainlarge reads and writes. */
export interface MarianConfigJson {
  architectures?: string[];
  model_type?: string;
  vocab_size: number;
  decoder_vocab_size?: number | null;
  max_position_embeddings: number;
  d_model: number;
  encoder_layers: number;
  decoder_layers: number;
  encoder_attention_heads: number;
  decoder_attention_heads: number;
  encoder_ffn_dim: number;
  decoder_ffn_dim: number;
  activation_function?: string;
  dropout?: number;
  attention_dropout?: number;
  activation_dropout?: number;
  scale_embedding?: boolean;
  pad_token_id?: number;
  eos_token_id?: number;
  decoder_start_token_id?: number;
  share_encoder_decoder_embeddings?: boolean;
  tie_word_embeddings?: boolean;
  normalize_before?: boolean;
  [key: string]: unknown;
}

const ACTIVATIONS = { gelu: 'gelu', relu: 'relu', swish: 'swish', silu: 'swish' } as const;

/** What a translator must be to be a MarianMTModel: each unmet condition named with the option that meets it. */
function marianMismatches(c: ModelConfig): string[] {
  const why: string[] = [];
  if (c.task !== 'translate') return [`task '${c.task}' (MarianMT is a translator)`];
  if (c.norm !== 'post') why.push("norm 'pre' (Marian is post-LN: norm 'post')");
  if (c.positions !== 'sinusoidal') why.push("learned positions (Marian's are fixed sinusoids: positions 'sinusoidal')");
  if (c.embeddingNorm !== false) why.push('a LayerNorm on the embeddings (Marian has none: embeddingNorm false)');
  if (c.tieEmbeddings !== 'all') why.push(`tieEmbeddings '${c.tieEmbeddings}' (Marian shares one matrix: 'all')`);
  if (c.headDim !== undefined) why.push(`pruned attention heads (headDim ${c.headDim}; MarianConfig has no head_dim)`);
  return why;
}

/** config.json (MarianConfig) and generation_config.json for a translator saved with format 'hf'. */
export function marianConfig(
  c: ModelConfig,
  opts: { compression?: CompressionState } = {},
): { config: MarianConfigJson; generation: object } {
  const why = marianMismatches(c);
  if (why.length > 0) {
    throw new Error(
      `save: format 'hf': this translator is not a MarianMTModel: ${why.join('; ')}. Create the translator with ` +
        "Marian's options (positions: 'sinusoidal', activation: 'swish', scaleEmbeddings: true, embeddingNorm: false, " +
        "finalLogitsBias: true) to export it, or keep trainlarge's own format",
    );
  }
  const compressed =
    opts.compression && (Object.keys(opts.compression.pruned).length > 0 || Object.keys(opts.compression.quantized).length > 0);
  const { padId, eosId, bosId } = c as ModelConfig & { eosId: number; bosId: number };
  // trainlarge's search never emits pad or the start token (BOS, when it is not EOS): transformers' generate
  // is told the same, as opus-mt's generation configs tell it about pad.
  const bad = [...new Set([padId, ...(bosId !== eosId ? [bosId] : [])])].map((id) => [id]);
  return {
    config: {
      architectures: [MARIAN_ARCHITECTURE],
      model_type: 'marian',
      vocab_size: c.vocabSize,
      decoder_vocab_size: c.vocabSize,
      max_position_embeddings: c.maxLen,
      d_model: c.dModel,
      encoder_layers: c.encoderLayers!,
      decoder_layers: c.decoderLayers!,
      encoder_attention_heads: c.heads,
      decoder_attention_heads: c.heads,
      encoder_ffn_dim: c.ffn,
      decoder_ffn_dim: c.ffn,
      activation_function: c.activation ?? 'gelu',
      dropout: c.dropout,
      attention_dropout: c.attentionDropout,
      activation_dropout: 0,
      init_std: 0.02,
      scale_embedding: c.scaleEmbeddings ?? false,
      pad_token_id: padId,
      eos_token_id: eosId,
      decoder_start_token_id: bosId,
      forced_eos_token_id: eosId,
      share_encoder_decoder_embeddings: true,
      tie_word_embeddings: true,
      is_encoder_decoder: true,
      torch_dtype: 'float32',
      trainlarge: {
        model: c,
        ...(compressed
          ? {
              compression: DEQUANTIZED_NOTE,
            }
          : {}),
      },
    },
    generation: {
      bad_words_ids: bad,
      decoder_start_token_id: bosId,
      eos_token_id: eosId,
      forced_eos_token_id: eosId,
      pad_token_id: padId,
      max_length: c.maxLen,
      num_beams: 4,
    },
  };
}

/** The trainlarge config of a MarianMT directory's config.json, checked field by field. */
export function marianToConfig(j: MarianConfigJson, what: string): ModelConfig {
  const need = (key: keyof MarianConfigJson): number => {
    const v = j[key];
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new Error(`${what}: config.json: ${String(key)} must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const same = (a: keyof MarianConfigJson, b: keyof MarianConfigJson) => {
    if (need(a) !== need(b))
      throw new Error(
        `${what}: config.json: ${String(a)} (${need(a)}) differs from ${String(b)} (${need(b)}); trainlarge's encoder and decoder share one`,
      );
    return need(a);
  };
  const act = j.activation_function ?? 'gelu';
  if (!Object.prototype.hasOwnProperty.call(ACTIVATIONS, act))
    throw new Error(`${what}: config.json: activation_function '${act}' is not supported (one of ${Object.keys(ACTIVATIONS).join(', ')})`);
  if (j.share_encoder_decoder_embeddings === false || j.tie_word_embeddings === false)
    throw new Error(
      `${what}: config.json: untied embeddings (share_encoder_decoder_embeddings or tie_word_embeddings false) are not supported`,
    );
  if (j.decoder_vocab_size !== undefined && j.decoder_vocab_size !== null && j.decoder_vocab_size !== j.vocab_size)
    throw new Error(
      `${what}: config.json: decoder_vocab_size ${j.decoder_vocab_size} differs from vocab_size ${j.vocab_size}; trainlarge has one vocabulary`,
    );
  if (j.normalize_before === true) throw new Error(`${what}: config.json: normalize_before (pre-LN) is not MarianMT's layout`);
  if ((j.activation_dropout ?? 0) !== 0)
    throw new Error(
      `${what}: config.json: activation_dropout ${j.activation_dropout} is not supported (trainlarge has no dropout after the activation)`,
    );
  const padId = j.pad_token_id ?? 58100;
  return parseModelConfig({
    task: 'translate',
    vocabSize: need('vocab_size'),
    maxLen: need('max_position_embeddings'),
    dModel: need('d_model'),
    encoderLayers: need('encoder_layers'),
    decoderLayers: need('decoder_layers'),
    heads: same('encoder_attention_heads', 'decoder_attention_heads'),
    ffn: same('encoder_ffn_dim', 'decoder_ffn_dim'),
    dropout: j.dropout ?? 0.1,
    attentionDropout: j.attention_dropout ?? 0,
    norm: 'post',
    layerNormEps: 1e-5,
    padId,
    bosId: j.decoder_start_token_id ?? padId,
    eosId: j.eos_token_id ?? 0,
    tieEmbeddings: 'all',
    positions: 'sinusoidal',
    activation: ACTIVATIONS[act as keyof typeof ACTIVATIONS],
    scaleEmbeddings: j.scale_embedding ?? false,
    embeddingNorm: false,
    finalLogitsBias: true,
  });
}

/** [ours, theirs[]] for every tensor: theirs has 3 (q, k, v) or 2 (k, v) parts for a fused matrix. */
function nameMap(c: ModelConfig): [string, string[]][] {
  const m: [string, string[]][] = [['tokens.weight', ['model.shared.weight']]];
  const qkv = (ours: string, hf: string): [string, string[]][] =>
    ['weight', 'bias'].map((p) => [`${ours}.${p}`, ['q', 'k', 'v'].map((x) => `${hf}.${x}_proj.${p}`)]);
  const one = (ours: string, hf: string): [string, string[]][] => ['weight', 'bias'].map((p) => [`${ours}.${p}`, [`${hf}.${p}`]]);
  for (let i = 0; i < c.encoderLayers!; i++) {
    const o = `layers.${i}`,
      h = `model.encoder.layers.${i}`;
    m.push(...qkv(`${o}.attn.qkv`, `${h}.self_attn`), ...one(`${o}.attn.proj`, `${h}.self_attn.out_proj`));
    m.push(...one(`${o}.norm1`, `${h}.self_attn_layer_norm`), ...one(`${o}.ffn.fc1`, `${h}.fc1`), ...one(`${o}.ffn.fc2`, `${h}.fc2`));
    m.push(...one(`${o}.norm2`, `${h}.final_layer_norm`));
  }
  for (let i = 0; i < c.decoderLayers!; i++) {
    const o = `decoder.layers.${i}`,
      h = `model.decoder.layers.${i}`;
    m.push(...qkv(`${o}.self_attn.qkv`, `${h}.self_attn`), ...one(`${o}.self_attn.proj`, `${h}.self_attn.out_proj`));
    m.push(...one(`${o}.norm1`, `${h}.self_attn_layer_norm`), ...one(`${o}.cross_attn.q`, `${h}.encoder_attn.q_proj`));
    m.push(
      ...['weight', 'bias'].map((p): [string, string[]] => [
        `${o}.cross_attn.kv.${p}`,
        ['k', 'v'].map((x) => `${h}.encoder_attn.${x}_proj.${p}`),
      ]),
    );
    m.push(...one(`${o}.cross_attn.proj`, `${h}.encoder_attn.out_proj`), ...one(`${o}.norm2`, `${h}.encoder_attn_layer_norm`));
    m.push(...one(`${o}.ffn.fc1`, `${h}.fc1`), ...one(`${o}.ffn.fc2`, `${h}.fc2`), ...one(`${o}.norm3`, `${h}.final_layer_norm`));
  }
  return m;
}

/** Splits a row-major tensor into `parts` equal blocks of rows. */
function splitRows(t: FloatTensor, parts: number): FloatTensor[] {
  const rows = t.shape[0] / parts,
    step = t.data.length / parts;
  return Array.from({ length: parts }, (_, k) => ({ shape: [rows, ...t.shape.slice(1)], data: t.data.slice(k * step, (k + 1) * step) }));
}

function joinRows(ts: FloatTensor[]): FloatTensor {
  const data = new Float32Array(ts.reduce((n, t) => n + t.data.length, 0));
  let at = 0;
  for (const t of ts) {
    data.set(t.data, at);
    at += t.data.length;
  }
  return { shape: [ts.reduce((n, t) => n + t.shape[0], 0), ...ts[0].shape.slice(1)], data };
}

/** Writes the translator's tensors under MarianMTModel's names into `file`. */
/** What the weight copies need of a model: its native handle and its one-at-a-time job queue (the model's internals have both). */
interface ModelHandle {
  readonly handle: NativeModel;
  run<T>(job: () => Promise<T>): Promise<T>;
}

export async function saveMarianWeights(model: ModelHandle, c: ModelConfig, file: string): Promise<void> {
  const out: [string, FloatTensor][] = [];
  const get = async (name: string): Promise<FloatTensor> => {
    const t = await model.run(() => model.handle.parameter(name));
    return { shape: t.dims, data: t.data };
  };
  for (const [ours, theirs] of nameMap(c)) {
    const t = await get(ours);
    const parts = theirs.length === 1 ? [t] : splitRows(t, theirs.length);
    theirs.forEach((name, k) => out.push([name, parts[k]]));
  }
  const bias = c.finalLogitsBias ? (await get('output_bias')).data : new Float32Array(c.vocabSize);
  out.push(['final_logits_bias', { shape: [1, c.vocabSize], data: bias }]);
  await writeSafetensors(file, out, { format: 'pt' });
}

/**
 * Loads a MarianMT checkpoint's tensors into a translator made from marianToConfig: every tensor must be there
 * with its shape (the error names it); lm_head.weight, when saved, must be the shared embedding.
 */
export async function loadMarianWeights(model: ModelHandle, c: ModelConfig, file: string): Promise<void> {
  const { tensors } = readSafetensors(file);
  // A checkpoint saved from MarianModel (no LM head) has no "model." prefix.
  const find = (name: string) => tensors.get(name) ?? tensors.get(name.replace(/^model\./, ''));
  const expect = (name: string, shape: number[]): FloatTensor => {
    const t = find(name) ?? (name === 'model.shared.weight' ? find('model.encoder.embed_tokens.weight') : undefined);
    if (!t) throw new Error(`weights: the checkpoint lacks '${name}'`);
    if (t.shape.join() !== shape.join())
      throw new Error(`weights: '${name}' has shape [${t.shape.join(', ')}] in the file but the config needs [${shape.join(', ')}]`);
    return t;
  };
  const D = c.dModel,
    F = c.ffn;
  const shapeOf = (hf: string): number[] => {
    if (hf.endsWith('shared.weight')) return [c.vocabSize, D];
    const bias = hf.endsWith('.bias');
    if (/\.fc1\./.test(hf)) return bias ? [F] : [F, D];
    if (/\.fc2\./.test(hf)) return bias ? [D] : [D, F];
    if (/layer_norm\./.test(hf)) return [D];
    return bias ? [D] : [D, D];
  };
  const ours: [string, FloatTensor][] = [];
  for (const [name, theirs] of nameMap(c)) {
    const parts = theirs.map((t) => expect(t, shapeOf(t)));
    ours.push([name, parts.length === 1 ? parts[0] : joinRows(parts)]);
  }
  const shared = ours[0][1];
  for (const tied of ['lm_head.weight', 'model.decoder.embed_tokens.weight']) {
    const t = find(tied);
    if (t && (t.shape.join() !== shared.shape.join() || t.data.some((v, i) => v !== shared.data[i])))
      throw new Error(`weights: '${tied}' differs from model.shared.weight; trainlarge ties them (as MarianMT does by default)`);
  }
  const bias = find('final_logits_bias');
  if (bias && bias.data.length !== c.vocabSize)
    throw new Error(
      `weights: 'final_logits_bias' has shape [${bias.shape.join(', ')}] in the file but the config needs [1, ${c.vocabSize}]`,
    );
  ours.push(['output_bias', { shape: [c.vocabSize], data: bias?.data ?? new Float32Array(c.vocabSize) }]);
  // Through a file of trainlarge's own names, which the engine loads strictly (every tensor, every shape).
  const tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'trainlarge-marian-'));
  try {
    const file2 = path.join(tmp, 'model.safetensors');
    await writeSafetensors(file2, ours);
    const missing = await model.run(() => model.handle.loadWeights(file2, true));
    if (missing.length > 0) throw new Error(`weights: the checkpoint lacks '${missing[0]}'`);
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * A MarianMT directory's config and weights file, after the checks that need no model: the architecture,
 * each field (lib/marian.ts marianToConfig), the weights' format: model.safetensors, else pytorch_model.bin
 * (torch.save's zip format; read with withSafetensors). Sharded checkpoints are refused.
 */
export async function readMarianDir(dir: string): Promise<{ config: ModelConfig; weights: string }> {
  const what = `Transformer.fromHF: ${dir}`;
  const j = await readJson<MarianConfigJson>(path.join(dir, MARIAN_FILES.config), 'Transformer.fromHF');
  const config = marianToConfig(j, what);
  for (const index of [`${MARIAN_FILES.weights}.index.json`, `${MARIAN_FILES.torchWeights}.index.json`])
    if (fs.existsSync(path.join(dir, index)))
      throw new Error(`${what}: ${index}: a checkpoint sharded over several files is not supported (a translator this size fits one file)`);
  for (const f of [MARIAN_FILES.weights, MARIAN_FILES.torchWeights])
    if (fs.existsSync(path.join(dir, f))) return { config, weights: path.join(dir, f) };
  throw new Error(`${what}: no ${MARIAN_FILES.weights} or ${MARIAN_FILES.torchWeights}`);
}

/**
 * Runs `use` on the weights as a safetensors file: the file itself, or for a pytorch_model.bin its tensors
 * rewritten as float32 safetensors in a temporary folder by the engine (convertTorchCheckpoint: libtorch's archive
 * reader and a state dict's pickle opcodes, native/io/torch_checkpoint.h).
 */
export async function withSafetensors<T>(weights: string, use: (file: string) => Promise<T>): Promise<T> {
  if (!weights.endsWith('.bin')) return use(weights);
  const tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'trainlarge-bin-'));
  try {
    const file = path.join(tmp, MARIAN_FILES.weights);
    await native().convertTorchCheckpoint(weights, file);
    return await use(file);
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The tokenizer of a MarianMT directory as trainlarge's (Tokenizer.find): its tokenizer.model or tokenizer.json
 * when it has one (a directory trainlarge exported), else MarianTokenizer's own files (source.spm, target.spm,
 * vocab.json: a Helsinki-NLP/opus-mt-* directory's), as the 'marian' kind. Its </s> and <pad> must be the
 * config's eos and pad, and its vocabulary no larger than the model's.
 */
export async function marianTokenizer(dir: string, c: ModelConfig): Promise<Tokenizer | undefined> {
  const tok = await Tokenizer.find(dir);
  if (!tok) return undefined;
  const what = `Transformer.fromHF: ${dir}: the tokenizer`;
  if (tok.special.eos !== c.eosId || tok.special.pad !== c.padId)
    throw new Error(
      `${what}: its </s> and <pad> (${tok.special.eos}, ${tok.special.pad}) are not the config's eos and pad (${c.eosId}, ${c.padId})`,
    );
  if (tok.vocabSize > c.vocabSize)
    throw new Error(`${what}: it has ${tok.vocabSize} pieces, more than the config's vocab_size (${c.vocabSize})`);
  return tok;
}

/**
 * MarianTokenizer's files for a SentencePiece tokenizer: source.spm = target.spm = the model, vocab.json with
 * SentencePiece's own ids, tokenizer_config.json naming MarianTokenizer. transformers' MarianTokenizer then
 * gives trainlarge's ids (it appends </s>, as Transformer.translate does). A Marian tokenizer (an imported
 * opus-mt model's) has written its own files already (Tokenizer.saveTo).
 */
export async function saveMarianTokenizer(tok: Tokenizer, dir: string): Promise<void> {
  if (tok.kind === 'marian') return; // its saveTo wrote MarianTokenizer's own files
  if (!tok.files.includes('tokenizer.model'))
    throw new Error(
      "save: format 'hf': a translator's tokenizer must be SentencePiece (MarianTokenizer reads .spm files), not a byte-level BPE",
    );
  const tmp = path.join(dir, MARIAN_FILES.source);
  await tok.save(tmp);
  await fs.promises.copyFile(tmp, path.join(dir, MARIAN_FILES.target));
  const pieces = tok.pieces(Int32Array.from({ length: tok.vocabSize }, (_, i) => i));
  await writeJsonAtomic(path.join(dir, MARIAN_FILES.vocab), Object.fromEntries(pieces.map((p, i) => [p, i])));
  const name = (id: number) => pieces[id];
  await writeFileAtomic(
    path.join(dir, MARIAN_FILES.tokenizerConfig),
    JSON.stringify(
      {
        tokenizer_class: 'MarianTokenizer',
        source_lang: null,
        target_lang: null,
        separate_vocabs: false,
        eos_token: name(tok.special.eos),
        unk_token: name(tok.special.unk),
        pad_token: name(tok.special.pad),
        model_max_length: 512,
      },
      null,
      2,
    ) + '\n',
  );
}
