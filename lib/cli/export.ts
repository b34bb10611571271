// trainlarge export: a trainlarge model as another format's directory (HF RoBERTa: config.json, weights, tokenizer;
// ONNX: model.onnx, config.json, tokenizer).
import * as path from 'path';
import { readJson, RUN_FILES } from '../io';
import { Transformer } from '../model';
import { exportOnnx } from '../onnx/export';
import { Command, UsageError } from './args';
import { JSON_FLAG, modelDir, saveHF } from './common';

const FORMATS = ['hf', 'onnx'] as const;

export const exportCommand: Command = {
  name: 'export',
  brief: 'Writes a model as an HF transformers or an ONNX directory.',
  summary:
    'Writes a trainlarge model (trained, fine-tuned or compressed) as an HF transformers directory with its tokenizer: an encoder ' +
    "as RoBERTa (AutoModel.from_pretrained(DIR)), a translator with Marian's options as MarianMTModel (docs/huggingface.md); or, " +
    'for a masked-LM or classifier, as an ONNX model (opset 17) for ONNX Runtime (onnxruntime-node), float32 or with --int8 ' +
    'dynamically quantized, with its tokenizer and labels.',
  synopsis: '--model DIR --format hf|onnx [--int8] [--dir OUT]',
  flags: [
    { name: 'model', kind: 'string', value: 'DIR', help: 'a trainlarge model or run directory' },
    { name: 'format', kind: FORMATS, help: 'the format to write (hf: HF transformers; onnx: ONNX Runtime)' },
    { name: 'int8', kind: 'bool', help: 'onnx: int8 attention and feed-forward layers (dynamic quantization)' },
    { name: 'dir', kind: 'string', value: 'OUT', help: 'the output directory (default DIR-FORMAT)' },
    JSON_FLAG,
  ],
  notes:
    'Examples:\n  trainlarge export --model runs/sentiment --format hf --dir runs/sentiment-hf\n' +
    '  trainlarge export --model runs/sentiment --format onnx --int8 --dir runs/sentiment-onnx8',
  async run(args) {
    const dir = modelDir(args, 'model');
    const format = args.string('format');
    if (format === undefined) throw new UsageError(`export: --format is required (one of ${FORMATS.join(', ')})`, 'export');
    const int8 = args.bool('int8');
    if (int8 && format !== 'onnx') throw new UsageError(`--int8: applies to --format onnx, not ${format}`, 'export');
    const out = args.string('dir') ?? `${path.resolve(dir).replace(/[/\\]+$/, '')}-${format}`;
    if (path.resolve(out) === path.resolve(dir)) throw new UsageError(`--dir: ${out} is the model's own directory; give another`, 'export');
    const model = await Transformer.load(dir);
    const { labels } = await readJson<{ labels?: string[] }>(path.join(dir, RUN_FILES.config), 'export');
    try {
      if (format === 'onnx') {
        if (model.config.task === 'translate') {
          throw new UsageError(
            `--format onnx: ${dir} is a translator; ONNX export covers masked-LM and classifier encoders ('mlm', 'classify')`,
            'export',
          );
        }
        await exportOnnx(model, out, { labels: model.config.task === 'classify' ? labels : undefined, int8 });
      } else await saveHF(model, out, { labels, tokenizer: model.tokenizer });
    } finally {
      model.dispose();
    }
    if (args.bool('json')) console.log(JSON.stringify({ dir: out, format, ...(format === 'onnx' ? { int8 } : {}) }));
    else console.log(`exported ${dir} as ${format}${int8 ? ' (int8)' : ''} to ${out}`);
  },
};
