import * as fs from 'fs';
import * as os from 'os';
import { z } from 'zod';
import { parseConfig } from './parse';

const positiveInt = z.number().int().positive();

const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const;
/** Numeric precision of a forward (predict, evaluate) or of training: fp32, or bf16 / fp16 autocast. */
export type Precision = (typeof PRECISIONS)[number];
/** A forward's precision (predict, fillMask, evaluate, translate), fp32 unless given. */
export const PrecisionSchema = z.enum(PRECISIONS).default('fp32');

/**
 * Optimisation settings (RoBERTa's recipe by default: AdamW with betas (0.9, 0.98), eps 1e-6,
 * weight decay 0.01, linear warmup then linear decay over maxSteps).
 */
export const SCHEDULES = ['linear', 'polynomial', 'cosine', 'constant', 'inverse-sqrt'] as const;
/** Schedules that need no step budget: a run may stop on maxSeconds alone. */
export const OPEN_ENDED_SCHEDULES: readonly (typeof SCHEDULES)[number][] = ['constant', 'inverse-sqrt'];
/** maxSteps of a run bounded by maxSeconds only (the native loop needs a number). */
export const UNBOUNDED_STEPS = 2 ** 52;
/**
 * The share of the planned steps the CLI, sweeps and compression studies warm up over (RoBERTa's 6%), where
 * they plan the steps themselves; a TrainConfig's own warmupSteps default is 0.
 */
export const WARMUP_FRACTION = 0.06;
/** WARMUP_FRACTION of `steps`, rounded: the warmup of a run planned for `steps` optimizer steps. */
export function plannedWarmup(steps: number, fraction: number = WARMUP_FRACTION): number {
  return Math.round(steps * fraction);
}
/** A translate model's token budget per batch when batchTokens is not given (fairseq's --max-tokens 4096). */
export const DEFAULT_BATCH_TOKENS = 4096;
/** The masking seed of every evaluation (TrainConfig's evalSeed, Transformer.evaluate's seed): fixed so numbers compare across runs. */
export const DEFAULT_EVAL_SEED = 1234;

/** The collective backends of data-parallel training (TrainConfig's distributed.backend). */
export const DIST_BACKENDS = ['auto', 'gloo', 'nccl'] as const;
export type DistBackend = (typeof DIST_BACKENDS)[number];

export const TrainConfigSchema = z
  .object({
    lr: z.number().positive().default(5e-4),
    /** Optimizer updates; optional with an open-ended schedule ('constant', 'inverse-sqrt') and maxSeconds. */
    maxSteps: positiveInt.optional(),
    /** Wall-clock budget in training seconds (fit's maxSeconds overrides it). */
    maxSeconds: z.number().positive().optional(),
    warmupSteps: z.number().int().min(0).default(0),
    /**
     * 'inverse-sqrt' is fairseq's (Vaswani et al. 2017): linear warmup to lr over warmupSteps, then
     * lr * sqrt(warmupSteps / step); it needs no maxSteps.
     */
    schedule: z.enum(SCHEDULES).default('linear'),
    power: z.number().positive().default(1),
    endLr: z.number().min(0).default(0),
    weightDecay: z.number().min(0).default(0.01),
    betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.98]),
    eps: z.number().positive().default(1e-6),
    clipNorm: z.number().min(0).default(1.0),
    batchSize: positiveInt.default(32),
    accumSteps: positiveInt.default(1),
    /**
     * Translate models: a batch's token budget (fairseq's --max-tokens), batchSize is then unused. Pairs of
     * about one length are batched together while batch x longest side <= batchTokens. Default DEFAULT_BATCH_TOKENS (4096).
     */
    batchTokens: positiveInt.optional(),
    /** Translate models: label smoothing epsilon in [0, 1) (fairseq's label_smoothed_cross_entropy; 0.1 is usual). */
    labelSmoothing: z.number().min(0).lt(1).optional(),
    /** 'auto': bf16 where the hardware computes it natively (CUDA, or a CPU with AVX512-BF16/AMX), else fp32. */
    precision: z.enum(['auto', ...PRECISIONS]).default('auto'),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 52)
      .default(1),
    /** Intra-op threads for libtorch's own kernels (and its GEMMs on MKL); 'auto': every core (see resolveThreads). */
    threads: z.union([z.literal('auto'), positiveInt]).default('auto'),
    /** OpenBLAS's thread pool (fp32 GEMMs run there); 'auto' uses every core. */
    blasThreads: z.union([z.literal('auto'), positiveInt]).default('auto'),
    evalBatchSize: positiveInt.optional(),
    /** Masking seed for validation, fixed so numbers compare across runs and model sizes. */
    evalSeed: z.number().int().min(0).default(DEFAULT_EVAL_SEED),
    /**
     * Data-parallel training over processes (lib/config/dist.ts): 'auto' joins the process group torchrun's
     * variables describe (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; `trainlarge launch` sets them) and
     * trains alone when they are unset; an object is 'auto' with its backend and the seconds after which a
     * silent rank fails the others. 'off' (default): one process, whatever the environment says.
     * backend: 'auto' (default) carries CUDA tensors through NCCL where the build has it (engineInfo()
     * .distributedBackends) and everything else through Gloo, as torch.distributed's default group does;
     * 'gloo' carries every tensor through Gloo; 'nccl' insists on NCCL (a CUDA model and a CUDA build).
     * Control messages (stop agreement, statistics, a sweep's decisions) always go through Gloo.
     */
    distributed: z
      .union([
        z.enum(['auto', 'off']),
        z
          .object({
            backend: z.enum(DIST_BACKENDS).default('auto'),
            timeoutSeconds: z.number().positive().default(300),
          })
          .strict(),
      ])
      .default('off'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.maxSteps === undefined) {
      if (!OPEN_ENDED_SCHEDULES.includes(c.schedule)) {
        ctx.addIssue({
          code: 'custom',
          path: ['maxSteps'],
          message: `is required with schedule '${c.schedule}' (it lays the decay over maxSteps)`,
        });
      } else if (c.maxSeconds === undefined) {
        ctx.addIssue({ code: 'custom', path: ['maxSteps'], message: 'give maxSteps or maxSeconds: a run needs a budget' });
      }
    }
    if (c.maxSteps !== undefined && c.warmupSteps > c.maxSteps) {
      ctx.addIssue({ code: 'custom', path: ['warmupSteps'], message: `must be <= maxSteps (${c.maxSteps})` });
    }
    if (c.endLr > c.lr) ctx.addIssue({ code: 'custom', path: ['endLr'], message: `must be <= lr (${c.lr})` });
  })
  .transform(({ maxSteps, ...c }) => ({ ...c, maxSteps: maxSteps ?? UNBOUNDED_STEPS }));

const positiveInteger = z.number().int('must be a positive integer').positive('must be a positive integer');
const positiveNumber = z.number().positive('must be a positive number');

/**
 * The options of Trainer.fit (lib/train/trainer.ts types its objects: the data, the signal, the callback).
 * Budgets and cadences here; what depends on the trainer (evalEvery's default of maxSteps / 10) stays there.
 */
export const FitOptionsSchema = z
  .object({
    /** Validation data (a TrainingData of the model's task). */
    validData: z.custom<object>((v) => typeof v === 'object' && v !== null, 'expected a dataset').optional(),
    /** Evaluate every N steps (and at the end) when validData is given. Default: maxSteps / 10. */
    evalEvery: positiveInteger.optional(),
    /** Evaluate on the first N validation samples only (default: all). */
    evalSamples: positiveInteger.optional(),
    /** A run directory: checkpoints and metrics.jsonl go here, and fit resumes from a checkpoint in it. */
    dir: z.string().min(1).optional(),
    /** Checkpoint every N steps (and at the end, and on abort). Default: evalEvery. */
    checkpointEvery: positiveInteger.optional(),
    signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'expected an AbortSignal').optional(),
    onProgress: z.custom<(p: never) => void>((v) => typeof v === 'function', 'expected a function').optional(),
    /** onProgress fires at least this often while training (seconds). */
    progressSeconds: positiveNumber.default(0.5),
    /**
     * Wall-clock budget: stop once this many training seconds (evaluation and checkpoints excluded, across
     * resumes) have passed, within one step. The LR schedule still runs over maxSteps: set maxSteps to the
     * steps the budget is expected to allow (see budget.ts) so the schedule is laid over the budget.
     */
    maxSeconds: positiveNumber.optional(),
    /** Token budget: stop once this many input tokens have been trained on (across resumes), within one step. */
    maxTokens: positiveNumber.optional(),
    /** Also evaluate each time training seconds cross a multiple of this (a wall-clock cadence). */
    evalEverySeconds: positiveNumber.optional(),
    /**
     * Translation: at every evaluation also translate the first `samples` validation pairs with beam `beam`
     * (1: greedy) and record corpus BLEU and chrF; a small fixed subset keeps it cheap.
     */
    evalBleu: z
      .object({ samples: positiveInteger.default(100), beam: positiveInteger.default(1) })
      .strict()
      .optional(),
  })
  .strict();
export type FitOptionsInput = z.input<typeof FitOptionsSchema>;
export type FitSettings = z.output<typeof FitOptionsSchema>;

/** setThreads's options: thread counts for jobs that do not set their own; 0 keeps a setting. */
export const ThreadsOptionsSchema = z
  .object({
    /** libtorch's intra-op threads. */
    threads: z.number().int().min(0).default(0),
    /** OpenBLAS's pool. */
    blasThreads: z.number().int().min(0).default(0),
  })
  .strict();
export type ThreadsOptions = z.input<typeof ThreadsOptionsSchema>;

/**
 * Whether this CPU computes bf16 natively. Without AVX512-BF16 or AMX, libtorch 1.13 falls back to a
 * generic bf16 GEMM: measured on an AVX2-only EPYC, a medium-model step took 15.6 s in bf16 against
 * 0.5 s in fp32 (BENCHMARKS.md), so 'auto' must not pick bf16 there.
 */
export function cpuHasNativeBf16(): boolean {
  try {
    const flags =
      fs
        .readFileSync('/proc/cpuinfo', 'utf8')
        .match(/^flags\s*:(.*)$/m)?.[1]
        .split(/\s+/) ?? [];
    return flags.includes('avx512_bf16') || flags.includes('amx_bf16');
  } catch {
    return false;
  }
}

export function resolvePrecision(p: Precision | 'auto', device: 'cpu' | 'cuda'): Precision {
  if (p !== 'auto') return p;
  if (device === 'cuda') return 'bf16';
  return cpuHasNativeBf16() ? 'bf16' : 'fp32';
}

export type TrainConfigInput = z.input<typeof TrainConfigSchema>;
export type TrainConfig = z.output<typeof TrainConfigSchema>;

export function parseTrainConfig(input: unknown): TrainConfig {
  return parseConfig(TrainConfigSchema, input, 'train config');
}

/**
 * Thread counts: every core for libtorch's intra-op pool. On pip's libtorch 2.x (MKL and oneDNN over
 * OpenMP) the intra-op count is also the GEMM's: a medium fp32 step took 256 ms with 2 threads against
 * more with 1 (BENCHMARKS.md, "Engines side by side"). `blasThreads` sizes OpenBLAS's own pool, for a
 * libtorch built on OpenBLAS (TORCH_DIR); MKL builds have no separate pool and ignore it.
 */
export function resolveThreads(c: Pick<TrainConfig, 'threads' | 'blasThreads'> & { precision: Precision }): {
  threads: number;
  blasThreads: number;
} {
  // Under a launcher (trainlarge launch, torchrun) OMP_NUM_THREADS is each process's share of the cores.
  const omp = Number(process.env.OMP_NUM_THREADS);
  const cores =
    Number.isInteger(omp) && omp > 0 ? omp : typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return {
    threads: c.threads === 'auto' ? cores : c.threads,
    blasThreads: c.blasThreads === 'auto' ? cores : c.blasThreads,
  };
}
