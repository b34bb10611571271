import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { DeviceSchema } from '../config/model';
import { parseConfig } from '../config/parse';
import { Corpus, CORPUS_SOURCES } from '../data/corpus';
import { readJson, RUN_FILES, writeFileAtomic, writeJsonAtomic } from '../io';
import { measureStepSeconds } from '../train/budget';
import { Transformer } from '../model';
import { AbortError, EvalRecord, MetricRecord, Progress, Trainer } from '../train/trainer';

const positive = z.number().positive();

const ModelSchema = z
  .object({
    dModel: z.number().int().positive(),
    layers: z.number().int().positive(),
    heads: z.number().int().positive(),
    ffn: z.number().int().positive().optional(),
    dropout: z.number().min(0).lt(1).optional(),
    norm: z.enum(['post', 'pre']).optional(),
    /** Per-model training overrides (a batch-size or learning-rate grid). */
    lr: positive.optional(),
    batchSize: z.number().int().positive().optional(),
    /** Run name; default from the shape, e.g. d256-l4-h4. */
    label: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/)
      .optional(),
  })
  .strict();

export const SweepSpecSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, . _ - only'),
    /** A built-in corpus name (prepared into data/NAME) or the directory of a prepared corpus. */
    corpus: z.string().min(1),
    models: z.array(ModelSchema).min(1),
    maxLen: z.number().int().min(2).default(128),
    budget: z.union([
      z.object({ seconds: positive }).strict(),
      z.object({ steps: z.number().int().positive() }).strict(),
      z.object({ tokens: z.number().int().positive() }).strict(),
    ]),
    evalEvery: z.union([z.object({ seconds: positive }).strict(), z.object({ steps: z.number().int().positive() }).strict()]),
    /** Validation blocks per evaluation (default: all). */
    evalSamples: z.number().int().positive().optional(),
    lr: positive.default(1e-3),
    batchSize: z.number().int().positive().default(16),
    /** Warmup as a fraction of the steps the budget allows. */
    warmup: z.number().min(0).max(1).default(0.06),
    seed: z.number().int().min(0).default(1),
    /** 'auto': CUDA when this libtorch and machine have it. */
    device: DeviceSchema.default('cpu'),
    precision: z.enum(['auto', 'fp32', 'bf16', 'fp16']).default('auto'),
    /** Gradient accumulation: batchSize x accumSteps sequences per optimizer step. */
    accumSteps: z.number().int().positive().default(1),
  })
  .strict();
export type SweepSpec = z.input<typeof SweepSpecSchema>;
type Spec = z.output<typeof SweepSpecSchema>;

export interface RunResult {
  label: string;
  model: z.output<typeof ModelSchema>;
  parameters: number;
  steps: number;
  trainSeconds: number;
  trainTokens: number;
  stoppedBy: 'steps' | 'seconds' | 'tokens';
  /** Validation curve: loss after `trainSeconds` of training (evaluation time excluded) and `step` steps. */
  curve: { step: number; trainSeconds: number; loss: number; perplexity: number }[];
  finalLoss: number;
}

export interface SweepProgress {
  run: string;
  index: number;
  runs: number;
  /** 'skipped': finished in an earlier run() and not redone. */
  phase: 'measure' | 'train' | 'done' | 'skipped';
  progress?: Progress;
}

const RESULT = 'result.json';

function labelOf(m: z.output<typeof ModelSchema>): string {
  return m.label ?? `d${m.dModel}-l${m.layers}-h${m.heads}${m.lr ? `-lr${m.lr}` : ''}${m.batchSize ? `-b${m.batchSize}` : ''}`;
}

/** Curves and comparisons over a sweep's finished runs. */
export class SweepResults {
  constructor(
    readonly name: string,
    readonly runs: RunResult[],
  ) {}

  /** Validation loss against training seconds and steps, one series per run. */
  curves(): { label: string; parameters: number; points: RunResult['curve'] }[] {
    return this.runs.map((r) => ({ label: r.label, parameters: r.parameters, points: r.curve }));
  }

  /**
   * When each run first reached validation loss `loss` (training seconds, evaluation excluded), fastest
   * first; runs that never did are left out. `first` is the winner, if any.
   */
  firstToReach(loss: number): {
    first?: { label: string; seconds: number; step: number };
    reached: { label: string; seconds: number; step: number }[];
  } {
    const reached = this.runs
      .map((r) => {
        const p = r.curve.find((c) => c.loss <= loss);
        return p ? { label: r.label, seconds: p.trainSeconds, step: p.step } : undefined;
      })
      .filter((x): x is { label: string; seconds: number; step: number } => x !== undefined)
      .sort((a, b) => a.seconds - b.seconds);
    return { first: reached[0], reached };
  }

  /** One row per evaluation: run,parameters,step,train_seconds,loss,perplexity. */
  csv(): string {
    const rows = ['run,parameters,step,train_seconds,loss,perplexity'];
    for (const r of this.runs)
      for (const p of r.curve)
        rows.push([r.label, r.parameters, p.step, p.trainSeconds.toFixed(3), p.loss.toFixed(5), p.perplexity.toFixed(4)].join(','));
    return rows.join('\n') + '\n';
  }

  /** The finished runs of a sweep directory. */
  static async load(dir: string): Promise<SweepResults> {
    const spec = await readJson<Spec>(path.join(dir, 'sweep.json'), 'sweep');
    const runs: RunResult[] = [];
    for (const m of spec.models) {
      const file = path.join(dir, labelOf(m), RESULT);
      if (fs.existsSync(file)) runs.push(await readJson<RunResult>(file, 'sweep run'));
    }
    return new SweepResults(spec.name, runs);
  }
}

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

  async run(opts: { dir: string; onProgress?: (p: SweepProgress) => void; signal?: AbortSignal }): Promise<SweepResults> {
    const s = this.spec;
    const dir = path.resolve(opts.dir);
    await fs.promises.mkdir(dir, { recursive: true });
    const specFile = path.join(dir, 'sweep.json');
    if (fs.existsSync(specFile)) {
      const old = await readJson<Spec>(specFile, 'sweep');
      if (JSON.stringify(old) !== JSON.stringify(s))
        throw new Error(`sweep: ${dir} holds another sweep (sweep.json differs); use a new directory`);
    } else {
      await writeJsonAtomic(specFile, s);
    }
    const corpus = Object.prototype.hasOwnProperty.call(CORPUS_SOURCES, s.corpus)
      ? await Corpus.prepare({ source: s.corpus as keyof typeof CORPUS_SOURCES, dir: path.join('data', s.corpus) })
      : await Corpus.open(s.corpus);
    const train = corpus.train({ maxLen: s.maxLen });
    const valid = corpus.valid({ maxLen: s.maxLen });
    const runs: RunResult[] = [];
    try {
      for (const [index, m] of s.models.entries()) {
        const label = labelOf(m);
        const runDir = path.join(dir, label);
        const report = (phase: SweepProgress['phase'], progress?: Progress) =>
          opts.onProgress?.({ run: label, index, runs: s.models.length, phase, progress });
        if (fs.existsSync(path.join(runDir, RESULT))) {
          runs.push(await readJson<RunResult>(path.join(runDir, RESULT), 'sweep run'));
          report('skipped');
          continue;
        }
        if (opts.signal?.aborted) throw new AbortError(0);
        const config = {
          vocabSize: corpus.tokenizer.vocabSize,
          maxLen: s.maxLen,
          dModel: m.dModel,
          layers: m.layers,
          heads: m.heads,
          ...(m.ffn ? { ffn: m.ffn } : {}),
          ...(m.dropout !== undefined ? { dropout: m.dropout } : {}),
          ...(m.norm ? { norm: m.norm } : {}),
        };
        const base = {
          lr: m.lr ?? s.lr,
          batchSize: m.batchSize ?? s.batchSize,
          seed: s.seed,
          precision: s.precision,
          accumSteps: s.accumSteps,
        };
        // The LR schedule is laid over the budget: the steps it allows (measured for a seconds budget).
        let maxSteps: number;
        const planFile = path.join(runDir, 'plan.json');
        if (fs.existsSync(planFile)) {
          maxSteps = (await readJson<{ maxSteps: number }>(planFile, 'sweep plan')).maxSteps;
        } else {
          if ('seconds' in s.budget) {
            report('measure');
            // 10% slack over the measured pace, so the clock (not the step count) usually ends the run.
            maxSteps = Math.max(2, Math.ceil((1.1 * s.budget.seconds) / (await measureStepSeconds(config, base, train, 5, s.device))));
          } else if ('tokens' in s.budget) {
            maxSteps = Math.ceil(s.budget.tokens / (base.batchSize * s.accumSteps * s.maxLen));
          } else {
            maxSteps = s.budget.steps;
          }
          await writeJsonAtomic(planFile, { maxSteps, budget: s.budget });
        }
        const model = await Transformer.create(config, { seed: s.seed, device: s.device });
        const trainer = new Trainer(model, { ...base, maxSteps, warmupSteps: Math.round(maxSteps * s.warmup) });
        try {
          const r = await trainer.fit(train, {
            validData: valid,
            dir: runDir,
            signal: opts.signal,
            evalSamples: s.evalSamples,
            evalEvery: 'steps' in s.evalEvery ? s.evalEvery.steps : maxSteps,
            ...('seconds' in s.evalEvery ? { evalEverySeconds: s.evalEvery.seconds } : {}),
            ...('seconds' in s.budget ? { maxSeconds: s.budget.seconds } : {}),
            ...('tokens' in s.budget ? { maxTokens: s.budget.tokens } : {}),
            onProgress: (p) => report('train', p),
          });
          // The curve from metrics.jsonl: it holds the evaluations of earlier, interrupted attempts too.
          const metrics = (await fs.promises.readFile(path.join(runDir, RUN_FILES.metrics), 'utf8'))
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as MetricRecord);
          const curve = metrics
            .filter((x): x is EvalRecord => x.type === 'eval')
            .map((e) => ({ step: e.step, trainSeconds: e.trainSeconds, loss: e.loss, perplexity: e.perplexity }));
          const result: RunResult = {
            label,
            model: m,
            parameters: model.parameterCount,
            steps: r.steps,
            trainSeconds: r.trainSeconds,
            trainTokens: r.trainTokens,
            stoppedBy: r.stoppedBy,
            curve,
            finalLoss: curve.length ? curve[curve.length - 1].loss : NaN,
          };
          await writeJsonAtomic(path.join(runDir, RESULT), result);
          runs.push(result);
          report('done');
        } finally {
          trainer.dispose();
          model.dispose();
        }
      }
    } finally {
      train.dispose();
      valid.dispose();
    }
    const results = new SweepResults(s.name, runs);
    await writeFileAtomic(path.join(dir, 'results.csv'), results.csv());
    return results;
  }
}
