// trainlarge translate: a saved translator (plain, pruned or quantized; optionally on int8 kernels) over a
// file or stdin, one source sentence a line in, one translation a line out.
import * as fs from 'fs';
import * as path from 'path';
import { toInt8 } from '../compress/ops';
import { TranslateOptionsSchema } from '../config/translate';
import { readJson, RUN_FILES, writeFileAtomic } from '../io';
import { Transformer } from '../model';
import { Command, UsageError } from './args';
import { DEVICE_FLAG, device } from './common';

/** Reads all of stdin as UTF-8. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export const translate: Command = {
  name: 'translate',
  operands: 'MODEL_DIR',
  brief: 'Translates text with a saved translator, a sentence a line.',
  summary:
    'Translates one source sentence per line of --input (a file, or - for stdin) with a saved translate model (trained, or ' +
    'pruned/quantized and saved packed), by beam search; writes one translation per line, in order. Blank lines stay blank.',
  synopsis: 'MODEL_DIR [--input FILE|-] [--beam N] [--length-penalty X] [--max-len N] [--batch N] [--output FILE]',
  flags: [
    { name: 'input', kind: 'string', value: 'FILE|-', help: 'source sentences, one a line (default -: stdin)' },
    { name: 'output', kind: 'string', value: 'FILE', help: 'where the translations go (default stdout)' },
    { name: 'beam', kind: 'int', help: 'beam width, 1 is greedy', field: 'beam', defaults: TranslateOptionsSchema },
    {
      name: 'length-penalty',
      kind: 'number',
      help: 'score = log p / length^X',
      field: 'lengthPenalty',
      defaults: TranslateOptionsSchema,
    },
    {
      name: 'max-len',
      kind: 'int',
      help: "the most tokens generated per sentence, at most the model's maxLen - 1",
      field: 'maxLenB',
      defaults: TranslateOptionsSchema,
    },
    { name: 'batch', kind: 'int', help: 'sentences per search call', field: 'batchSize', defaults: TranslateOptionsSchema },
    { name: 'int8', kind: 'bool', help: "run the Linear layers on libtorch's int8 kernels (CPU only)" },
    DEVICE_FLAG,
  ],
  notes:
    'Examples:\n' +
    '  trainlarge translate runs/mt --input verses.en --beam 4 --output verses.es\n' +
    "  echo 'In the beginning God created the heaven and the earth.' | trainlarge translate runs/mt-q4 --beam 1",
  async run(args) {
    const dir = args.positional[0];
    if (!dir) throw new UsageError('translate: give the model directory (MODEL_DIR)', 'translate');
    if (args.positional.length > 1)
      throw new UsageError(`translate: one MODEL_DIR, got ${args.positional.length}: ${args.positional.join(' ')}`, 'translate');
    if (!fs.existsSync(path.join(dir, RUN_FILES.config)))
      throw new UsageError(`MODEL_DIR: ${dir} holds no saved model (no ${RUN_FILES.config})`, 'translate');
    const { model: cfg } = await readJson<{ model?: { task?: string } }>(path.join(dir, RUN_FILES.config), 'translate');
    const task = cfg?.task ?? 'mlm';
    if (task !== 'translate')
      throw new UsageError(`MODEL_DIR: ${dir} holds a '${task}' model; translate needs a 'translate' model (a translator)`, 'translate');
    const input = args.string('input') ?? '-';
    if (input !== '-' && !fs.existsSync(input))
      throw new UsageError(`--input: no such file ${input} (give a file, or - for stdin)`, 'translate');
    if (input !== '-' && fs.statSync(input).isDirectory())
      throw new UsageError(`--input: ${input} is a directory, not a file`, 'translate');
    const output = args.string('output');
    const dev = device(args);
    if (args.bool('int8') && dev !== 'cpu') throw new UsageError(`--int8: runs on CPU only; drop it or use --device cpu`, 'translate');
    const opts = {
      ...(args.int('beam') !== undefined ? { beam: args.int('beam')! } : {}),
      ...(args.number('length-penalty') !== undefined ? { lengthPenalty: args.number('length-penalty')! } : {}),
      ...(args.int('max-len') !== undefined ? { maxLenB: args.int('max-len')! } : {}),
      ...(args.int('batch') !== undefined ? { batchSize: args.int('batch')! } : {}),
    };

    const text = input === '-' ? await readStdin() : await fs.promises.readFile(input, 'utf8');
    const lines = text.split(/\r?\n/);
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop(); // the newline that ends the last line
    let model = await Transformer.load(dir, { device: dev });
    try {
      const tokenizer = model.tokenizer;
      if (!tokenizer) throw new Error(`MODEL_DIR: ${dir} holds no tokenizer; save the model with { tokenizer }`);
      if (args.bool('int8')) {
        const fp32 = model;
        model = await toInt8(fp32);
        fp32.dispose();
      }
      const todo = lines.map((l, i) => ({ l: l.trim(), i })).filter((x) => x.l !== '');
      const out = new Array<string>(lines.length).fill('');
      const done = todo.length
        ? await model.translate(
            todo.map((x) => x.l),
            { ...opts, tokenizer },
          )
        : [];
      todo.forEach((x, k) => (out[x.i] = done[k]));
      const result = out.map((l) => `${l}\n`).join('');
      if (output) await writeFileAtomic(output, result);
      else process.stdout.write(result);
    } finally {
      model.dispose();
    }
  },
};
