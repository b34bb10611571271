import * as fs from 'fs';
import * as os from 'os';
import { z } from 'zod';
import { parseConfig } from './parse';

const positiveInt = z.number().int().positive();

const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const;
/** Numeric precision of a forward (predict, evaluate) or of training: fp32, or bf16 / fp16 autocast. */
export type Precision = (typeof PRECISIONS)[number];

/**
 * Optimisation settings (RoBERTa's recipe by default: AdamW with betas (0.9, 0.98), eps 1e-6,
 * weight decay 0.01, linear warmup then linear decay over maxSteps).
 */
export const SCHEDULES = ['linear', 'polynomial', 'cosine', 'constant', 'inverse-sqrt'] as const;
/** Schedules that need no step budget: a run may stop on maxSeconds alone. */
const OPEN_ENDED: readonly string[] = ['constant', 'inverse-sqrt'];
/** maxSteps of a run bounded by maxSeconds only (the native loop needs a number). */
export const UNBOUNDED_STEPS = 2 ** 52;

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
     * about one length are batched together while batch x longest side <= batchTokens. Default 4096.
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
    evalSeed: z.number().int().min(0).default(1234),
    /**
     * Data-parallel training over processes (lib/train/dist.ts): 'auto' joins the process group torchrun's
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
            backend: z.enum(['auto', 'gloo', 'nccl']).default('auto'),
            timeoutSeconds: z.number().positive().default(300),
          })
          .strict(),
      ])
      .default('off'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.maxSteps === undefined) {
      if (!OPEN_ENDED.includes(c.schedule)) {
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
