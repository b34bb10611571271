// One served model: a saved Transformer (plain, pruned or quantized; optionally converted to int8 kernels),
// its tokenizer, label names, and the micro-batcher that turns concurrent requests into one native call.
import * as fs from 'fs';
import * as path from 'path';
import { toInt8 } from '../compress/ops';
import { classificationLayout } from '../data/task';
import { Tokenizer } from '../data/tokenizer';
import { CompressionState, Transformer } from '../model';
import { BatcherOptions, MicroBatcher } from './batcher';
import { Metrics } from './metrics';

/** How to serve one model (the service's config file lists these). */
export interface ModelSpec {
  /** The name in URLs: /v1/models/NAME/... */
  name: string;
  /** A directory written by Transformer.save or Trainer.fit (config.json + model.safetensors). */
  dir: string;
  /** SentencePiece model; default the tokenizer saved in DIR (DIR/tokenizer.model). */
  tokenizer?: string;
  /** Classification label names; default the `labels` saved in DIR/config.json, else "0", "1", ... */
  labels?: string[];
  /** Run the encoder's Linear layers on libtorch's int8 kernels (toInt8; CPU only). */
  int8?: boolean;
  /** Where the model runs: 'cpu' (default) or 'cuda' (a CUDA build of the addon). */
  device?: 'cpu' | 'cuda';
}

/** A request's fault: answered 400 with this message (it names the field). */
export class InputError extends Error {
  readonly code = 'BAD_INPUT';
}

export interface ClassifyInput {
  text: string;
  pair?: string;
}

export interface ClassifyResult {
  label: string;
  score: number;
  scores: Record<string, number>;
}

export interface FillMaskResult {
  /** The text with each <mask> replaced by its most likely token. */
  sequence: string;
  masks: { position: number; candidates: { id: number; token: string; score: number }[] }[];
}

export const MASK = '<mask>';

type Item = { ids: Int32Array; topK: number };

export class ServedModel {
  readonly batcher: MicroBatcher<Item, ClassifyResult | FillMaskResult['masks']>;

  private constructor(
    readonly spec: ModelSpec,
    readonly model: Transformer,
    readonly tokenizer: Tokenizer,
    readonly labels: string[],
    batching: BatcherOptions,
    private readonly metrics: Metrics,
  ) {
    this.batcher = new MicroBatcher(
      batching,
      (items) => this.runBatch(items),
      ({ size, seconds }) => {
        metrics.batchSize.observe({ model: spec.name }, size);
        metrics.batchSeconds.observe({ model: spec.name }, seconds);
      },
    );
  }

  static async load(spec: ModelSpec, batching: BatcherOptions, metrics: Metrics): Promise<ServedModel> {
    const dir = path.resolve(spec.dir);
    let tokenizer: Tokenizer;
    if (spec.tokenizer) {
      const tokFile = path.resolve(spec.tokenizer);
      if (!fs.existsSync(tokFile))
        throw new Error(
          `models.${spec.name}.tokenizer: ${tokFile} does not exist (give the SentencePiece model the model was trained with)`,
        );
      tokenizer = Tokenizer.load(tokFile);
    } else {
      try {
        tokenizer = await Tokenizer.fromDir(dir);
      } catch (e) {
        throw new Error(`models.${spec.name}.tokenizer: ${(e as Error).message}; or give "tokenizer": FILE`);
      }
    }
    if (spec.int8 && spec.device === 'cuda')
      throw new Error(`models.${spec.name}: int8 runs on CPU only; drop "int8" or use "device": "cpu"`);
    let model = await Transformer.load(dir, { device: spec.device ?? 'cpu' });
    if (model.config.task === 'translate') {
      model.dispose();
      throw new Error(`models.${spec.name}: the service serves 'mlm' and 'classify' models; translate with Transformer.translate`);
    }
    if (tokenizer.vocabSize !== model.config.vocabSize) {
      model.dispose();
      throw new Error(
        `models.${spec.name}.tokenizer: ${tokenizer.vocabSize} pieces, but the model has vocabSize ${model.config.vocabSize}`,
      );
    }
    if (spec.int8) {
      const fp32 = model;
      model = await toInt8(fp32);
      fp32.dispose();
    }
    let labels: string[] = [];
    if (model.config.task === 'classify') {
      const saved = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { labels?: unknown }).labels;
      const numLabels = model.config.numLabels ?? 0;
      labels = spec.labels ?? (Array.isArray(saved) ? saved.map(String) : Array.from({ length: numLabels }, (_, i) => String(i)));
      if (labels.length !== numLabels) {
        model.dispose();
        throw new Error(`models.${spec.name}.labels: ${labels.length} names for a model with ${numLabels} labels`);
      }
    }
    return new ServedModel(spec, model, tokenizer, labels, batching, metrics);
  }

  get task(): 'mlm' | 'classify' {
    return this.model.config.task as 'mlm' | 'classify'; // load refuses 'translate' models
  }

  info(): {
    name: string;
    task: string;
    labels?: string[];
    maxLen: number;
    vocabSize: number;
    dModel: number;
    layers: number;
    heads: number;
    parameters: number;
    int8: boolean;
    compression: Pick<CompressionState, 'pruned' | 'quantized'> | null;
  } {
    const c = this.model.config;
    const comp = this.model.compression;
    const compressed = Object.keys(comp.pruned).length + Object.keys(comp.quantized).length > 0;
    return {
      name: this.spec.name,
      task: c.task,
      ...(c.task === 'classify' ? { labels: this.labels } : {}),
      maxLen: c.maxLen,
      vocabSize: c.vocabSize,
      dModel: c.dModel,
      layers: c.layers,
      heads: c.heads,
      parameters: this.model.parameterCount,
      int8: comp.int8 !== undefined,
      compression: compressed ? { pruned: comp.pruned, quantized: comp.quantized } : null,
    };
  }

  /** `<s> text </s>` (or the pair layout), as in fine-tuning. Over-long inputs are an InputError unless `truncate`. */
  async classify(inputs: ClassifyInput[], truncate: boolean, field: string): Promise<ClassifyResult[]> {
    if (this.task !== 'classify')
      throw new InputError(`model '${this.spec.name}' is a masked-LM; use /v1/models/${this.spec.name}/fill-mask`);
    const texts = inputs.flatMap((x) => (x.pair === undefined ? [x.text] : [x.text, x.pair]));
    const encoded = await this.tokenizer.encodeBatch(texts, 1);
    const maxLen = this.model.config.maxLen;
    let j = 0;
    const items = inputs.map((x, i) => {
      const a = encoded[j++];
      const b = x.pair === undefined ? undefined : encoded[j++];
      const need = a.length + (b ? b.length + 4 : 2);
      if (need > maxLen && !truncate) {
        throw new InputError(
          `${field}[${i}]: ${need} tokens with the special tokens, more than model '${this.spec.name}' accepts (maxLen ${maxLen}); shorten it or send "truncate": true`,
        );
      }
      return { ids: classificationLayout(this.tokenizer, a, b, maxLen), topK: 0 };
    });
    return (await Promise.all(this.submit(items))) as ClassifyResult[];
  }

  /** Each `<mask>` in a text is predicted; the text must hold at least one. */
  async fillMask(texts: string[], topK: number, field: string): Promise<FillMaskResult[]> {
    if (this.task !== 'mlm') throw new InputError(`model '${this.spec.name}' is a classifier; use /v1/models/${this.spec.name}/classify`);
    const { cls, eos, mask } = this.tokenizer.special;
    const maxLen = this.model.config.maxLen;
    const segments = texts.map((t, i) => {
      const parts = t.split(MASK);
      if (parts.length < 2) throw new InputError(`${field}[${i}]: has no ${MASK} to fill`);
      return parts;
    });
    const encoded = await this.tokenizer.encodeBatch(segments.flat(), 1);
    let j = 0;
    const items = segments.map((parts, i) => {
      const ids: number[] = [cls];
      parts.forEach((_, p) => {
        if (p > 0) ids.push(mask);
        ids.push(...encoded[j++]);
      });
      ids.push(eos);
      if (ids.length > maxLen) {
        throw new InputError(
          `${field}[${i}]: ${ids.length} tokens with the special tokens, more than model '${this.spec.name}' accepts (maxLen ${maxLen})`,
        );
      }
      return { ids: Int32Array.from(ids), topK };
    });
    const masks = (await Promise.all(this.submit(items))) as FillMaskResult['masks'][];
    return items.map(({ ids }, i) => {
      const filled = Array.from(ids);
      for (const m of masks[i]) filled[m.position] = m.candidates[0].id;
      return { sequence: this.tokenizer.decode(filled.slice(1, -1)), masks: masks[i] };
    });
  }

  private submit(items: Item[]): Promise<ClassifyResult | FillMaskResult['masks']>[] {
    const promises = this.batcher.submit(items);
    this.metrics.admitted.inc({ model: this.spec.name }, items.length);
    return promises;
  }

  /** One native call for the whole batch (padded to its longest input, with an attention mask). */
  private async runBatch(items: Item[]): Promise<(ClassifyResult | FillMaskResult['masks'])[]> {
    const seqs = items.map((x) => x.ids);
    if (this.task === 'classify') {
      const { data, dims } = await this.model.predict(seqs);
      const C = dims[1];
      return items.map((_, b) => {
        const row = data.subarray(b * C, (b + 1) * C);
        const max = Math.max(...row);
        const exp = Array.from(row, (v) => Math.exp(v - max));
        const z = exp.reduce((a, v) => a + v, 0);
        const probs = exp.map((v) => v / z);
        const best = probs.indexOf(Math.max(...probs));
        return { label: this.labels[best], score: probs[best], scores: Object.fromEntries(this.labels.map((l, c) => [l, probs[c]])) };
      });
    }
    const topK = Math.max(...items.map((x) => x.topK));
    const preds = await this.model.fillMask(seqs, { topK, maskId: this.tokenizer.special.mask });
    const out: FillMaskResult['masks'][] = items.map(() => []);
    for (const p of preds) {
      const ids = p.ids.slice(0, items[p.sequence].topK);
      const tokens = this.tokenizer.pieces(ids);
      out[p.sequence].push({ position: p.position, candidates: ids.map((id, r) => ({ id, token: tokens[r], score: p.probs[r] })) });
    }
    return out;
  }

  /** Answers what was admitted, then frees the model. */
  async close(): Promise<void> {
    await this.batcher.close();
    this.model.dispose();
  }
}
