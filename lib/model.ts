import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { EvaluateOptionsSchema, FillMaskOptions, fillMaskOptionsSchema, PredictOptions, PredictOptionsSchema } from './config/inference';
import {
  CreateOptions,
  CreateOptionsSchema,
  Device,
  LoadOptions,
  LoadOptionsSchema,
  ModelConfig,
  ModelConfigInput,
  parseModelConfig,
  PretrainedOptions,
  PretrainedOptionsSchema,
} from './config/model';
import { parseConfig } from './config/parse';
import { TranslateOptions, TranslateOptionsSchema, TranslationEvalOptions, TranslationEvalSchema } from './config/translate';
import { dataHandle, MlmDataset, ParallelDataset, TrainingData } from './data/dataset';
import { Tokenizer } from './data/tokenizer';
import { TokenInput, toBatch } from './data/batch';
import { checkSequences, describeValue, TokenizerLike, Unigram } from './data/tokens';
import { HF_FILES, hfArchitecture, readRobertaDir, robertaConfig } from './hf';
import {
  loadMarianWeights,
  MARIAN_ARCHITECTURE,
  MARIAN_FILES,
  marianConfig,
  marianTokenizer,
  readMarianDir,
  saveMarianTokenizer,
  saveMarianWeights,
  withSafetensors,
} from './marian';
import { readJson, RUN_FILES, writeJsonAtomic } from './io';
import { native, NativeModel, NativeTrainer } from './native';
import { rankDevice } from './config/dist';
import { scoreTranslations, searchTranslations, Translation, TranslationScore, TranslationShard, Translator } from './translate';
import { CompressionState, Tensor } from './types';

export { CompressionState, Tensor };

/** Logits: MLM (B, T, V), classify (B, C). */
export type Logits = Tensor;

/** Transformer.evaluate's options on masked-LM and classification data: EvaluateOptionsSchema's (lib/config/inference.ts). */
export type EvaluateOptions = Omit<z.input<typeof EvaluateOptionsSchema>, 'unigram'> & {
  /** MLM: the unigram model to compare with (default: the data's own, which Corpus.valid() sets). */
  unigram?: Unigram;
};

export interface EvalResult {
  loss: number;
  /** exp(loss): masked-LM perplexity for MLM data. */
  perplexity: number;
  /** Classification only. */
  accuracy?: number;
  /** Masked tokens (MLM) or examples (classify) the loss averages over. */
  count: number;
  seconds: number;
  /**
   * MLM: the loss on the targets whose input was replaced by <mask> (about 80% of them). Under 80/10/10
   * masking a tenth of the targets sit unchanged in the input, so `loss` can beat a unigram model by copying
   * them; only `maskLoss` below `maskUnigramLoss` shows that the model uses context.
   */
  maskLoss?: number;
  /** MLM: how many targets `maskLoss` averages over. */
  maskCount?: number;
  /** MLM with a unigram model: its cross-entropy on the same targets as `loss`. */
  unigramLoss?: number;
  /** MLM with a unigram model: its cross-entropy on the same targets as `maskLoss`: the honest baseline. */
  maskUnigramLoss?: number;
}

/** One masked position's candidates (Transformer.fillMask). */
export interface MaskPrediction {
  /** The sequence's index in the batch, and the token's index in the sequence. */
  sequence: number;
  position: number;
  /** The topK token ids, most likely first, and their softmax probabilities. */
  ids: number[];
  probs: number[];
  /** Each id decoded alone by the model's tokenizer (transformers' `token_str`: `States`, not the piece `▁States`); absent without one. */
  tokenStr?: string[];
}

const SaveOptionsSchema = z
  .object({
    /** 'trainlarge' (default): config.json + model.safetensors (packed when compressed); 'hf': transformers' RoBERTa. */
    format: z.enum(['trainlarge', 'hf']).default('trainlarge'),
    /** Saved beside the weights (Tokenizer.fromDir finds it). */
    tokenizer: z
      .custom<SavableTokenizer>((t) => typeof (t as SavableTokenizer | null)?.saveTo === 'function', 'expected a Tokenizer')
      .optional(),
    /** Class names, in label order (classification). */
    labels: z.array(z.string()).optional(),
    /** The trainer config of the run that made the model (Trainer.fit writes it). */
    train: z.unknown().optional(),
  })
  .strict();

/** A tokenizer that can write its files into a model directory. */
export interface SavableTokenizer {
  readonly special: { cls: number; eos: number };
  saveTo(dir: string, options?: { format?: 'trainlarge' | 'hf' }): Promise<void>;
}

export type SaveOptions = z.input<typeof SaveOptionsSchema>;

/** The on-disk config of a run directory or a saved model. */
export interface RunConfigFile {
  format: 'trainlarge-run';
  version: 1;
  model: ModelConfig;
  [key: string]: unknown;
}

/**
 * What other lib/ modules (compress, train) reach on a model. Not public: lib/index.ts does not export
 * modelInternals, and a Transformer has no public field or method for any of it.
 */
export interface ModelInternals {
  readonly handle: NativeModel;
  /** Runs native jobs on this model one at a time, in call order. */
  run<T>(job: () => Promise<T>): Promise<T>;
  /** Wraps a native model made from this one (same config unless given: a structurally pruned one is smaller). */
  derive(handle: NativeModel, config?: ModelConfig): Transformer;
  /** The metadata save() writes into model.safetensors (compressedSize counts it too). */
  fileMetadata(): Record<string, string>;
  /** evaluate()'s loss path; with `group` (a trainer in a process group) the ranks share the batches out. */
  evaluateLoss(data: TrainingData, opts: EvaluateOptions, group?: NativeTrainer): Promise<EvalResult>;
  /** evaluate()'s BLEU/chrF path; with `shard` each rank translates its share of the sources and every rank scores all. */
  scoreTranslations(
    data: ParallelDataset,
    opts: TranslationEvalOptions & { metric?: 'bleu' | 'chrf' },
    shard?: TranslationShard,
  ): Promise<TranslationScore>;
}

const internals = new WeakMap<Transformer, ModelInternals>();

/** The native side of a model, for lib/ modules only. */
export function modelInternals(model: Transformer): ModelInternals {
  const i = internals.get(model);
  if (!i) throw new TypeError('expected a Transformer (Transformer.create, load or fromPretrained)');
  return i;
}

/** The device a model is made or loaded on (checked by its options' schema): under a multi-process launch this rank's GPU (rankDevice). */
function modelDevice(device: Device): Device {
  return rankDevice(device, () => native().engineInfo().cudaDevices);
}

/**
 * A RoBERTa-style Transformer encoder with an MLM or classification head, held in native memory.
 * Every heavy call runs off the main thread and returns a Promise; calls on one model are queued.
 */
export class Transformer {
  private queue: Promise<unknown> = Promise.resolve();
  /** The tokenizer saved beside the weights, found by load, fromPretrained and fromHF (save({ tokenizer }) writes it). */
  tokenizer?: Tokenizer;

  private constructor(
    private readonly handle: NativeModel,
    readonly config: ModelConfig,
  ) {
    internals.set(this, {
      handle,
      run: (job) => this.run(job),
      derive: (h, config = this.config) => new Transformer(h, config),
      fileMetadata: () => this.fileMetadata(),
      evaluateLoss: (data, opts, group) => this.evaluateLoss(data, opts, group),
      scoreTranslations: (data, opts, shard) => this.scoreTranslations(data, opts, shard) as Promise<TranslationScore>,
    });
  }

  /** A new model with BERT initialisation (N(0, 0.02)) from `seed`. */
  static async create(config: ModelConfigInput, options: CreateOptions = {}): Promise<Transformer> {
    const c = parseModelConfig(config);
    const opts = parseConfig(CreateOptionsSchema, options, 'create options');
    const device = modelDevice(opts.device);
    const handle = await native().createModel(c, opts.seed, device);
    return new Transformer(handle, c);
  }

  /** Loads a model saved by `save` (or a run directory written by Trainer.fit). */
  static async load(dir: string, options: LoadOptions = {}): Promise<Transformer> {
    const opts = parseConfig(LoadOptionsSchema, options, 'load options');
    const file = await readJson<RunConfigFile>(path.join(dir, RUN_FILES.config), 'Transformer.load');
    if (file.format !== 'trainlarge-run') throw new Error(`Transformer.load: ${dir}/config.json is not a trainlarge config`);
    const c = parseModelConfig(file.model);
    const device = modelDevice(opts.device);
    const handle = await native().loadModel(c, path.join(dir, RUN_FILES.weights), device);
    const model = new Transformer(handle, c);
    model.tokenizer = await Tokenizer.find(dir);
    return model;
  }

  /**
   * A pretrained body under a new head: the encoder weights of a saved MLM model (or run directory)
   * with a freshly initialised head for `task` (RoBERTa fine-tuning). Fails if any encoder weight is
   * missing from the file.
   */
  static async fromPretrained(dir: string, options: PretrainedOptions = {}): Promise<Transformer> {
    const opts = parseConfig(PretrainedOptionsSchema, options, 'fromPretrained options');
    const file = await readJson<RunConfigFile>(path.join(dir, RUN_FILES.config), 'Transformer.fromPretrained');
    if (file.format !== 'trainlarge-run') throw new Error(`Transformer.fromPretrained: ${dir}/config.json is not a trainlarge config`);
    const { numLabels: _old, ...body } = file.model;
    const task = opts.task ?? file.model.task;
    const model = await Transformer.create(
      { ...body, task, ...(task === 'classify' ? { numLabels: opts.numLabels } : {}) },
      { seed: opts.seed, device: opts.device },
    );
    const missing = await model.run(() => model.handle.loadWeights(path.join(dir, RUN_FILES.weights), false));
    const head = task === 'classify' ? 'cls_head.' : 'mlm_head.';
    const body_missing = missing.filter((n) => !n.startsWith(head));
    if (body_missing.length > 0) {
      model.dispose();
      throw new Error(`Transformer.fromPretrained: ${dir} lacks encoder weights (first: '${body_missing[0]}')`);
    }
    model.tokenizer = await Tokenizer.find(dir);
    return model;
  }

  /**
   * A transformers RoBERTa directory (config.json + model.safetensors): RobertaForMaskedLM,
   * RobertaForSequenceClassification or RobertaModel (XLM-RoBERTa's too). With `task` different from the
   * checkpoint's (e.g. 'classify' on an MLM checkpoint) the body is loaded under a fresh head from `seed`.
   * Every tensor the model needs must be in the file with its shape; a model that cannot fit in the free
   * memory is refused before anything is allocated. Class names of a classification checkpoint are in
   * `hfLabels(dir)`. A MarianMT directory (config.json naming MarianMTModel: Helsinki-NLP's opus-mt models, or
   * a translator trainlarge exported) loads as a translator with its tokenizer (see fromMarian).
   */
  static async fromHF(dir: string, options: PretrainedOptions = {}): Promise<Transformer> {
    const opts = parseConfig(PretrainedOptionsSchema, options, 'fromHF options');
    if ((await hfArchitecture(dir)) === MARIAN_ARCHITECTURE) return Transformer.fromMarian(dir, opts);
    const hf = await readRobertaDir(dir, opts);
    const model = await Transformer.create(hf.config, { seed: opts.seed, device: opts.device });
    // A head of another task or size is new: the body must load whole, the head may be missing.
    const strict = hf.checkpointTask === hf.config.task && opts.numLabels === undefined;
    try {
      await model.run(() => model.handle.loadRoberta(hf.weights, hf.paddingIdx, strict));
    } catch (e) {
      model.dispose();
      throw new Error(`Transformer.fromHF: ${dir}: ${(e as Error).message}`);
    }
    model.tokenizer = await Tokenizer.find(dir);
    return model;
  }

  /**
   * fromHF for a MarianMT directory (lib/marian.ts): a translator with Marian's architecture options and its
   * tokenizer: a public Helsinki-NLP/opus-mt-* directory's (MarianTokenizer's source.spm, target.spm and
   * vocab.json, as a 'marian' Tokenizer) or trainlarge's own; weights from model.safetensors or pytorch_model.bin.
   */
  private static async fromMarian(dir: string, opts: z.output<typeof PretrainedOptionsSchema>): Promise<Transformer> {
    if (opts.task !== undefined || opts.numLabels !== undefined)
      throw new TypeError(`Transformer.fromHF: ${dir} is a MarianMT translator; task and numLabels do not apply`);
    const hf = await readMarianDir(dir);
    const tokenizer = await marianTokenizer(dir, hf.config);
    const model = await Transformer.create(hf.config, { seed: opts.seed, device: opts.device });
    try {
      await withSafetensors(hf.weights, (file) => loadMarianWeights(modelInternals(model), hf.config, file));
    } catch (e) {
      model.dispose();
      throw new Error(`Transformer.fromHF: ${dir}: ${(e as Error).message}`);
    }
    model.tokenizer = tokenizer;
    return model;
  }

  /** A deep copy: weights and compression state (masks, quantization, pruning schedule). */
  async clone(): Promise<Transformer> {
    const handle = await this.run(() => this.handle.clone());
    const copy = new Transformer(handle, this.config);
    copy.tokenizer = this.tokenizer;
    return copy;
  }

  /** What compression this model carries (see prune and quantize). */
  get compression(): CompressionState {
    return this.handle.compression();
  }

  /** A copy of one parameter by its safetensors name (e.g. 'layers.0.attn.qkv.weight'). */
  async weight(name: string): Promise<Tensor> {
    return this.run(() => this.handle.parameter(name));
  }

  get parameterCount(): number {
    return this.handle.parameterCount;
  }

  /** Bytes the parameters take in memory (fp32). */
  get parameterBytes(): number {
    return this.handle.parameterBytes;
  }

  get device(): 'cpu' | 'cuda' {
    return this.handle.device.startsWith('cuda') ? 'cuda' : 'cpu';
  }

  get disposed(): boolean {
    return this.handle.disposed;
  }

  /** Logits for a batch of token ids (dropout off, no gradients). */
  async predict(tokens: TokenInput, options: PredictOptions = {}): Promise<Logits> {
    const opts = parseConfig(PredictOptionsSchema, options, 'predict options');
    const { ids, batch, length, mask } = toBatch(tokens, this.config);
    return this.run(() => this.handle.predict(ids, batch, length, mask, opts.precision));
  }

  /**
   * Translate models: the teacher-forced logits (B, T, V) of `targets` given `sources` (token ids, ragged is
   * fine; each source ending in eos, each target its tokens then eos). Row t scores target token t after
   * the decoder has read BOS and targets[.. t - 1]: transformers' `logits` for `labels` = targets.
   */
  async predictTranslation(sources: TokenInput, targets: ArrayLike<number>[], options: PredictOptions = {}): Promise<Logits> {
    if (this.config.task !== 'translate')
      throw new TypeError(`predictTranslation: needs a 'translate' model, this one is '${this.config.task}'`);
    const opts = parseConfig(PredictOptionsSchema, options, 'predict options');
    const { ids, batch, length, mask } = toBatch(sources, this.config);
    if (!Array.isArray(targets) || targets.length !== batch) throw new RangeError(`targets: expected ${batch} sequences, one per source`);
    checkSequences(targets, 'targets', this.config.vocabSize);
    const T = Math.max(...targets.map((t) => t.length));
    if (T === 0 || T > this.config.maxLen)
      throw new RangeError(`targets: the longest has ${T} tokens; expected 1..maxLen (${this.config.maxLen})`);
    const tgt = new Int32Array(batch * T).fill(this.config.padId);
    targets.forEach((t, b) => tgt.set(Array.from(t), b * T));
    return this.run(() => this.handle.predict(ids, batch, length, mask, opts.precision, tgt, T));
  }

  /**
   * Masked-LM: the `topK` most likely tokens at each position holding `maskId` (default: the mask id of the model's tokenizer, else 4, trainlarge's
   * `<mask>`), or at the given `[sequence, position]` pairs. The vocabulary projection runs on those rows
   * only, so this is far cheaper than `predict`'s (B, T, V) logits.
   */
  async fillMask(tokens: TokenInput, options: FillMaskOptions = {}): Promise<MaskPrediction[]> {
    if (this.config.task !== 'mlm') throw new TypeError(`fillMask: a '${this.config.task}' model has no masked-LM head`);
    const opts = parseConfig(fillMaskOptionsSchema(this.config.vocabSize), options, 'fillMask options');
    const topK = opts.topK;
    const { ids, batch, length, mask } = toBatch(tokens, this.config);
    let where: [number, number][];
    if (opts.positions) {
      where = opts.positions;
      for (const [b, t] of where) {
        if (!Number.isInteger(b) || !Number.isInteger(t) || b < 0 || b >= batch || t < 0 || t >= length) {
          throw new RangeError(`positions: [${b}, ${t}] is outside the batch (${batch} x ${length})`);
        }
      }
    } else {
      const maskId = opts.maskId ?? this.tokenizer?.special.mask ?? 4;
      where = [];
      for (let i = 0; i < ids.length; i++) if (ids[i] === maskId && (!mask || mask[i])) where.push([Math.floor(i / length), i % length]);
    }
    if (where.length === 0) return [];
    const flat = Int32Array.from(where, ([b, t]) => b * length + t);
    const r = await this.run(() => this.handle.predictTopK(ids, batch, length, mask, { positions: flat, topK, precision: opts.precision }));
    const tok = this.tokenizer;
    return where.map(([sequence, position], n) => {
      const top = Array.from(r.ids.subarray(n * r.k, (n + 1) * r.k));
      const probs = Array.from(r.probs.subarray(n * r.k, (n + 1) * r.k));
      return { sequence, position, ids: top, probs, ...(tok ? { tokenStr: top.map((id) => tok.decode([id])) } : {}) };
    });
  }

  /**
   * Translate models: the texts translated by beam search (greedy with beam 1), all in C++ off the main
   * thread. Each source is encoded with the model's tokenizer (or `opts.tokenizer`), truncated to maxLen - 1
   * tokens and ended with eos. With `scores: true`, { text, score, nbest } per sentence.
   */
  async translate(texts: string[], opts?: TranslateOptions & { scores?: false; tokenizer?: TokenizerLike }): Promise<string[]>;
  async translate(texts: string[], opts: TranslateOptions & { scores: true; tokenizer?: TokenizerLike }): Promise<Translation[]>;
  async translate(texts: string[], opts: TranslateOptions & { tokenizer?: TokenizerLike } = {}): Promise<string[] | Translation[]> {
    const { tokenizer, ...rest } = opts;
    const o = parseConfig(TranslateOptionsSchema, rest, 'translate options');
    const out = await searchTranslations(this.translator(), texts, o, tokenizer, 'translate');
    return o.scores ? out : out.map((t) => t.text);
  }

  /**
   * Mean loss (and perplexity, accuracy) over a dataset, dropout off. On translation data: `metric` 'loss'
   * gives the validation loss (plain cross-entropy per target token); 'bleu' (default) or 'chrf' translate
   * the split's sources (beam 4 by default) and score them against its targets with corpusBleu and
   * corpusChrf (sacreBLEU 2.6.0's scores and signatures).
   */
  async evaluate(data: ParallelDataset, opts: TranslationEvalOptions & { metric?: 'bleu' | 'chrf' }): Promise<TranslationScore>;
  async evaluate(data: TrainingData, opts?: EvaluateOptions | (TranslationEvalOptions & { metric: 'loss' })): Promise<EvalResult>;
  async evaluate(data: TrainingData, opts: EvaluateOptions | TranslationEvalOptions = {}): Promise<EvalResult | TranslationScore> {
    const kind = this.config.task;
    if (data.kind !== kind) {
      throw new TypeError(`evaluate: a '${this.config.task}' model cannot evaluate '${data.kind}' data`);
    }
    if (data instanceof ParallelDataset) return this.scoreTranslations(data, opts);
    return this.evaluateLoss(data, opts);
  }

  private async scoreTranslations(
    data: ParallelDataset,
    opts: TranslationEvalOptions & EvaluateOptions & { metric?: 'bleu' | 'chrf' | 'loss' },
    shard?: TranslationShard,
  ): Promise<TranslationScore | EvalResult> {
    // seed: masking of MLM data; translation data has none.
    const { batchSize, maxSamples, precision, seed: _seed, ...rest } = opts;
    const o = parseConfig(TranslationEvalSchema, { ...rest, batchSize, maxSamples, precision }, 'evaluate options');
    if (o.metric === 'loss') return this.evaluateLoss(data, { batchSize: o.batchSize, maxSamples: o.maxSamples, precision: o.precision });
    return scoreTranslations(this.translator(), data, { ...o, metric: o.metric }, shard);
  }

  private async evaluateLoss(data: TrainingData, options: EvaluateOptions, group?: NativeTrainer): Promise<EvalResult> {
    const opts = parseConfig(EvaluateOptionsSchema, options, 'evaluate options');
    if (opts.unigram !== undefined && !(opts.unigram instanceof Unigram)) {
      throw new TypeError(
        `evaluate options: unigram: expected a Unigram (corpus.unigram() or Unigram.fromTokens), got ${describeValue(opts.unigram)}`,
      );
    }
    const r = await this.run(() =>
      this.handle.evaluate(
        dataHandle(data),
        { batchSize: opts.batchSize, maxSamples: opts.maxSamples ?? 0, seed: opts.seed, precision: opts.precision },
        group,
      ),
    );
    const unigram = opts.unigram ?? (data instanceof MlmDataset ? data.unigram : undefined);
    return {
      loss: r.loss,
      perplexity: Math.exp(r.loss),
      ...(this.config.task === 'classify' ? { accuracy: r.correct / r.count } : {}),
      count: r.count,
      seconds: r.seconds,
      ...(r.maskLoss !== undefined ? { maskLoss: r.maskLoss, maskCount: r.maskCount } : {}),
      ...(unigram && r.targetCounts && r.maskTargetCounts
        ? { unigramLoss: unigram.crossEntropy(r.targetCounts), maskUnigramLoss: unigram.crossEntropy(r.maskTargetCounts) }
        : {}),
    };
  }

  /**
   * Writes `dir/model.safetensors` and `dir/config.json`: trainlarge's format (a compressed model packed, its
   * file size the reported size), or with `format: 'hf'` a directory transformers loads with
   * `from_pretrained(dir)` (RobertaForMaskedLM / RobertaForSequenceClassification; a compressed model is
   * written dequantized, as float32). `tokenizer` is saved beside the weights; `labels` names the classes.
   */
  async save(dir: string, options: SaveOptions = {}): Promise<void> {
    const o = parseConfig(SaveOptionsSchema, options, 'save options');
    if (o.labels && this.config.task === 'classify' && o.labels.length !== this.config.numLabels) {
      throw new RangeError(`save options: labels: has ${o.labels.length} names but the model has numLabels ${this.config.numLabels}`);
    }
    await fs.promises.mkdir(dir, { recursive: true });
    if (o.format === 'hf' && this.config.task === 'translate') {
      // MarianMT (lib/marian.ts): the config first, so a translator that is not one stops before any file is written.
      const { config, generation } = marianConfig(this.config, { compression: this.compression });
      if (o.tokenizer) {
        await o.tokenizer.saveTo(dir);
        await saveMarianTokenizer(o.tokenizer as Tokenizer, dir);
      }
      await saveMarianWeights(modelInternals(this), this.config, path.join(dir, MARIAN_FILES.weights));
      await writeJsonAtomic(path.join(dir, MARIAN_FILES.generation), generation);
      await writeJsonAtomic(path.join(dir, MARIAN_FILES.config), config);
    } else if (o.format === 'hf') {
      // The tokenizer first: one that transformers cannot read stops the export before the weights are written.
      if (o.tokenizer) await o.tokenizer.saveTo(dir, { format: 'hf' });
      const config = robertaConfig(this.config, { labels: o.labels, special: o.tokenizer?.special, compression: this.compression });
      await this.run(() => this.handle.saveRoberta(path.join(dir, HF_FILES.weights), this.config.padId, { format: 'pt' }));
      await writeJsonAtomic(path.join(dir, HF_FILES.config), config);
    } else {
      const { format: _format, tokenizer: _tokenizer, ...extra } = o;
      await this.run(() => this.handle.save(path.join(dir, RUN_FILES.weights), this.fileMetadata()));
      await writeJsonAtomic(path.join(dir, RUN_FILES.config), { ...extra, format: 'trainlarge-run', version: 1, model: this.config });
      if (o.tokenizer) await o.tokenizer.saveTo(dir);
    }
  }

  /** The metadata save() writes into model.safetensors (compressedSize counts it too). */
  private fileMetadata(): Record<string, string> {
    return { trainlarge_config: JSON.stringify(this.config) };
  }

  /** Frees the native memory now (a running job finishes first); finalizers free it otherwise. */
  dispose(): void {
    this.handle.dispose();
  }

  /** What lib/translate.ts needs of this model. */
  private translator(): Translator {
    return { config: this.config, handle: this.handle, tokenizer: this.tokenizer, run: (job) => this.run(job) };
  }

  /** Runs native jobs on this model one at a time, in call order. */
  private run<T>(job: () => Promise<T>): Promise<T> {
    const next = this.queue.then(job, job);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
