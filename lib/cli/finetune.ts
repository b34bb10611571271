// trainlarge finetune: a pretrained body under a fresh classification head, trained on a built-in or your own task.
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer } from '../data/tokenizer';
import { readRobertaDir } from '../hf';
import { readJson, RUN_FILES } from '../io';
import { RunConfigFile, Transformer } from '../model';
import { Trainer } from '../train/trainer';
import { Command, UsageError } from './args';
import {
  device,
  DEVICE_FLAG,
  fitWithProgress,
  fromHF,
  JSON_FLAG,
  loadTask,
  TASK_FLAGS,
  taskSource,
  trainConfig,
  trainFlags,
  writeTaskRecord,
} from './common';

const STEPS = 500;

export const finetune: Command = {
  name: 'finetune',
  brief: 'Fine-tunes a pretrained model on a classification task (resumable).',
  summary:
    'Fine-tunes a pretrained model (a trainlarge directory, or an HF RoBERTa one) on a classification task. The output ' +
    'directory holds the classifier, its label names, the tokenizer and task.json (what compress evaluates on); ' +
    'the same command again resumes.',
  synopsis: '(--from DIR | --from-hf DIR) (--task NAME | --train FILE,...) [--dir OUT] [options]',
  flags: [
    { name: 'from', kind: 'string', value: 'DIR', help: 'a trainlarge model or run directory (trainlarge train)' },
    { name: 'from-hf', kind: 'string', value: 'DIR', help: 'or an HF RoBERTa directory (config.json + weights + tokenizer)' },
    { name: 'dir', kind: 'string', value: 'OUT', help: 'the output run directory (default runs/TASK)' },
    { name: 'tokenizer', kind: 'string', value: 'FILE', help: "a SentencePiece model (default: the one in the model's directory)" },
    ...TASK_FLAGS,
    { name: 'max-len', kind: 'int', help: "tokens per example, longer ones cut (default the model's maxLen)", field: 'maxLen' },
    ...trainFlags(STEPS),
    DEVICE_FLAG,
    JSON_FLAG,
  ],
  notes:
    'Examples:\n' +
    '  trainlarge finetune --from runs/mlm --task sentiment --dir runs/sentiment --steps 300 --lr 1e-4\n' +
    '  trainlarge finetune --from runs/mlm --train reviews.jsonl --text-field review --label-field stars --dir runs/reviews',
  async run(args) {
    const from = args.string('from'),
      fromHf = args.string('from-hf');
    if ((from === undefined) === (fromHf === undefined))
      throw new UsageError('finetune: give --from DIR (a trainlarge model) or --from-hf DIR (an HF RoBERTa model)', 'finetune');
    const config = trainConfig(args, STEPS);
    const src = (from ?? fromHf)!;
    if (!fs.existsSync(path.join(src, 'config.json')))
      throw new UsageError(`--${from ? 'from' : 'from-hf'}: ${src} holds no saved model (no config.json)`, 'finetune');
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
