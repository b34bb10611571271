// trainlarge finetune: a pretrained body under a fresh classification head, trained on a built-in or your own task;
// or, with --task translate, a translator (an HF MarianMT / opus-mt one, or trainlarge's) trained on your pairs.
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer } from '../data/tokenizer';
import { readRobertaDir } from '../hf';
import { Dataset } from '../data/task';
import { readJson, RUN_FILES } from '../io';
import { RunConfigFile, Transformer } from '../model';
import { Trainer } from '../train/trainer';
import { Args, Command, UsageError } from './args';
import {
  device,
  DEVICE_FLAG,
  fitWithProgress,
  fromHF,
  JSON_FLAG,
  loadTask,
  parallelFiles,
  TASK_FLAGS,
  TRANSLATE_TASK,
  taskSource,
  trainConfig,
  trainFlags,
  writeTaskRecord,
} from './common';

const STEPS = 500;

/** The mean of the first and of the last `n` training losses of a fit. */
function lossEnds(history: { type?: string; loss: number }[], n = 5): { first?: number; last?: number } {
  const steps = history.filter((r) => r.type !== 'eval').map((r) => r.loss);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined);
  return { first: mean(steps.slice(0, n)), last: mean(steps.slice(-n)) };
}

/** finetune --task translate: a translator (fromHF's MarianMT, or a trainlarge one) trained on your pairs. */
async function finetuneTranslator(args: Args, from: string | undefined, fromHf: string | undefined): Promise<void> {
  const config = {
    ...trainConfig(args, STEPS),
    ...(args.int('batch-tokens') !== undefined ? { batchTokens: args.int('batch-tokens') } : {}),
    ...(args.number('label-smoothing') !== undefined ? { labelSmoothing: args.number('label-smoothing') } : {}),
  };
  const spec = parallelFiles(args);
  const dir = args.string('dir') ?? path.join('runs', spec.name);
  const dev = device(args);
  const model = fromHf
    ? await Transformer.fromHF(fromHf, { device: dev, seed: config.seed })
    : await Transformer.load(from!, { device: dev });
  let task: Awaited<ReturnType<typeof Dataset.parallel>> | undefined;
  let trainer: Trainer | undefined;
  try {
    if (model.config.task !== 'translate')
      throw new UsageError(`--task translate: ${(fromHf ?? from)!} holds a '${model.config.task}' model, not a translator`, 'finetune');
    const tokFile = args.string('tokenizer');
    const tok = tokFile ? Tokenizer.load(tokFile) : model.tokenizer;
    if (!tok) throw new Error(`${(fromHf ?? from)!} holds no tokenizer; give --tokenizer FILE`);
    const maxLen = args.int('max-len') ?? model.config.maxLen;
    if (maxLen > model.config.maxLen)
      throw new UsageError(`--max-len: at most the model's maxLen (${model.config.maxLen}), got ${maxLen}`, 'finetune');
    task = await Dataset.parallel({ source: spec, tokenizer: tok, maxLen });
    await writeTaskRecord(dir, { source: TRANSLATE_TASK, parallel: spec, maxLen });
    trainer = new Trainer(model, { ...config, distributed: 'auto' });
    const r = await fitWithProgress(`finetune ${spec.name}`, trainer, task.train, { args, validData: task.valid, dir });
    await model.save(dir, { tokenizer: tok, train: trainer.config });
    const test = task.test ?? task.valid;
    const score = test ? await model.evaluate(test, { metric: 'bleu', maxSamples: 200 }) : undefined;
    const loss = lossEnds(r.history);
    const result = {
      dir,
      task: TRANSLATE_TASK,
      pairs: task.train.size,
      steps: r.steps,
      resumedFrom: r.resumedFrom,
      firstLoss: loss.first,
      lastLoss: loss.last,
      validLoss: r.lastEval?.loss,
      ...(score ? { bleu: score.bleu, bleuSignature: score.bleuSignature, bleuPairs: score.hypotheses.length } : {}),
    };
    if (args.bool('json')) console.log(JSON.stringify(result));
    else {
      console.log(
        `fine-tuned the translator on ${task.train.size} pairs of ${spec.name} to step ${r.steps}` +
          `${r.resumedFrom ? ` (resumed from ${r.resumedFrom})` : ''}: training loss ${loss.first?.toFixed(3)} -> ${loss.last?.toFixed(3)}` +
          `${score ? `, BLEU ${score.bleu.toFixed(2)} on ${score.hypotheses.length} ${task.test ? 'test' : 'validation'} pairs` : ''}`,
      );
      console.log(`saved ${dir}: model.safetensors, config.json, the tokenizer (${tok.files.join(', ')}), task.json, checkpoints`);
    }
  } finally {
    trainer?.dispose();
    model.dispose();
    task?.dispose();
  }
}

export const finetune: Command = {
  name: 'finetune',
  brief: 'Fine-tunes a pretrained model on a classification task, or a translator on your pairs (resumable).',
  summary:
    'Fine-tunes a pretrained model (a trainlarge directory, or an HF RoBERTa one) on a classification task; with --task ' +
    'translate, a translator (a trainlarge one, or an HF MarianMT / Helsinki-NLP opus-mt directory) on your source-target ' +
    'pairs (--train, TSV or JSONL). The output directory holds the model, its tokenizer and task.json (what compress ' +
    'evaluates on); the same command again resumes.',
  synopsis: '(--from DIR | --from-hf DIR) (--task NAME | --train FILE,...) [--dir OUT] [options]',
  flags: [
    { name: 'from', kind: 'string', value: 'DIR', help: 'a trainlarge model or run directory (trainlarge train)' },
    { name: 'from-hf', kind: 'string', value: 'DIR', help: 'or an HF directory: RoBERTa, or MarianMT (opus-mt) with --task translate' },
    { name: 'dir', kind: 'string', value: 'OUT', help: 'the output run directory (default runs/TASK)' },
    { name: 'tokenizer', kind: 'string', value: 'FILE', help: "a SentencePiece model (default: the one in the model's directory)" },
    ...TASK_FLAGS,
    { name: 'max-len', kind: 'int', help: "tokens per example, longer ones cut (default the model's maxLen)", field: 'maxLen' },
    ...trainFlags(STEPS),
    {
      name: 'batch-tokens',
      kind: 'int',
      help: "--task translate: a batch's tokens (fairseq's --max-tokens; default 4096)",
      field: 'batchTokens',
    },
    { name: 'label-smoothing', kind: 'number', help: '--task translate: label smoothing epsilon (default 0)', field: 'labelSmoothing' },
    DEVICE_FLAG,
    JSON_FLAG,
  ],
  notes:
    'Examples:\n' +
    '  trainlarge finetune --from runs/mlm --task sentiment --dir runs/sentiment --steps 300 --lr 1e-4\n' +
    '  trainlarge finetune --from runs/mlm --train reviews.jsonl --text-field review --label-field stars --dir runs/reviews\n' +
    '  trainlarge finetune --from-hf opus-mt-en-es --task translate --train pairs.tsv --dir runs/ft --steps 200 --lr 3e-5',
  async run(args) {
    const from = args.string('from'),
      fromHf = args.string('from-hf');
    if ((from === undefined) === (fromHf === undefined))
      throw new UsageError('finetune: give --from DIR (a trainlarge model) or --from-hf DIR (an HF RoBERTa model)', 'finetune');
    const config = trainConfig(args, STEPS);
    const src = (from ?? fromHf)!;
    if (!fs.existsSync(path.join(src, 'config.json')))
      throw new UsageError(`--${from ? 'from' : 'from-hf'}: ${src} holds no saved model (no config.json)`, 'finetune');
    if (args.string('task') === TRANSLATE_TASK) return finetuneTranslator(args, from, fromHf);
    for (const f of ['batch-tokens', 'label-smoothing'])
      if (args.has(f)) throw new UsageError(`--${f}: only applies with --task translate`, 'finetune');
    const source = taskSource(args);
    if (source === undefined)
      throw new UsageError('finetune: give --task NAME (a built-in task) or --train FILE,... (your own labelled examples)', 'finetune');
    const tokFile = args.string('tokenizer');
    const tok = tokFile ? Tokenizer.load(tokFile) : await Tokenizer.fromDir(src);
    // The body's maxLen bounds the examples; its config is enough to know it (RoBERTa's position offset is lib/hf.ts's).
    const modelMaxLen = from
      ? (await readJson<RunConfigFile>(path.join(src, RUN_FILES.config), 'finetune')).model.maxLen
      : (await readRobertaDir(src, { task: 'mlm' })).config.maxLen;
    const maxLen = args.int('max-len') ?? modelMaxLen;
    if (maxLen > modelMaxLen) throw new UsageError(`--max-len: at most the model's maxLen (${modelMaxLen}), got ${maxLen}`, 'finetune');
    const task = await loadTask(source, tok, maxLen);
    const name = task.name;
    const dir = args.string('dir') ?? path.join('runs', name);
    const opts = { device: device(args), numLabels: task.labels.length, seed: config.seed };
    const model = from ? await Transformer.fromPretrained(from, { task: 'classify', ...opts }) : await fromHF(fromHf!, opts);
    if (model.config.vocabSize !== tok.vocabSize) {
      model.dispose();
      throw new Error(
        `the tokenizer has ${tok.vocabSize} pieces but the model's vocabSize is ${model.config.vocabSize}: give the tokenizer it was trained with`,
      );
    }
    await writeTaskRecord(dir, { source, maxLen });
    // Under `trainlarge launch` (torchrun's variables set) the ranks train together; alone, as one process.
    const trainer = new Trainer(model, { ...config, distributed: 'auto' });
    try {
      const r = await fitWithProgress(`finetune ${name}`, trainer, task.train, { args, validData: task.valid, dir });
      // The label names beside the weights, for the service and compress (fit's checkpoint wrote the rest).
      await model.save(dir, { labels: task.labels, train: trainer.config });
      const test = await model.evaluate(task.test);
      const result = {
        dir,
        task: name,
        labels: task.labels,
        steps: r.steps,
        resumedFrom: r.resumedFrom,
        validAccuracy: r.lastEval?.accuracy,
        testAccuracy: test.accuracy,
        testExamples: test.count,
      };
      if (args.bool('json')) console.log(JSON.stringify(result));
      else {
        console.log(
          `fine-tuned on ${name} (${task.labels.length} labels) to step ${r.steps}${r.resumedFrom ? ` (resumed from ${r.resumedFrom})` : ''}: ` +
            `${r.lastEval?.accuracy !== undefined ? `validation accuracy ${r.lastEval.accuracy.toFixed(3)}, ` : ''}` +
            `test accuracy ${test.accuracy!.toFixed(3)} (${test.count} examples)`,
        );
        console.log(`saved ${dir}: model.safetensors, config.json (labels), tokenizer.model, task.json, checkpoints`);
      }
    } finally {
      trainer.dispose();
      model.dispose();
      task.dispose();
    }
  },
};
