// Size sweeps: models of several sizes trained on one corpus under one budget, resumable, shareable across
// scheduler jobs (--only) and data-parallel under a launcher. The spec is sweep-spec.ts, the data sweep-data.ts,
// the results sweep-results.ts.
import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_BATCH_TOKENS, OPEN_ENDED_SCHEDULES, plannedWarmup, TrainConfig } from '../config/train';
import { parseConfig } from '../config/parse';
import { readJson, RUN_FILES, writeFileAtomic, writeJsonAtomic } from '../io';
import { describeHolder, tryLock, withLock } from '../lock';
import { measureStepSeconds } from '../train/budget';
import { DistSetup, resolveDistributed } from '../config/dist';
import { decideOnRank0 } from '../train/dist';
import { LrChoice, searchLr } from './lr-search';
import { Transformer } from '../model';
import { AbortError, EvalRecord, MetricRecord, Progress, Trainer } from '../train/trainer';
import { RESULT, RunResult, SweepResults } from './sweep-results';
import { Disposable, sweepData } from './sweep-data';
import { labelOf, readSweepSpec, Spec, SweepModel, sweepModelConfig, SweepSpec, SweepSpecSchema } from './sweep-spec';

export { CurvePoint, RunResult, SweepResults } from './sweep-results';
export { readSweepSpec, Spec, SweepModel, sweepModelConfig, SweepSpec, SweepSpecSchema } from './sweep-spec';

export interface SweepProgress {
  run: string;
  index: number;
  runs: number;
  /** 'skipped': finished in an earlier run() (or by another job) and not redone; 'busy': another job is training it. */
  phase: 'measure' | 'lr-search' | 'train' | 'done' | 'skipped' | 'busy';
  progress?: Progress;
}

/** What a model of a sweep trains for (its run directory's plan.json). */
interface SweepPlan {
  maxSteps: number;
  budget: Spec['budget'];
  lrSearch?: LrChoice;
}
/** A plan before the ranks of a data-parallel sweep complete it together (the step pace, the learning rate). */
type DraftPlan = Omit<SweepPlan, 'maxSteps'> & { maxSteps?: number };

/** A trainer's `distributed` setting for the process group `dist` describes. */
const distributedOf = (dist: DistSetup) => ({ backend: dist.backend, timeoutSeconds: dist.timeoutSeconds });

/** Held while a job writes a sweep directory's shared files (sweep.json, data, results.csv). */
export const SWEEP_LOCK = '.sweep.lock';
/** Held in a run's directory by the job training it. */
const CLAIM = '.claim';

/**
 * Models of several sizes trained on one corpus under one budget (seconds, steps or tokens), evaluated
 * on a fixed cadence with a fixed masking seed: the paper's size sweeps. One run directory per model;
 * run() after a crash or Ctrl-C resumes the unfinished run from its checkpoint and skips finished ones.
 */
export class Sweep {
  readonly spec: Spec;

  constructor(spec: SweepSpec) {
    this.spec = parseConfig(SweepSpecSchema, spec, 'sweep');
    const labels = this.spec.models.map(labelOf);
    const dup = labels.find((l, i) => labels.indexOf(l) !== i);
    if (dup) throw new Error(`sweep: two models have the run name '${dup}'; give them distinct labels`);
  }

  /**
   * Trains the sweep's models into `dir` (or, with `only`, those of them), skipping finished ones, and
   * rewrites DIR/results.csv from every finished run there. Several processes may run one sweep directory at
   * once (Slurm array tasks with `only`, or plain copies that share the work): each model is claimed by one
   * job while it trains (another job skips it, or with `only` refuses it), and the shared files are written
   * under DIR/.sweep.lock.
   *
   * With `distributed` ('auto' under `trainlarge launch` or torchrun), the ranks train each model together,
   * data-parallel (a model's batchSize is per rank, as Trainer's): rank 0 decides (which models, their
   * measured budgets), writes every file and tells the others through the process group. The directory must
   * be one every rank can read (one host, or a shared filesystem).
   */
  async run(opts: {
    dir: string;
    onProgress?: (p: SweepProgress) => void;
    signal?: AbortSignal;
    /** Run names (labels) to train; default all. */
    only?: string[];
    /** Data-parallel across the ranks of a process group (Trainer's `distributed`); default 'off'. */
    distributed?: TrainConfig['distributed'];
  }): Promise<SweepResults> {
    const s = this.spec;
    const dir = path.resolve(opts.dir);
    const labels = s.models.map(labelOf);
    for (const name of opts.only ?? [])
      if (!labels.includes(name))
        throw new Error(`sweep: only: '${name}' is not a run of sweep '${s.name}'; its runs are ${labels.join(', ')}`);
    if (opts.only?.length === 0) throw new Error(`sweep: only: name at least one run (${labels.join(', ')})`);
    const dist = resolveDistributed(opts.distributed ?? 'off');
    const lead = (dist?.rank ?? 0) === 0;
    const shared = path.join(dir, SWEEP_LOCK);
    // Rank 0 checks and writes sweep.json and prepares the data (a translate sweep's tokenizer) first.
    await fs.promises.mkdir(dir, { recursive: true });
    const setup = () =>
      withLock(
        shared,
        async () => {
          const specFile = path.join(dir, 'sweep.json');
          if (fs.existsSync(specFile)) {
            const old = await readSweepSpec(dir);
            if (canonical(old) !== canonical(s))
              throw new Error(`sweep: ${dir} holds another sweep (sweep.json differs); use a new directory`);
          } else {
            await writeJsonAtomic(specFile, s);
          }
          return sweepData(s, dir);
        },
        { what: 'sweep' },
      );
    let data: Awaited<ReturnType<typeof sweepData>> | undefined;
    await decideOnRank0(dist, async () => {
      data = await setup();
      return true;
    });
    data ??= await sweepData(s, dir);
    const { train, valid, vocabSize } = data;
    try {
      for (const [index, m] of s.models.entries()) {
        const label = labelOf(m);
        if (opts.only && !opts.only.includes(label)) continue;
        const runDir = path.join(dir, label);
        const report = (phase: SweepProgress['phase'], progress?: Progress) =>
          opts.onProgress?.({ run: label, index, runs: s.models.length, phase, progress });
        const held: { claim?: () => void } = {};
        try {
          const plan = await decideOnRank0(dist, async (): Promise<DraftPlan | 'skipped' | 'busy' | 'stopped'> => {
            // Between models, rank 0's signal stops every rank (the others wait here for its word). During a
            // model, any rank's signal stops all of them at a step the trainer agrees on.
            if (opts.signal?.aborted) return 'stopped';
            if (fs.existsSync(path.join(runDir, RESULT))) return 'skipped';
            await fs.promises.mkdir(runDir, { recursive: true });
            const got = tryLock(path.join(runDir, CLAIM));
            if (typeof got !== 'function') {
              if (opts.only) throw new Error(`sweep: ${label} is being trained by another job (${describeHolder(got)}) in ${dir}`);
              return 'busy';
            }
            held.claim = got;
            // Another job may have finished it between the check above and the claim.
            if (fs.existsSync(path.join(runDir, RESULT))) return 'skipped';
            return this.planOne(m, { runDir, train, valid, vocabSize, report, alone: !dist });
          });
          if (plan === 'stopped') throw new AbortError(0);
          if (plan === 'skipped' || plan === 'busy') {
            if (lead) report(plan);
            continue;
          }
          let ready = this.complete(m, plan);
          if (!ready) {
            // Data-parallel: the ranks measure the pace of a data-parallel step together (the slowest rank's
            // seconds, all-reduces included) and train the learning-rate candidates together (each rank gets the
            // same reduced validation losses); rank 0 saves the plan and tells the others.
            if (plan.maxSteps === undefined && lead) report('measure');
            const maxSteps = plan.maxSteps ?? (await this.stepsForSeconds(m, train, vocabSize, dist));
            const search = this.needsLrSearch(m) && !plan.lrSearch;
            if (search && lead) report('lr-search');
            const lrSearch = search ? await this.searchLrFor(m, maxSteps, { train, valid, vocabSize, dist }) : plan.lrSearch;
            ready = await decideOnRank0(dist, async () => {
              const whole: SweepPlan = { ...plan, maxSteps, ...(lrSearch ? { lrSearch } : {}) };
              await writeJsonAtomic(path.join(runDir, 'plan.json'), whole);
              return whole;
            });
          }
          await this.trainOne(m, ready, { runDir, train, valid, vocabSize, signal: opts.signal, report, dist, lead });
        } finally {
          held.claim?.();
        }
      }
    } finally {
      train.dispose();
      valid.dispose();
    }
    const finish = async () =>
      withLock(
        shared,
        async () => {
          const results = await SweepResults.load(dir);
          if (lead) await writeFileAtomic(path.join(dir, 'results.csv'), results.csv());
          return results;
        },
        { what: 'sweep' },
      );
    // Every rank returns the finished runs, read after rank 0 wrote the last result.
    await decideOnRank0(dist, async () => true);
    return finish();
  }

  /**
   * A model's plan: the steps its budget allows (measured for a seconds budget) and, when the sweep searches,
   * its learning rate; saved in its run directory (plan.json) once whole, so a resumed sweep neither measures
   * nor searches again. Not `alone` (the ranks of a data-parallel sweep), what takes every rank is left out,
   * for Sweep.run to do on all of them.
   */
  private async planOne(
    m: SweepModel,
    ctx: {
      runDir: string;
      train: Disposable;
      valid: Disposable;
      vocabSize: number;
      report: (phase: SweepProgress['phase']) => void;
      alone: boolean;
    },
  ): Promise<DraftPlan> {
    const s = this.spec;
    const { runDir, train, vocabSize, report } = ctx;
    const planFile = path.join(runDir, 'plan.json');
    if (fs.existsSync(planFile)) return readJson<SweepPlan>(planFile, 'sweep plan');
    const plan: DraftPlan = { budget: s.budget };
    if ('tokens' in s.budget) {
      const base = this.trainBase(m);
      plan.maxSteps = Math.ceil(
        s.budget.tokens / ((s.task === 'translate' ? (s.batchTokens ?? DEFAULT_BATCH_TOKENS) : base.batchSize * s.maxLen) * s.accumSteps),
      );
    } else if ('steps' in s.budget) {
      plan.maxSteps = s.budget.steps;
    } else if (ctx.alone) {
      report('measure');
      plan.maxSteps = await this.stepsForSeconds(m, train, vocabSize);
    }
    if (ctx.alone && this.needsLrSearch(m)) {
      report('lr-search');
      plan.lrSearch = await this.searchLrFor(m, plan.maxSteps!, ctx);
    }
    const whole = this.complete(m, plan);
    if (whole) await writeJsonAtomic(planFile, whole);
    return plan;
  }

  /** The plan when nothing is left to measure or search, else undefined. */
  private complete(m: SweepModel, plan: DraftPlan): SweepPlan | undefined {
    if (plan.maxSteps === undefined || (this.needsLrSearch(m) && !plan.lrSearch)) return undefined;
    return { ...plan, maxSteps: plan.maxSteps };
  }

  /**
   * The steps a seconds budget allows at the measured pace of the model's step, with 10% slack so the clock
   * (not the step count) usually ends the run. With `dist`, every rank measures together: the pace of a
   * data-parallel step, the slowest rank's and its all-reduces included.
   */
  private async stepsForSeconds(m: SweepModel, train: Disposable, vocabSize: number, dist?: DistSetup): Promise<number> {
    const s = this.spec;
    if (!('seconds' in s.budget)) throw new Error('sweep: internal: stepsForSeconds without a seconds budget');
    const base = this.trainBase(m);
    const settings = dist ? { ...base, distributed: distributedOf(dist) } : base;
    const seconds = await measureStepSeconds(sweepModelConfig(s, m, vocabSize), settings, train, 5, s.device);
    return Math.max(2, Math.ceil((1.1 * s.budget.seconds) / seconds));
  }

  /** A model without its own lr gets the searched one, when the sweep searches. */
  private needsLrSearch(m: SweepModel): boolean {
    return this.spec.lrSearch !== undefined && m.lr === undefined;
  }

  /** The learning-rate search for one model (lib/experiment/lr-search.ts); data-parallel with `dist`. */
  private searchLrFor(
    m: SweepModel,
    plannedSteps: number,
    ctx: { train: Disposable; valid: Disposable; vocabSize: number; dist?: DistSetup },
  ): Promise<LrChoice> {
    const s = this.spec;
    const { lr: _lr, ...rest } = this.trainBase(m);
    return searchLr({
      config: sweepModelConfig(s, m, ctx.vocabSize),
      train: ctx.dist ? { ...rest, distributed: distributedOf(ctx.dist) } : rest,
      data: ctx.train,
      valid: ctx.valid,
      plannedSteps,
      warmup: s.warmup,
      search: s.lrSearch!,
      seed: s.seed,
      device: s.device,
      evalSamples: s.evalSamples,
    });
  }

  /** The training settings of one model (before its plan's learning rate). */
  private trainBase(m: SweepModel) {
    const s = this.spec;
    return {
      lr: m.lr ?? s.lr,
      batchSize: m.batchSize ?? s.batchSize,
      seed: s.seed,
      precision: s.precision,
      accumSteps: s.accumSteps,
      schedule: s.schedule,
      ...(s.batchTokens !== undefined ? { batchTokens: s.batchTokens } : {}),
      ...(s.labelSmoothing !== undefined ? { labelSmoothing: s.labelSmoothing } : {}),
    };
  }

  /** Trains one model of the sweep by its plan into `runDir` (every rank of a process group); rank 0 writes its result.json. */
  private async trainOne(
    m: SweepModel,
    plan: SweepPlan,
    ctx: {
      runDir: string;
      train: Disposable;
      valid: Disposable;
      vocabSize: number;
      signal?: AbortSignal;
      report: (phase: SweepProgress['phase'], progress?: Progress) => void;
      dist?: DistSetup;
      lead: boolean;
    },
  ): Promise<RunResult | undefined> {
    const s = this.spec;
    const { runDir, train, valid, vocabSize, report } = ctx;
    const label = labelOf(m);
    const translate = s.task === 'translate';
    const config = sweepModelConfig(s, m, vocabSize);
    const base = this.trainBase(m);
    const { maxSteps, lrSearch } = plan;
    if (lrSearch) base.lr = lrSearch.lr;
    const model = await Transformer.create(config, { seed: s.seed, device: s.device });
    // An open-ended schedule (inverse-sqrt) under a seconds budget runs until the clock stops it: the
    // measured step count then only sizes the warmup.
    const openEnded = 'seconds' in s.budget && OPEN_ENDED_SCHEDULES.includes(s.schedule);
    const warmupSteps = plannedWarmup(maxSteps, s.warmup);
    const distributed = ctx.dist ? distributedOf(ctx.dist) : ('off' as const);
    const trainer = new Trainer(
      model,
      openEnded && 'seconds' in s.budget
        ? { ...base, maxSeconds: s.budget.seconds, warmupSteps, distributed }
        : { ...base, maxSteps, warmupSteps, distributed },
    );
    try {
      const r = await trainer.fit(train, {
        validData: valid,
        dir: runDir,
        signal: ctx.signal,
        evalSamples: s.evalSamples,
        ...('steps' in s.evalEvery ? { evalEvery: s.evalEvery.steps } : openEnded ? {} : { evalEvery: maxSteps }),
        ...('seconds' in s.evalEvery ? { evalEverySeconds: s.evalEvery.seconds } : {}),
        ...('seconds' in s.budget ? { maxSeconds: s.budget.seconds } : {}),
        ...('tokens' in s.budget ? { maxTokens: s.budget.tokens } : {}),
        ...(s.bleu ? { evalBleu: s.bleu } : {}),
        onProgress: (p) => report('train', p),
      });
      if (!ctx.lead) return undefined;
      // The curve from metrics.jsonl: it holds the evaluations of earlier, interrupted attempts too.
      const metrics = (await fs.promises.readFile(path.join(runDir, RUN_FILES.metrics), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as MetricRecord);
      const curve = metrics
        .filter((x): x is EvalRecord => x.type === 'eval')
        .map((e) => ({
          step: e.step,
          trainSeconds: e.trainSeconds,
          loss: e.loss,
          perplexity: e.perplexity,
          ...(e.maskLoss !== undefined ? { maskLoss: e.maskLoss } : {}),
          ...(e.maskUnigramLoss !== undefined ? { maskUnigramLoss: e.maskUnigramLoss } : {}),
          ...(e.bleu !== undefined ? { bleu: e.bleu, chrf: e.chrf } : {}),
        }));
      const result: RunResult = {
        label,
        model: m,
        parameters: model.parameterCount,
        lr: base.lr,
        ...(lrSearch ? { lrSearch } : {}),
        steps: r.steps,
        trainSeconds: r.trainSeconds,
        trainTokens: r.trainTokens,
        stoppedBy: r.stoppedBy,
        curve,
        finalLoss: curve.length ? curve[curve.length - 1].loss : NaN,
        ...(translate && curve.length ? { finalBleu: curve[curve.length - 1].bleu } : {}),
      };
      await writeJsonAtomic(path.join(runDir, RESULT), result);
      report('done');
      return result;
    } finally {
      trainer.dispose();
      model.dispose();
    }
  }
}

/** JSON with object keys sorted: two specs compare by content, whatever order their fields were filled in. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}
