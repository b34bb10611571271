// trainlarge compress: prune and/or quantize a classifier (and try it on int8 kernels), write the packed
// file, and print test accuracy and bytes before and after; a translator goes to compress-translator.ts.
import * as fs from 'fs';
import * as path from 'path';
import { compressedSize, CompressionTraining, INT8_ENGINES, Int8Engine, PruneOptions, QuantizeOptions, toInt8 } from '../compress/ops';
import { Int8OptionsSchema, PRUNE_STRUCTURES, PruneSchema, PruneScope, PruneStructure, QuantizeSchema } from '../config/compress';
import { parseConfig } from '../config/parse';
import { RUN_FILES } from '../io';
import { Transformer } from '../model';
import { Tokenizer } from '../data/tokenizer';
import { applyCompression, partBytes, printParts } from './compress-steps';
import { compressTranslator } from './compress-translator';
import { Args, Command, UsageError } from './args';
import {
  device,
  DEVICE_FLAG,
  JSON_FLAG,
  loadTask,
  modelDir,
  parallelFiles,
  readTaskRecord,
  savedLabels,
  TASK_FLAGS,
  taskSource,
  trainConfig,
  trainFlags,
  TRANSLATE_TASK,
  writeTaskRecord,
} from './common';
import { progressReporter } from '../train/progress';

// The fine-tuning of gradual pruning and QAT (no evaluation cadence: they evaluate on the test split after).
const TRAIN_FLAGS = trainFlags(100).filter((f) => !['eval-every', 'eval-samples'].includes(f.name));
const TRAIN_FLAG_NAMES = new Set(TRAIN_FLAGS.map((f) => f.name));

function defaultDir(model: string, args: Args): string {
  const parts: string[] = [];
  const s = args.number('prune');
  const structure = (args.string('structure') ?? 'unstructured') as PruneStructure;
  const prefix = { unstructured: 'p', heads: 'heads', ffn: 'ffn', 'heads+ffn': 'headsffn' }[structure];
  if (s !== undefined) parts.push(`${prefix}${Math.round(s * 100)}`);
  const bits = args.int('bits');
  if (bits !== undefined) parts.push(`q${bits}`);
  if (args.bool('int8') && bits === undefined) parts.push('int8');
  return `${path.resolve(model).replace(/[/\\]+$/, '')}-${parts.join('-')}`;
}

export const compress: Command = {
  name: 'compress',
  brief: 'Prunes / quantizes a classifier or translator; prints accuracy (BLEU) and bytes before and after.',
  summary:
    'Prunes and/or quantizes a fine-tuned classifier (lib/compress: magnitude pruning, k-bit quantization, int8 kernels), ' +
    "writes the packed file (config.json, model.safetensors, the tokenizer) and prints the task's test accuracy and the " +
    'file size before and after; for a translator (trainlarge finetune --task translate) BLEU on its test pairs.',
  synopsis: '--model DIR (--prune S | --bits K | --int8) [--dir OUT] [options]',
  flags: [
    { name: 'model', kind: 'string', value: 'DIR', help: 'a fine-tuned classifier (trainlarge finetune)' },
    { name: 'dir', kind: 'string', value: 'OUT', help: 'where the compressed model goes (default DIR-p50-q4 and so on)' },
    {
      name: 'prune',
      kind: 'number',
      value: 'S',
      help: 'sparsity: the fraction of weights set to zero (of heads / FFN units removed with --structure), in [0, 1)',
      field: 'sparsity',
    },
    {
      name: 'structure',
      kind: PRUNE_STRUCTURES,
      help: 'single weights (default), or whole attention heads / FFN units: a smaller, faster dense model',
      field: 'structure',
    },
    {
      name: 'scope',
      kind: 'string',
      value: 'layer|global',
      help: 'one threshold per matrix or over all',
      field: 'scope',
      defaults: PruneSchema,
    },
    {
      name: 'schedule',
      kind: 'string',
      value: 'oneshot|gradual',
      help: 'prune now, or along a cubic schedule while fine-tuning --steps',
      field: 'schedule',
    },
    {
      name: 'initial-sparsity',
      kind: 'number',
      help: 'gradual: sparsity at --start-step',
      field: 'initialSparsity',
      defaults: PruneSchema,
    },
    { name: 'start-step', kind: 'int', help: 'gradual: first pruning step', field: 'startStep', defaults: PruneSchema },
    { name: 'end-step', kind: 'int', help: 'gradual: the step the target sparsity is reached (default --steps)', field: 'endStep' },
    { name: 'every', kind: 'int', help: 'gradual: prune every N steps', field: 'every', defaults: PruneSchema },
    { name: 'bits', kind: 'int', value: 'K', help: 'quantize weights to K bits, 2..8', field: 'bits' },
    {
      name: 'granularity',
      kind: 'string',
      value: 'channel|tensor',
      help: 'one scale per output channel or per matrix',
      field: 'granularity',
      defaults: QuantizeSchema,
    },
    { name: 'asymmetric', kind: 'bool', help: 'a zero point per scale (default symmetric)' },
    {
      name: 'method',
      kind: 'string',
      value: 'ptq|qat',
      help: 'round now, or then fine-tune --steps with fake quantization',
      field: 'method',
      defaults: QuantizeSchema,
    },
    {
      name: 'targets',
      kind: 'list',
      value: 'attention,ffn,embeddings',
      help: 'which weight matrices',
      field: 'targets',
      defaults: QuantizeSchema,
    },
    { name: 'int8', kind: 'bool', help: "also measure accuracy on libtorch's int8 kernels (serve it with NAME=OUT:int8)" },
    { name: 'engine', kind: INT8_ENGINES, help: 'the int8 engine', field: 'engine', defaults: Int8OptionsSchema },
    ...TASK_FLAGS,
    ...TRAIN_FLAGS,
    DEVICE_FLAG,
    JSON_FLAG,
  ],
  notes:
    'The task defaults to the one the model was fine-tuned on (DIR/task.json). --steps, --lr and the other training flags\n' +
    'apply to gradual pruning and to --method qat, which fine-tune on the task.\n\n' +
    'Examples:\n' +
    '  trainlarge compress --model runs/sentiment --prune 0.5 --bits 4 --dir runs/sentiment-p50-q4\n' +
    '  trainlarge compress --model runs/sentiment --prune 0.5 --structure heads+ffn   # half the heads and FFN units\n' +
    '  trainlarge compress --model runs/sentiment --bits 8 --int8\n' +
    '  trainlarge compress --model runs/sentiment --prune 0.7 --schedule gradual --steps 200 --lr 1e-4',
  async run(args) {
    const dir = modelDir(args, 'model');
    const sparsity = args.number('prune');
    const bits = args.int('bits');
    const int8 = args.bool('int8');
    if (sparsity === undefined && bits === undefined && !int8)
      throw new UsageError('compress: say what to do: --prune SPARSITY, --bits K and/or --int8', 'compress');
    const pruneOnly = ['structure', 'scope', 'schedule', 'initial-sparsity', 'start-step', 'end-step', 'every'];
    const quantOnly = ['granularity', 'asymmetric', 'method'];
    for (const [flags, needs] of [
      [pruneOnly, 'prune'],
      [quantOnly, 'bits'],
    ] as const)
      for (const f of flags) if (args.has(f) && !args.has(needs)) throw new UsageError(`--${f}: only applies with --${needs}`, 'compress');
    if (args.has('engine') && !int8) throw new UsageError('--engine: only applies with --int8', 'compress');
    const trains = args.string('schedule') === 'gradual' || args.string('method') === 'qat';
    for (const f of TRAIN_FLAG_NAMES)
      if (args.has(f) && !trains)
        throw new UsageError(`--${f}: only applies with --schedule gradual or --method qat (they fine-tune)`, 'compress');
    const config = trainConfig(args, 100);
    const targets = args.list('targets') as ('attention' | 'ffn' | 'embeddings')[] | undefined;
    const structure = args.string('structure') as PruneStructure | undefined;
    const structured = structure !== undefined && structure !== 'unstructured';
    if (structured && targets && bits === undefined)
      throw new UsageError(
        `--targets: selects matrices for unstructured pruning and quantization; --structure ${structure} removes whole units`,
        'compress',
      );
    const pruneOptions: PruneOptions | undefined =
      sparsity === undefined
        ? undefined
        : {
            structure,
            sparsity,
            scope: args.string('scope') as PruneScope | undefined,
            schedule: args.string('schedule') as 'oneshot' | 'gradual' | undefined,
            initialSparsity: args.number('initial-sparsity'),
            startStep: args.int('start-step'),
            endStep: args.int('end-step') ?? (args.string('schedule') === 'gradual' ? config.maxSteps : undefined),
            every: args.int('every'),
            ...(structured ? {} : { targets }), // with --bits, --targets is quantization's
          };
    const quantizeOptions: QuantizeOptions | undefined =
      bits === undefined
        ? undefined
        : {
            bits,
            granularity: args.string('granularity') as 'channel' | 'tensor' | undefined,
            symmetric: !args.bool('asymmetric'),
            method: args.string('method') as 'ptq' | 'qat' | undefined,
            targets,
          };
    // Refused here, in the library's words under the flags' names, before the model is even loaded.
    if (pruneOptions) parseConfig(PruneSchema, pruneOptions, 'prune options');
    if (quantizeOptions) parseConfig(QuantizeSchema, quantizeOptions, 'quantize options');
    const out = args.string('dir') ?? defaultDir(dir, args);
    if (path.resolve(out) === path.resolve(dir))
      throw new UsageError(`--dir: ${out} is the model's own directory; give another`, 'compress');

    const tok = await Tokenizer.fromDir(dir);
    const record = await readTaskRecord(dir);
    const translating = args.string('task') === TRANSLATE_TASK || (!args.has('task') && record?.source === TRANSLATE_TASK);
    if (translating) {
      const spec = args.string('task') === TRANSLATE_TASK ? parallelFiles(args) : record?.parallel;
      return compressTranslator({ args, dir, out, tok, spec, maxLen: record?.maxLen, pruneOptions, quantizeOptions, config, int8 });
    }
    const source = taskSource(args) ?? record?.source;
    if (source === undefined)
      throw new UsageError(
        `compress: ${dir} has no task.json (not from trainlarge finetune): give --task NAME or --train FILE,... (a translator: --task translate --train PAIRS)`,
        'compress',
      );
    let model = await Transformer.load(dir, { device: device(args) });
    if (model.config.task === 'translate') {
      model.dispose();
      throw new UsageError(
        `--model: ${dir} is a translator: give --task translate --train FILE,... (its pairs) to compress it`,
        'compress',
      );
    }
    if (model.config.task !== 'classify') {
      model.dispose();
      throw new UsageError(`--model: ${dir} is a masked-LM; compress evaluates a classifier (trainlarge finetune first)`, 'compress');
    }
    const maxLen = record?.maxLen ?? model.config.maxLen;
    const task = await loadTask(source, tok, maxLen);
    const labels = (await savedLabels(dir)) ?? task.labels;
    const bars: { stop: () => void }[] = [];
    const training = (what: string): CompressionTraining => {
      const bar = progressReporter(`${what} ${task.name}`);
      bars.push(bar);
      return { data: task.train, config, fit: { onProgress: bar.onProgress } };
    };
    const done: Transformer[] = [];
    try {
      const beforeSize = await compressedSize(model);
      const before = {
        accuracy: (await model.evaluate(task.test)).accuracy!,
        bytes: beforeSize.bytes,
        heads: model.config.heads,
        ffn: model.config.ffn,
      };
      model = await applyCompression(model, { pruneOptions, quantizeOptions }, training, done);
      for (const b of bars.splice(0)) b.stop();
      await model.save(out, { labels, tokenizer: tok });
      await writeTaskRecord(out, { source, maxLen });
      const after = {
        accuracy: (await model.evaluate(task.test)).accuracy!,
        bytes: (await compressedSize(model)).bytes,
        heads: model.config.heads,
        ffn: model.config.ffn,
      };
      const fileBytes = fs.statSync(path.join(out, RUN_FILES.weights)).size;
      let int8Accuracy: number | undefined;
      if (int8) {
        const fast = await toInt8(model, { engine: args.string('engine') as Int8Engine | undefined });
        int8Accuracy = (await fast.evaluate(task.test)).accuracy;
        fast.dispose();
      }
      const parts = await partBytes(beforeSize, model);
      const result = {
        dir: out,
        task: task.name,
        parts,
        testExamples: task.test.size,
        before,
        after: { ...after, fileBytes },
        ...(int8Accuracy !== undefined ? { int8Accuracy } : {}),
        compression: { pruned: Object.keys(model.compression.pruned).length, quantized: Object.keys(model.compression.quantized).length },
      };
      if (args.bool('json')) console.log(JSON.stringify(result));
      else {
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
        console.log(
          `test accuracy (task ${task.name}): ${pct(before.accuracy)} before, ${pct(after.accuracy)} after` +
            `${int8Accuracy !== undefined ? `, ${pct(int8Accuracy)} on int8 kernels` : ''}`,
        );
        console.log(
          `bytes: ${before.bytes.toLocaleString('en-US')} before, ${after.bytes.toLocaleString('en-US')} after ` +
            `(${(before.bytes / after.bytes).toFixed(2)}x smaller)`,
        );
        printParts(parts);
        if (structured)
          console.log(`per layer: ${before.heads} -> ${after.heads} attention heads, ${before.ffn} -> ${after.ffn} feed-forward units`);
        console.log(
          `saved ${out}: model.safetensors (${fileBytes.toLocaleString('en-US')} bytes), config.json, tokenizer.model, task.json`,
        );
      }
    } finally {
      for (const b of bars) b.stop();
      model.dispose();
      for (const m of done) m.dispose();
      task.dispose();
    }
  },
};
