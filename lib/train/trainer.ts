import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../config/parse';
import { parseConfig } from '../config/parse';
import {
  DEFAULT_BATCH_TOKENS,
  FitOptionsInput,
  FitOptionsSchema,
  FitSettings as ParsedFit,
  parseTrainConfig,
  Precision,
  resolvePrecision,
  resolveThreads,
  TrainConfig,
  TrainConfigInput,
  UNBOUNDED_STEPS,
} from '../config/train';
import { dataHandle, ParallelDataset, TrainingData } from '../data/dataset';
import { Tokenizer } from '../data/tokenizer';
import { RUN_FILES, writeJsonAtomic } from '../io';
import { DistSetup, resolveDistributed } from '../config/dist';
import { gatherOnRanks } from './dist';
import { faultPoint, RunDirectory } from './rundir';
import { EvalResult, modelInternals, Transformer } from '../model';
import { native, NativeStepStats, NativeTrainer } from '../native';

export interface StepRecord {
  type: 'train';
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  /** Seconds of this step, and of its batch preparation within it. */
  seconds: number;
  dataSeconds: number;
  /** Training seconds so far (evaluation and checkpoints excluded), across resumes. */
  trainSeconds: number;
  /** fp16 only, and only when true: the gradients overflowed at the current loss scale, so the update was skipped. */
  skipped?: true;
  /** Data-parallel only: seconds this step spent in the gradient all-reduce (on this rank). */
  commSeconds?: number;
}

export interface EvalRecord {
  type: 'eval';
  step: number;
  loss: number;
  perplexity: number;
  accuracy?: number;
  /** MLM: the loss on <mask>-replaced inputs, and a unigram model's on the same targets (EvalResult's). */
  maskLoss?: number;
  maskUnigramLoss?: number;
  /** Translation with fit's evalBleu: corpus BLEU and chrF of the search's output on the first evalBleu.samples pairs. */
  bleu?: number;
  chrf?: number;
  trainSeconds: number;
  /** Seconds the evaluation itself took, BLEU included (not counted in trainSeconds). */
  seconds: number;
}

export type MetricRecord = StepRecord | EvalRecord;

export interface Progress {
  step: number;
  maxSteps: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
  trainSeconds: number;
  /** Seconds left at the recent pace (training only). */
  etaSeconds: number;
  lastEval?: EvalRecord;
}

/** Trainer.fit's options: FitOptionsSchema's (lib/config/train.ts: rules, defaults, docs), with the data and callback typed. */
export type FitOptions = Omit<FitOptionsInput, 'validData' | 'onProgress'> & {
  validData?: TrainingData;
  onProgress?: (p: Progress) => void;
};
type FitSettings = Omit<ParsedFit, 'validData' | 'onProgress'> & Pick<FitOptions, 'validData' | 'onProgress'>;

export interface FitResult {
  steps: number;
  resumedFrom: number;
  /**
   * Set when `dir` held something that was not resumed: a checkpoint that never completed (the process died
   * inside it) or a damaged one. Says what was passed over and where training started from.
   */
  resumeNote?: string;
  trainSeconds: number;
  trainTokens: number;
  /** What ended training: maxSteps, the seconds budget or the token budget. */
  stoppedBy: 'steps' | 'seconds' | 'tokens';
  history: MetricRecord[];
  lastEval?: EvalRecord;
}

interface TrainerFile {
  step: number;
  trainSeconds: number;
  trainTokens?: number;
  train: TrainConfig;
}

/** Raised when fit stops because its AbortSignal fired; a checkpoint was written first when fit had a dir. */
export class AbortError extends Error {
  constructor(readonly step: number) {
    super(`training aborted at step ${step}`);
    this.name = 'AbortError';
  }
}

/** Models a fit is running on now: one fit at a time per model, whichever Trainer asks. */
const fitting = new WeakSet<Transformer>();

/**
 * Trains a Transformer with AdamW, warmup + decay, clipping, accumulation and optional bf16, one
 * optimizer update per step. The work runs off the main thread; fit() decides when to evaluate,
 * checkpoint and stop.
 */
export class Trainer {
  /** The parsed config, its precision resolved ('auto' -> what this model's device computes natively). */
  readonly config: Omit<TrainConfig, 'precision'> & { precision: Precision };
  private readonly handle: NativeTrainer;
  private trainSeconds = 0;
  private trainTokens = 0;
  /** The run directory this trainer last wrote the model's tokenizer into (it does not change within a fit). */
  private tokenizerSavedIn?: string;
  /**
   * The process group this trainer trains in (config `distributed`), joined at the first fit; undefined in
   * one process.
   */
  readonly distributed?: DistSetup;
  private joined = false;

  constructor(
    readonly model: Transformer,
    config: TrainConfigInput,
  ) {
    const parsed = parseTrainConfig(config);
    const translate = model.config.task === 'translate';
    if (!translate) {
      const wrong = (['batchTokens', 'labelSmoothing'] as const).filter((f) => parsed[f] !== undefined);
      if (wrong.length) {
        throw new ConfigError(
          'train config',
          wrong.map((f) => ({ path: f, message: `only applies to 'translate' models, this one is '${model.config.task}'` })),
        );
      }
    }
    this.config = {
      ...parsed,
      ...(translate ? { batchTokens: parsed.batchTokens ?? DEFAULT_BATCH_TOKENS, labelSmoothing: parsed.labelSmoothing ?? 0 } : {}),
      precision: resolvePrecision(parsed.precision, model.device),
    };
    if (translate && this.config.batchTokens! < model.config.maxLen) {
      throw new ConfigError('train config', [
        { path: 'batchTokens', message: `must be >= the model's maxLen (${model.config.maxLen}) so the longest pair fits` },
      ]);
    }
    this.distributed = resolveDistributed(this.config.distributed);
    const threads = resolveThreads(this.config);
    this.handle = new (native().Trainer)(modelInternals(model).handle, { ...this.config, ...threads });
  }

  /** This process's rank in its process group (0 in one process). Only rank 0 writes run directories. */
  get rank(): number {
    return this.distributed?.rank ?? 0;
  }

  /** Processes training together (1 in one process). */
  get worldSize(): number {
    return this.distributed?.worldSize ?? 1;
  }

  /** Optimizer updates done. */
  get step(): number {
    return this.handle.step;
  }

  /** fp16's dynamic loss scale now (1 for other precisions). */
  get lossScale(): number {
    return this.handle.lossScale;
  }

  async fit(data: TrainingData, options: FitOptions = {}): Promise<FitResult> {
    const c = this.config;
    let opts = parseConfig(FitOptionsSchema, options, 'fit options') as FitSettings;
    if (data.kind !== this.model.config.task) {
      throw new TypeError(`fit: a '${this.model.config.task}' model cannot train on '${data.kind}' data`);
    }
    // The config's wall-clock budget, unless fit is given its own.
    if (opts.maxSeconds === undefined && c.maxSeconds !== undefined) opts = { ...opts, maxSeconds: c.maxSeconds };
    // The run directory is self-contained: the tokenizer the data's ids come from is the model's, saved beside
    // the weights (once a run directory, at its first checkpoint of this fit).
    if (data.tokenizer instanceof Tokenizer) this.model.tokenizer = data.tokenizer;
    // Without maxSteps (a seconds budget), evaluation and checkpoints follow evalEverySeconds and the end.
    const evalEvery = opts.evalEvery ?? (c.maxSteps === UNBOUNDED_STEPS ? UNBOUNDED_STEPS : Math.max(1, Math.round(c.maxSteps / 10)));
    const checkpointEvery = opts.checkpointEvery ?? evalEvery;
    if (opts.evalBleu && data.kind !== 'translate')
      throw new TypeError(`evalBleu: only applies to 'translate' data, this is '${data.kind}'`);
    if (fitting.has(this.model)) {
      throw new Error('fit: a fit is already running on this model; await it (or abort it through its signal) before starting another');
    }
    fitting.add(this.model);
    let run: RunDirectory | undefined;
    let logFd: number | undefined;
    try {
      const dist = this.distributed;
      if (dist && !this.joined) {
        await modelInternals(this.model).run(() =>
          this.handle.joinGroup({
            rank: dist.rank,
            worldSize: dist.worldSize,
            masterAddr: dist.masterAddr,
            masterPort: dist.masterPort,
            backend: dist.backend,
            timeoutSeconds: dist.timeoutSeconds,
          }),
        );
        this.joined = true;
      }
      // Only rank 0 opens (and locks, resumes from, writes) the run directory.
      run = opts.dir && this.rank === 0 ? RunDirectory.open(opts.dir) : undefined;
      let resumed: { from: number; note?: string } = run ? await this.resume(run) : { from: this.step };
      if (dist) {
        // Rank 0's weights, optimizer state, step and budgets (resumed or not) into every rank.
        const [trainSeconds, trainTokens] = await modelInternals(this.model).run(() =>
          this.handle.syncState([this.trainSeconds, this.trainTokens]),
        );
        this.trainSeconds = trainSeconds;
        this.trainTokens = trainTokens;
        resumed = { ...resumed, from: this.step };
      }
      if (run) logFd = fs.openSync(path.join(run.dir, RUN_FILES.metrics), 'a');
      const result = await this.train(data, opts, { evalEvery, checkpointEvery, run, logFd, resumed });
      // Every rank finishes together: rank 0 serves the group's store until the others are done with it.
      if (dist) await modelInternals(this.model).run(() => this.handle.barrier());
      return result;
    } finally {
      fitting.delete(this.model);
      if (logFd !== undefined) fs.closeSync(logFd);
      run?.close();
    }
  }

  private async train(
    data: TrainingData,
    opts: FitSettings,
    ctx: {
      evalEvery: number;
      checkpointEvery: number;
      run?: RunDirectory;
      logFd?: number;
      resumed: { from: number; note?: string };
    },
  ): Promise<FitResult> {
    const c = this.config;
    const { evalEvery, checkpointEvery, run, logFd } = ctx;
    const resumedFrom = ctx.resumed.from;
    let stoppedBy: FitResult['stoppedBy'] = 'steps';
    // The budget this fit has used up, if any (seconds first).
    const spent = (): 'seconds' | 'tokens' | undefined =>
      opts.maxSeconds !== undefined && this.trainSeconds >= opts.maxSeconds
        ? 'seconds'
        : opts.maxTokens !== undefined && this.trainTokens >= opts.maxTokens
          ? 'tokens'
          : undefined;
    let nextEvalSeconds = opts.evalEverySeconds
      ? (Math.floor(this.trainSeconds / opts.evalEverySeconds) + 1) * opts.evalEverySeconds
      : Infinity;
    const history: MetricRecord[] = [];
    let lastEval: EvalRecord | undefined;
    // Appended as each record comes (a killed process loses at most the line being written), and
    // fsynced before every checkpoint is committed, so a checkpoint never runs ahead of its metrics.
    const record = (r: MetricRecord) => {
      history.push(r);
      if (logFd === undefined) return;
      try {
        fs.writeSync(logFd, JSON.stringify(r) + '\n');
      } catch (e) {
        throw new Error(
          `fit: cannot append to ${path.join(run!.dir, RUN_FILES.metrics)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        );
      }
    };
    const onAbort = () => this.handle.abort();
    opts.signal?.addEventListener('abort', onAbort);
    const recent: NativeStepStats[] = [];
    // In a process group the ranks stop on an abort together: the engine agrees on it before each step.
    const dist = this.distributed !== undefined;
    let aborted = false;
    try {
      while (this.step < c.maxSteps) {
        if (!dist && opts.signal?.aborted) {
          aborted = true;
          break;
        }
        const spentBudget = spent();
        if (spentBudget) {
          stoppedBy = spentBudget;
          break;
        }
        let nextStop = Math.min(c.maxSteps, nextMultiple(this.step, evalEvery), nextMultiple(this.step, checkpointEvery));
        if (opts.maxTokens !== undefined) {
          // Steps until the token budget at the recent tokens per step (one step first, to measure it).
          const perStep = recent.length ? recent.reduce((n, s) => n + s.tokens, 0) / recent.length : Infinity;
          nextStop = Math.min(nextStop, this.step + Math.max(1, Math.ceil((opts.maxTokens - this.trainTokens) / perStep)));
        }
        // The native call returns after the step that crosses `seconds`: budgets and eval cadence hold within one step.
        const seconds = Math.min(
          opts.progressSeconds,
          (opts.maxSeconds ?? Infinity) - this.trainSeconds,
          nextEvalSeconds - this.trainSeconds,
        );
        const done = await modelInternals(this.model).run(() =>
          this.handle.steps(dataHandle(data), nextStop - this.step, Math.max(seconds, 1e-6), opts.signal?.aborted ?? false),
        );
        const stats = done.stats;
        for (const s of stats) {
          if (!Number.isFinite(s.loss) || (s.skipped && c.precision !== 'fp16')) {
            throw new Error(
              `training diverged: loss ${s.loss}, gradient norm ${s.gradNorm} at step ${s.step + 1} (lr ${s.lr.toExponential(2)}); ` +
                'lower lr, raise warmupSteps or keep clipNorm on',
            );
          }
          this.trainSeconds += s.seconds;
          this.trainTokens += s.tokens;
          record({
            type: 'train',
            step: s.step,
            loss: s.loss,
            lr: s.lr,
            gradNorm: s.gradNorm,
            tokens: s.tokens,
            seconds: s.seconds,
            dataSeconds: s.dataSeconds,
            trainSeconds: this.trainSeconds,
            ...(s.skipped ? { skipped: true as const } : {}),
            ...(dist ? { commSeconds: s.commSeconds } : {}),
          });
          recent.push(s);
          if (recent.length > 20) recent.shift();
        }
        if (done.aborted || (!dist && opts.signal?.aborted)) {
          aborted = true;
          break;
        }
        const atEnd = this.step >= c.maxSteps || spent() !== undefined;
        const evalDue = this.trainSeconds >= nextEvalSeconds;
        if (evalDue) nextEvalSeconds = (Math.floor(this.trainSeconds / opts.evalEverySeconds!) + 1) * opts.evalEverySeconds!;
        if (opts.validData && (this.step % evalEvery === 0 || atEnd || evalDue)) {
          lastEval = await this.evaluateRecord(opts.validData, opts.evalSamples, opts.evalBleu);
          record(lastEval);
        }
        if (run && (this.step % checkpointEvery === 0 || atEnd)) await this.writeCheckpoint(run, logFd);
        if (this.rank === 0) opts.onProgress?.(this.progress(recent, lastEval));
      }
      if (aborted || (!dist && opts.signal?.aborted)) {
        if (run) await this.writeCheckpoint(run, logFd);
        if (dist) await modelInternals(this.model).run(() => this.handle.barrier());
        throw new AbortError(this.step);
      }
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    return {
      steps: this.step,
      resumedFrom,
      ...(ctx.resumed.note ? { resumeNote: ctx.resumed.note } : {}),
      trainSeconds: this.trainSeconds,
      trainTokens: this.trainTokens,
      stoppedBy,
      history,
      lastEval,
    };
  }

  /**
   * Writes a checkpoint of this trainer and its model to `dir` (as fit does every `checkpointEvery` steps):
   * complete or not at all, whenever the process dies. In a process group only rank 0 writes; the others return.
   */
  async checkpoint(dir: string): Promise<void> {
    if (fitting.has(this.model)) throw new Error('checkpoint: a fit is running on this model; it writes its own checkpoints');
    if (this.rank !== 0) return; // the ranks hold the same state: rank 0 writes it
    const run = RunDirectory.open(dir);
    try {
      await this.writeCheckpoint(run);
    } finally {
      run.close();
    }
  }

  /**
   * The metrics so far on disk, then the state file (weights + AdamW moments + step, one file written
   * atomically), then the manifest that makes it the newest complete checkpoint, then the views
   * (model.safetensors, config.json, trainer.json) that Transformer.load(dir) and people read.
   */
  private async writeCheckpoint(run: RunDirectory, logFd?: number): Promise<void> {
    const file = run.stateFile(this.step);
    try {
      if (logFd !== undefined) fs.fsyncSync(logFd);
      await modelInternals(this.model).run(() => this.handle.saveState(path.join(run.dir, file)));
    } catch (e) {
      throw new Error(
        `checkpoint: step ${this.step} was not saved (the previous checkpoint in ${run.dir} stands): ${(e as Error).message}`,
      );
    }
    faultPoint('state');
    await run.commit(
      { step: this.step, file, trainSeconds: this.trainSeconds, trainTokens: this.trainTokens },
      this.model.config,
      this.config,
    );
    const view: TrainerFile = { step: this.step, trainSeconds: this.trainSeconds, trainTokens: this.trainTokens, train: this.config };
    await writeJsonAtomic(path.join(run.dir, RUN_FILES.trainer), view);
    const tokenizer = this.tokenizerSavedIn === run.dir ? undefined : this.model.tokenizer;
    await this.model.save(run.dir, { train: this.config, tokenizer });
    this.tokenizerSavedIn = run.dir;
  }

  /** Frees the optimizer state. */
  dispose(): void {
    this.handle.dispose();
  }

  private async evaluateRecord(data: TrainingData, maxSamples?: number, bleu?: FitSettings['evalBleu']): Promise<EvalRecord> {
    const common = {
      batchSize: this.config.evalBatchSize ?? this.config.batchSize,
      maxSamples,
      precision: this.config.precision === 'bf16' ? ('bf16' as const) : ('fp32' as const),
    };
    // Translation: the validation loss (plain cross-entropy), not BLEU, at every evaluation during training. In a
    // process group each rank evaluates its share of the batches and every rank gets the whole set's figures.
    if (data.kind !== this.model.config.task)
      throw new TypeError(`evaluate: a '${this.model.config.task}' model cannot evaluate '${data.kind}' data`);
    const r: EvalResult = await modelInternals(this.model).evaluateLoss(
      data,
      { ...common, ...(data.kind === 'translate' ? {} : { seed: this.config.evalSeed }) },
      this.distributed ? this.handle : undefined,
    );
    // BLEU on a fixed small subset with a small beam: what a wall-clock BLEU curve can afford. In a process group
    // each rank translates its share of the sources and every rank scores them all.
    const dist = this.distributed;
    const b =
      bleu && data instanceof ParallelDataset
        ? await modelInternals(this.model).scoreTranslations(
            data,
            { metric: 'bleu', beam: bleu.beam, maxSamples: bleu.samples, precision: common.precision },
            dist ? { rank: dist.rank, worldSize: dist.worldSize, gather: (h) => gatherOnRanks(dist, h) } : undefined,
          )
        : undefined;
    return {
      type: 'eval',
      step: this.step,
      loss: r.loss,
      perplexity: r.perplexity,
      ...(r.accuracy !== undefined ? { accuracy: r.accuracy } : {}),
      ...(r.maskLoss !== undefined ? { maskLoss: r.maskLoss } : {}),
      ...(r.maskUnigramLoss !== undefined ? { maskUnigramLoss: r.maskUnigramLoss } : {}),
      ...(b ? { bleu: b.bleu, chrf: b.chrf } : {}),
      trainSeconds: this.trainSeconds,
      seconds: r.seconds + (b?.seconds ?? 0),
    };
  }

  /**
   * Loads the newest complete checkpoint in the run directory, if any, and drops metrics logged after it
   * (and a line torn by a kill). With none, training starts fresh from this model; when the directory held
   * an incomplete or damaged one, the note says so (and Node prints it as a warning).
   */
  private async resume(run: RunDirectory): Promise<{ from: number; note?: string }> {
    const point = await run.resumePoint(this.model.config);
    let note: string | undefined;
    if (point.entry) {
      await modelInternals(this.model).run(() => this.handle.loadState(path.join(run.dir, point.entry.file)));
      this.trainSeconds = point.entry.trainSeconds;
      this.trainTokens = point.entry.trainTokens;
      if (point.notes.length) note = `resume: ${point.notes.join('; ')}; resumed from the checkpoint of step ${point.entry.step}`;
    } else {
      if (point.notes.length) note = `resume: ${point.notes.join('; ')}; no complete checkpoint in ${run.dir}, so training starts fresh`;
      run.reset();
    }
    if (note) process.emitWarning(note, 'TrainlargeResumeWarning');
    const metrics = path.join(run.dir, RUN_FILES.metrics);
    if (fs.existsSync(metrics)) {
      const kept = (await fs.promises.readFile(metrics, 'utf8')).split('\n').filter((line) => {
        try {
          return line !== '' && (JSON.parse(line) as MetricRecord).step <= this.step;
        } catch {
          return false; // the last line, torn by a kill
        }
      });
      await fs.promises.writeFile(metrics, kept.map((l) => l + '\n').join(''));
    }
    return { from: this.step, ...(note ? { note } : {}) };
  }

  private progress(recent: NativeStepStats[], lastEval?: EvalRecord): Progress {
    const last = recent[recent.length - 1];
    const secs = recent.reduce((n, s) => n + s.seconds, 0);
    const toks = recent.reduce((n, s) => n + s.tokens, 0);
    const perStep = recent.length ? secs / recent.length : 0;
    return {
      step: this.step,
      maxSteps: this.config.maxSteps,
      loss: last?.loss ?? NaN,
      lr: last?.lr ?? 0,
      tokensPerSecond: secs > 0 ? toks / secs : 0,
      trainSeconds: this.trainSeconds,
      etaSeconds:
        this.config.maxSteps === UNBOUNDED_STEPS
          ? Math.max(0, (this.config.maxSeconds ?? 0) - this.trainSeconds)
          : perStep * (this.config.maxSteps - this.step),
      lastEval,
    };
  }
}

function nextMultiple(step: number, every: number): number {
  return (Math.floor(step / every) + 1) * every;
}
