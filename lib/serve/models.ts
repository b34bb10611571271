// One served model: a saved Transformer (plain, pruned or quantized; optionally converted to int8 kernels),
// its tokenizer, label names, and the micro-batcher that turns concurrent requests into one native call
// (for a translate model: one search call per set of search options in the batch).
import * as fs from 'fs';
import * as path from 'path';
import { toInt8 } from '../compress/ops';
import { toBatch } from '../data/batch';
import { classificationLayout } from '../data/task';
import { Tokenizer } from '../data/tokenizer';
import { CompressionState, modelInternals, Transformer } from '../model';
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

/**
 * One candidate for a `<mask>`, in transformers' fill-mask pipeline's fields (`score`, `token` the id,
 * `token_str` the decoded token, `sequence` the text with it filled in), plus `piece`: the tokenizer's own
 * piece for the id (SentencePiece's `▁States` where `token_str` is `States`).
 */
export interface FillMaskCandidate {
  score: number;
  token: number;
  token_str: string;
  sequence: string;
  piece: string;
}

export interface FillMaskResult {
  /** The text with each <mask> replaced by its most likely token. */
  sequence: string;
  masks: { position: number; candidates: FillMaskCandidate[] }[];
}

export const MASK = '<mask>';

/** The search a translate request asks for (Transformer.translate's options of the same names). */
export interface TranslateSearch {
  beam: number;
  nbest: number;
  lengthPenalty: number;
}

/** transformers' translation pipeline's `translation_text`, with the search's score (and nbest list). */
export interface TranslateResult {
  translation_text: string;
  /** Sum of the tokens' log-probabilities / length^lengthPenalty. */
  score: number;
  /** The `nbest` best hypotheses, best first (only when the request asked for more than one). */
  nbest?: { translation_text: string; score: number }[];
}

/**
 * Requests with at most this many characters in all are tokenized on the JS thread (a short sentence takes
 * ~20 us); longer ones go to a worker thread (Tokenizer.encodeBatch). encodeBatch's hand-off to a worker and
 * back, and the thread it starts, cost ~100 us of latency and more CPU than the encoding itself for a short
 * text. Both encode alike (one SentencePiece routine, the same word caches).
 */
export const SYNC_ENCODE_CHARS = 4096;

/**
 * What one more forward costs beyond its tokens, in padded token slots (batch x length). A medium int8
 * classifier on one thread took ~1 ms per call plus ~38 us per slot (1x16: 1.7 ms; 16x16: 11 ms; 16x64: 40 ms),
 * so ~26 slots; batches of 8 and 16 sentiment sentences ran as fast with 32 as with 64 (int8 16: 34 ms in one
 * call, 17 ms in parts; fp32: 66 and 38 ms), and 64 makes fewer calls, each a hand-off to the engine thread.
 */
export const CALL_COST_SLOTS = 64;

/**
 * A batch's lengths, sorted ascending, cut into consecutive parts that cost least in all: each part costs
 * CALL_COST_SLOTS plus its size times its longest length (what a forward padded to its longest computes).
 * Returns each part's end (exclusive); one part when splitting does not pay.
 */
export function lengthParts(sorted: number[], callCost = CALL_COST_SLOTS): number[] {
  const n = sorted.length;
  const cost = new Float64Array(n + 1).fill(Infinity);
  const from = new Int32Array(n + 1);
  cost[0] = 0;
  for (let j = 1; j <= n; j++) {
    for (let i = 0; i < j; i++) {
      const c = cost[i] + callCost + (j - i) * sorted[j - 1];
      if (c < cost[j]) {
        cost[j] = c;
        from[j] = i;
      }
    }
  }
  const ends: number[] = [];
  for (let j = n; j > 0; j = from[j]) ends.unshift(j);
  return ends;
}

type Item = { ids: Int32Array; topK: number } | { source: string; search: TranslateSearch };
/** One sequence's masks as the batch finds them: the topK ids, their probabilities and pieces per position. */
type Found = { position: number; ids: number[]; probs: number[]; pieces: string[] }[];
type Output = ClassifyResult | Found | TranslateResult;

export class ServedModel {
  readonly batcher: MicroBatcher<Item, Output>;

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
    if (tokenizer.vocabSize !== model.config.vocabSize) {
      model.dispose();
      throw new Error(
        `models.${spec.name}.tokenizer: ${tokenizer.vocabSize} pieces, but the model has vocabSize ${model.config.vocabSize}`,
      );
    }
    if (model.config.task === 'translate' && tokenizer.special.eos !== model.config.eosId) {
      model.dispose();
      throw new Error(
        `models.${spec.name}.tokenizer: its eos id (${tokenizer.special.eos}) is not the model's eosId (${model.config.eosId})`,
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

  get task(): 'mlm' | 'classify' | 'translate' {
    return this.model.config.task;
  }

  /** A request sent to another task's route: the route this model answers. */
  private wrongRoute(): InputError {
    const { name } = this.spec;
    const [what, route] = {
      mlm: ['a masked-LM', 'fill-mask'],
      classify: ['a classifier', 'classify'],
      translate: ['a translation model', 'translate'],
    }[this.task];
    return new InputError(`model '${name}' is ${what}; use /v1/models/${name}/${route}`);
  }

  info(): {
    name: string;
    task: string;
    labels?: string[];
    maxLen: number;
    vocabSize: number;
    dModel: number;
    layers: number;
    decoderLayers?: number;
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
      ...(c.task === 'translate' ? { decoderLayers: c.decoderLayers } : {}),
      heads: c.heads,
      parameters: this.model.parameterCount,
      int8: comp.int8 !== undefined,
      compression: compressed ? { pruned: comp.pruned, quantized: comp.quantized } : null,
    };
  }

  /** `<s> text </s>` (or the pair layout), as in fine-tuning. Over-long inputs are an InputError unless `truncate`. */
  async classify(inputs: ClassifyInput[], truncate: boolean, field: string, signal?: AbortSignal): Promise<ClassifyResult[]> {
    if (this.task !== 'classify') throw this.wrongRoute();
    const texts = inputs.flatMap((x) => (x.pair === undefined ? [x.text] : [x.text, x.pair]));
    const encoded = await this.encode(texts);
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
    return (await Promise.all(this.submit(items, signal))) as ClassifyResult[];
  }

  /** Each `<mask>` in a text is predicted; the text must hold at least one. */
  async fillMask(texts: string[], topK: number, field: string, signal?: AbortSignal): Promise<FillMaskResult[]> {
    if (this.task !== 'mlm') throw this.wrongRoute();
    const { cls, eos, mask } = this.tokenizer.special;
    const maxLen = this.model.config.maxLen;
    const segments = texts.map((t, i) => {
      const parts = t.split(MASK);
      if (parts.length < 2) throw new InputError(`${field}[${i}]: has no ${MASK} to fill`);
      return parts;
    });
    const encoded = await this.encode(segments.flat());
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
    const found = (await Promise.all(this.submit(items, signal))) as Found[];
    return items.map(({ ids }, i) => {
      const best = Array.from(ids);
      for (const m of found[i]) best[m.position] = m.ids[0];
      // As transformers' pipeline: each candidate's `sequence` is the text with it at its mask (the other masks
      // hold their best candidate here, where the pipeline would leave them as <mask>).
      const text = (filled: number[]) => this.tokenizer.decode(filled.slice(1, -1));
      const masks = found[i].map((m) => ({
        position: m.position,
        candidates: m.ids.map((id, r) => {
          const filled = [...best];
          filled[m.position] = id;
          return { score: m.probs[r], token: id, token_str: this.tokenizer.decode([id]), sequence: text(filled), piece: m.pieces[r] };
        }),
      }));
      return { sequence: text(best), masks };
    });
  }

  /**
   * Each text translated with `search`, as Transformer.translate does it (encoded with the model's tokenizer,
   * eos appended). Sources longer than maxLen - 1 tokens are an InputError unless `truncate` (then cut, as
   * Transformer.translate cuts them).
   */
  async translate(
    texts: string[],
    search: TranslateSearch,
    truncate: boolean,
    field: string,
    signal?: AbortSignal,
  ): Promise<TranslateResult[]> {
    if (this.task !== 'translate') throw this.wrongRoute();
    const maxLen = this.model.config.maxLen;
    if (!truncate) {
      const encoded = await this.encode(texts);
      encoded.forEach((ids, i) => {
        if (ids.length + 1 > maxLen) {
          throw new InputError(
            `${field}[${i}]: ${ids.length + 1} tokens with </s>, more than model '${this.spec.name}' accepts (maxLen ${maxLen}); shorten it or send "truncate": true`,
          );
        }
      });
    }
    const items = texts.map((source) => ({ source, search }));
    return (await Promise.all(this.submit(items, signal))) as TranslateResult[];
  }

  /** A request's texts' ids: on this thread when they are short (SYNC_ENCODE_CHARS), else on a worker thread. */
  private async encode(texts: string[]): Promise<Int32Array[]> {
    let chars = 0;
    for (const t of texts) chars += t.length;
    if (chars <= SYNC_ENCODE_CHARS) return texts.map((t) => this.tokenizer.encode(t));
    return this.tokenizer.encodeBatch(texts, 1);
  }

  /** `signal`: the request's deadline; its inputs still queued when it passes are dropped (MicroBatcher.submit). */
  private submit(items: Item[], signal?: AbortSignal): Promise<Output>[] {
    const promises = this.batcher.submit(items, signal);
    this.metrics.admitted.inc({ model: this.spec.name }, items.length);
    return promises;
  }

  /** One native call for the whole batch (padded to its longest input, with an attention mask). */
  private async runBatch(items: Item[]): Promise<Output[]> {
    if (this.task === 'translate') return this.translateBatch(items as { source: string; search: TranslateSearch }[]);
    const encoded = items as { ids: Int32Array; topK: number }[];
    const seqs = encoded.map((x) => x.ids);
    if (this.task === 'classify') {
      // The batch sorted by length and cut into parts of similar lengths (lengthParts), each part one forward
      // padded to its own longest input: a batch of 16 sentiment sentences padded to its longest is ~0.45
      // real tokens, so one call computes twice the tokens it needs.
      const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length);
      const out = new Array<ClassifyResult>(items.length);
      let start = 0;
      const parts = lengthParts(order.map((i) => seqs[i].length)).map((end) => order.slice(start, (start = end)));
      const done = await Promise.allSettled(
        parts.map(async (part) => {
          const { data, dims } = await this.forward(part.map((i) => seqs[i]));
          const C = dims[1];
          part.forEach((i, b) => (out[i] = this.classified(data.subarray(b * C, (b + 1) * C))));
        }),
      );
      // Every part ended before the batch does (so close() never frees the model under one still running).
      const failed = done.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      return out;
    }
    const topK = Math.max(...encoded.map((x) => x.topK));
    const preds = await this.model.fillMask(seqs, { topK, maskId: this.tokenizer.special.mask });
    const out: Found[] = encoded.map(() => []);
    for (const p of preds) {
      const k = encoded[p.sequence].topK;
      const ids = p.ids.slice(0, k);
      out[p.sequence].push({ position: p.position, ids, probs: p.probs.slice(0, k), pieces: this.tokenizer.pieces(ids) });
    }
    return out;
  }

  /**
   * Logits of one classify forward, straight from the native model rather than through Transformer.predict,
   * whose jobs start one after the other in JS: a batch the batcher hands over while one runs, and a batch's
   * parts, must reach the engine's queue at once, so the engine takes each the moment the one before ends.
   * Safe: the engine thread runs one job at a time, the batcher is the model's only user while it is served,
   * and close() waits for the batches in flight before it frees the model.
   */
  private forward(seqs: Int32Array[]): Promise<{ data: Float32Array; dims: number[] }> {
    const { ids, batch, length, mask } = toBatch(seqs, this.model.config);
    return modelInternals(this.model).handle.predict(ids, batch, length, mask, 'fp32');
  }

  /** One row of logits as the classify answer: softmax, the best label and every label's probability. */
  private classified(row: Float32Array): ClassifyResult {
    const max = Math.max(...row);
    const exp = Array.from(row, (v) => Math.exp(v - max));
    const z = exp.reduce((a, v) => a + v, 0);
    const probs = exp.map((v) => v / z);
    const best = probs.indexOf(Math.max(...probs));
    return { label: this.labels[best], score: probs[best], scores: Object.fromEntries(this.labels.map((l, c) => [l, probs[c]])) };
  }

  /**
   * The batch's sources in one search call per distinct search (requests usually share one), all of a
   * group's sentences in that call (batchSize: the group's size).
   */
  private async translateBatch(items: { source: string; search: TranslateSearch }[]): Promise<TranslateResult[]> {
    const groups = new Map<string, number[]>();
    items.forEach((x, i) => {
      const key = `${x.search.beam}/${x.search.nbest}/${x.search.lengthPenalty}`;
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    const out = new Array<TranslateResult>(items.length);
    for (const rows of groups.values()) {
      const { beam, nbest, lengthPenalty } = items[rows[0]].search;
      const done = await this.model.translate(
        rows.map((i) => items[i].source),
        { beam, nbest, lengthPenalty, batchSize: rows.length, scores: true, tokenizer: this.tokenizer },
      );
      rows.forEach((i, r) => {
        const t = done[r];
        out[i] = {
          translation_text: t.text,
          score: t.score,
          ...(nbest > 1 ? { nbest: t.nbest.map((h) => ({ translation_text: h.text, score: h.score })) } : {}),
        };
      });
    }
    return out;
  }

  /** Answers what was admitted, then frees the model. */
  async close(): Promise<void> {
    await this.batcher.close();
    this.model.dispose();
  }
}
