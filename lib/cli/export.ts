// trainlarge export: a trainlarge model as another format's directory (HF RoBERTa: config.json, weights, tokenizer).
import * as path from 'path';
import { readJson, RUN_FILES } from '../io';
import { Transformer } from '../model';
import { Command, UsageError } from './args';
import { JSON_FLAG, modelDir, saveHF } from './common';

const FORMATS = ['hf'] as const;

export const exportCommand: Command = {
  name: 'export',
  brief: 'Writes a model as an HF transformers directory.',
  summary:
    'Writes a trainlarge model (trained, fine-tuned or compressed) as an HF transformers directory with its tokenizer: an encoder ' +
    "as RoBERTa (AutoModel.from_pretrained(DIR)), a translator with Marian's options as MarianMTModel (docs/huggingface.md).",
  synopsis: '--model DIR --format hf [--dir OUT]',
  flags: [
    { name: 'model', kind: 'string', value: 'DIR', help: 'a trainlarge model or run directory' },
    { name: 'format', kind: FORMATS, help: 'the format to write (hf: HF transformers)' },
    { name: 'dir', kind: 'string', value: 'OUT', help: 'the output directory (default DIR-hf)' },
    JSON_FLAG,
  ],
  notes: 'Example:\n  trainlarge export --model runs/sentiment --format hf --dir runs/sentiment-hf',
  async run(args) {
    const dir = modelDir(args, 'model');
    const format = args.string('format');
    if (format === undefined) throw new UsageError(`export: --format is required (one of ${FORMATS.join(', ')})`, 'export');
    const out = args.string('dir') ?? `${path.resolve(dir).replace(/[/\\]+$/, '')}-${format}`;
    if (path.resolve(out) === path.resolve(dir)) throw new UsageError(`--dir: ${out} is the model's own directory; give another`, 'export');
    const model = await Transformer.load(dir);
    const { labels } = await readJson<{ labels?: string[] }>(path.join(dir, RUN_FILES.config), 'export');
    try {
      await saveHF(model, out, { labels, tokenizer: model.tokenizer });
    } finally {
      model.dispose();
    }
    if (args.bool('json')) console.log(JSON.stringify({ dir: out, format }));
    else console.log(`exported ${dir} as ${format} to ${out}`);
  },
};
