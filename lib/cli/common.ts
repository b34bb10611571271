// What several commands share: the model, training and task flags, running a fit with a progress bar and
// Ctrl-C, a model directory's labels and task, and the two calls that wait for the HF import/export.
import * as fs from 'fs';
import * as path from 'path';
import { CreateOptionsSchema, Device } from '../config/model';
import { parseTrainConfig, plannedWarmup, SCHEDULES, TrainConfigInput, TrainConfigSchema, WARMUP_FRACTION } from '../config/train';
import { CLASSIFICATION_SOURCES } from '../data/builtin/sources';
import { ParallelFilesSpec } from '../data/parallel-files';
import { TrainingData } from '../data/dataset';
import { ClassificationTask, CustomTask, Dataset, ExampleFiles } from '../data/task';
import { Tokenizer } from '../data/tokenizer';
import { TokenizerLike } from '../data/tokens';
import { readJson, RUN_FILES, writeJsonAtomic } from '../io';
import { Transformer } from '../model';
import { progressReporter } from '../train/progress';
import { AbortError, FitOptions, FitResult, Trainer } from '../train/trainer';
import { Args, Flag, UsageError } from './args';

export const DEVICE_FLAG: Flag = {
  name: 'device',
  kind: 'string',
  value: 'cpu|cuda|cuda:N',
  help: 'where the model runs',
  field: 'device',
  defaults: CreateOptionsSchema,
};
export const JSON_FLAG: Flag = {
  name: 'json',
  kind: 'bool',
  help: 'print the result as one JSON object on stdout (progress stays on stderr)',
};

/** The optimisation flags of train, finetune and compress's fine-tuning (lib/config/train.ts holds the rules and defaults). */
export function trainFlags(defaultSteps: number): Flag[] {
  return [
    { name: 'steps', kind: 'int', help: `optimizer steps (default ${defaultSteps})`, field: 'maxSteps' },
    { name: 'batch-size', kind: 'int', help: 'sequences per step', field: 'batchSize', defaults: TrainConfigSchema },
    { name: 'lr', kind: 'number', help: 'peak learning rate', field: 'lr', defaults: TrainConfigSchema },
    {
      name: 'warmup-steps',
      kind: 'int',
      help: `linear warmup steps (default ${WARMUP_FRACTION * 100}% of --steps)`,
      field: 'warmupSteps',
    },
    {
      name: 'lr-schedule',
      kind: 'string',
      value: SCHEDULES.join('|'),
      help: 'learning-rate decay after warmup',
      field: 'schedule',
      defaults: TrainConfigSchema,
    },
    { name: 'accum-steps', kind: 'int', help: 'batches accumulated per step', field: 'accumSteps', defaults: TrainConfigSchema },
    { name: 'clip-norm', kind: 'number', help: 'gradient clipping norm, 0 = off', field: 'clipNorm', defaults: TrainConfigSchema },
    { name: 'weight-decay', kind: 'number', help: 'AdamW weight decay', field: 'weightDecay', defaults: TrainConfigSchema },
    { name: 'precision', kind: 'string', value: 'auto|fp32|bf16|fp16', help: 'autocast', field: 'precision', defaults: TrainConfigSchema },
    { name: 'seed', kind: 'int', help: 'initialisation and batch order', field: 'seed', defaults: TrainConfigSchema },
    { name: 'threads', kind: 'int', help: "libtorch's intra-op threads (default every core)", field: 'threads' },
    { name: 'eval-every', kind: 'int', help: 'evaluate (and checkpoint) every N steps (default steps/10)', field: 'evalEvery' },
    { name: 'eval-samples', kind: 'int', help: 'evaluate on the first N validation samples (default all)', field: 'evalSamples' },
  ];
}

/** The TrainConfig the flags give (unset flags keep the library's defaults). */
export function trainConfig(args: Args, defaultSteps: number): TrainConfigInput {
  const maxSteps = args.int('steps') ?? defaultSteps;
  const c: Record<string, unknown> = {
    maxSteps,
    batchSize: args.int('batch-size'),
    lr: args.number('lr'),
    warmupSteps: args.int('warmup-steps') ?? plannedWarmup(maxSteps),
    schedule: args.string('lr-schedule'),
    accumSteps: args.int('accum-steps'),
    clipNorm: args.number('clip-norm'),
    weightDecay: args.number('weight-decay'),
    precision: args.string('precision'),
    seed: args.int('seed'),
    threads: args.int('threads'),
  };
  const config = Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as TrainConfigInput;
  parseTrainConfig(config); // refused here, before any data is read or directory written
  return config;
}

export function device(args: Args): Device {
  return args.string('device') ?? 'cpu';
}

/**
 * Trains with a progress bar on a TTY (JSON lines on stderr otherwise); Ctrl-C stops after the step in
 * flight, checkpoints, and exits 130 with how to resume. With `dir`, a rerun resumes (Trainer.fit).
 */
export async function fitWithProgress(
  label: string,
  trainer: Trainer,
  data: TrainingData,
  opts: Omit<FitOptions, 'signal' | 'onProgress'> & { args: Args },
): Promise<FitResult> {
  const { args, ...fit } = opts;
  const controller = new AbortController();
  const onSigint = () => {
    process.stderr.write(
      `\ntrainlarge: stopping after the step in flight${fit.dir ? ' (checkpointing); run the same command again to resume' : ''}\n`,
    );
    controller.abort();
  };
  process.once('SIGINT', onSigint);
  const bar = progressReporter(label);
  try {
    return await trainer.fit(data, {
      ...fit,
      evalEvery: args.int('eval-every'),
      evalSamples: args.int('eval-samples'),
      signal: controller.signal,
      onProgress: bar.onProgress,
    });
  } catch (e) {
    if (e instanceof AbortError) {
      process.exitCode = 130;
      throw new Error(`stopped at step ${e.step}${fit.dir ? `; ${fit.dir} holds its checkpoint` : ''}`);
    }
    throw e;
  } finally {
    bar.stop();
    process.removeListener('SIGINT', onSigint);
  }
}

/** The task flags of finetune and compress: a built-in task or your own labelled files. */
export const TASK_FLAGS: Flag[] = [
  {
    name: 'task',
    kind: 'string',
    value: 'NAME',
    help: `a built-in task: ${Object.keys(CLASSIFICATION_SOURCES).join(', ')}; or translate (a translator on the pairs of --train)`,
  },
  { name: 'train', kind: 'list', value: 'FILE,...', help: 'or your own labelled examples (JSONL or TSV)' },
  { name: 'valid', kind: 'list', value: 'FILE,...', help: 'validation examples (default: 10% of --train, by a hash of each example)' },
  { name: 'test', kind: 'list', value: 'FILE,...', help: 'test examples (default: another 10% of --train)' },
  { name: 'format', kind: ['jsonl', 'tsv'], help: 'of the files (default from the extension: .tsv is tsv, else jsonl)' },
  { name: 'text-field', kind: 'string', value: 'F', help: 'the text (a JSONL key or a TSV column name/number; default text)' },
  { name: 'pair-field', kind: 'string', value: 'F', help: 'the second text of a sentence pair (MNLI)' },
  { name: 'label-field', kind: 'string', value: 'F', help: 'the label (default label)' },
  { name: 'labels', kind: 'list', value: 'A,B,...', help: 'label names in index order (default: in the order first seen)' },
  {
    name: 'name',
    kind: 'string',
    value: 'NAME',
    help: "your task's name (default: the folder of the first train file; a split's file name such as train.jsonl names no task)",
  },
];

/** What a fine-tuned model directory records of its task (task.json), so compress can find the same splits. */
export interface TaskRecord {
  /** A built-in task's name, your labelled files, or 'translate' (a translator's pairs: `parallel`). */
  source: string | CustomTask;
  /** --task translate: the pair files of each split. */
  parallel?: ParallelFilesSpec;
  maxLen: number;
}

const TASK_FILE = 'task.json';

function field(v: string | undefined, fallback: string): string | number {
  const s = v ?? fallback;
  return /^\d+$/.test(s) ? Number(s) : s;
}

/** The task the flags name, or undefined when they name none. */
export function taskSource(args: Args): string | CustomTask | undefined {
  const builtin = args.string('task');
  const train = args.list('train');
  if (builtin && train) throw new UsageError(`${args.command.name}: give --task or --train, not both`, args.command.name);
  if (builtin) return builtin;
  if (!train) {
    for (const f of ['valid', 'test', 'text-field', 'label-field', 'pair-field', 'labels'])
      if (args.has(f)) throw new UsageError(`--${f}: only applies with --train FILE,...`, args.command.name);
    return undefined;
  }
  const files = (list: string[]): ExampleFiles => ({
    files: list.map((f) => path.resolve(f)),
    format: (args.string('format') ?? (list[0].endsWith('.tsv') ? 'tsv' : 'jsonl')) as 'jsonl' | 'tsv',
    textField: field(args.string('text-field'), 'text'),
    labelField: field(args.string('label-field'), 'label'),
    ...(args.has('pair-field') ? { pairField: field(args.string('pair-field'), '') } : {}),
  });
  const valid = args.list('valid'),
    test = args.list('test');
  if ((valid === undefined) !== (test === undefined))
    throw new UsageError(
      `${args.command.name}: give both --valid and --test, or neither (then --train is split 80/10/10)`,
      args.command.name,
    );
  return {
    // The task is named by --name, else by the folder holding its files (data/sst2/train.jsonl: 'sst2'):
    // a split's file name ('train') would read as the split the numbers were measured on.
    name: args.string('name') ?? path.basename(path.dirname(path.resolve(train[0]))),
    ...(args.has('labels') ? { labels: args.list('labels') } : {}),
    train: files(train),
    ...(valid && test ? { valid: files(valid), test: files(test) } : {}),
  };
}

/** --task's value that fine-tunes a translator on the pairs of --train (and --valid, --test) instead of a classifier. */
export const TRANSLATE_TASK = 'translate';

/** The parallel files --train/--valid/--test name, for --task translate: TSV (source, target columns) or JSONL. */
export function parallelFiles(args: Args): ParallelFilesSpec {
  const train = args.list('train');
  if (!train) throw new UsageError('--task translate: give --train FILE,... (source-target pairs, TSV or JSONL)', args.command.name);
  for (const f of ['text-field', 'label-field', 'pair-field', 'labels'])
    if (args.has(f)) throw new UsageError(`--${f}: does not apply to --task translate (pairs are source, target)`, args.command.name);
  const files = (list: string[]) => ({
    files: list.map((f) => path.resolve(f)),
    format: (args.string('format') ?? (list[0].endsWith('.tsv') ? 'tsv' : 'jsonl')) as 'tsv' | 'jsonl',
  });
  const valid = args.list('valid'),
    test = args.list('test');
  return {
    name: args.string('name') ?? path.basename(path.dirname(path.resolve(train[0]))),
    train: files(train),
    ...(valid ? { valid: files(valid) } : {}),
    ...(test ? { test: files(test) } : {}),
  };
}

export async function loadTask(source: string | CustomTask, tokenizer: TokenizerLike, maxLen: number): Promise<ClassificationTask> {
  return Dataset.classification({ source: source as CustomTask, tokenizer, maxLen });
}

export async function writeTaskRecord(dir: string, record: TaskRecord): Promise<void> {
  await writeJsonAtomic(path.join(dir, TASK_FILE), record);
}

export async function readTaskRecord(dir: string): Promise<TaskRecord | undefined> {
  const file = path.join(dir, TASK_FILE);
  return fs.existsSync(file) ? readJson<TaskRecord>(file, 'task') : undefined;
}

/** The label names saved in a model directory's config.json (model.save(dir, { labels })). */
export async function savedLabels(dir: string): Promise<string[] | undefined> {
  const c = await readJson<{ labels?: unknown }>(path.join(dir, RUN_FILES.config), 'labels');
  return Array.isArray(c.labels) ? c.labels.map(String) : undefined;
}

/** A directory that must hold a saved model (config.json). */
export function modelDir(args: Args, flag: string): string {
  const dir = args.required(flag, 'a model directory');
  if (!fs.existsSync(path.join(dir, RUN_FILES.config)))
    throw new UsageError(`--${flag}: ${dir} holds no saved model (no config.json)`, args.command.name);
  return dir;
}

// --- The HF import and export: the one call site of each.

/** A model from an HF RoBERTa directory, with a fresh classification head. */
export async function fromHF(dir: string, opts: { device: Device; numLabels: number; seed?: number }): Promise<Transformer> {
  return Transformer.fromHF(dir, { task: 'classify', numLabels: opts.numLabels, device: opts.device, seed: opts.seed });
}

/** Writes a model as an HF RoBERTa directory. */
export async function saveHF(model: Transformer, dir: string, opts: { labels?: string[]; tokenizer?: Tokenizer } = {}): Promise<void> {
  await model.save(dir, { format: 'hf', ...opts });
}
