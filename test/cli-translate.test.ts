// trainlarge translate, run as a user runs it (dist/lib/cli.js): a small translator trained on Bible pairs,
// saved plain and packed (8-bit quantized), translating a file and stdin; its lines equal mt.translate's with
// the same options. Bad input: exit 2 naming the flag or operand and what it accepts.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ParallelTask, quantize, toInt8, Transformer } from '../lib';
import { bibleTask, tempDir, trainTranslator } from './helpers';

jest.setTimeout(180_000);
const CLI = path.resolve(__dirname, '..', 'dist', 'lib', 'cli.js');

/** `trainlarge translate ARGS...`, with `input` on stdin. */
function trainlarge(args: string[], input?: string): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, 'translate', ...args], { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

let root: string;
let data: ParallelTask;
let mt: Transformer;
let sources: string[];

beforeAll(async () => {
  root = tempDir('cli-translate');
  data = await bibleTask();
  mt = await Transformer.create(
    { task: 'translate', encoderLayers: 1, decoderLayers: 1, dModel: 64, heads: 4, maxLen: 64, vocabSize: data.tokenizer.vocabSize },
    { seed: 1 },
  );
  await trainTranslator(mt, data.train, 80);
  await mt.save(path.join(root, 'mt'), { tokenizer: data.tokenizer });
  sources = data.pairs.test.source.slice(0, 6);
});

afterAll(() => {
  mt?.dispose();
  data?.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

test('translates a file and stdin, a line per sentence, as mt.translate does; packed and int8 models too', async () => {
  const input = path.join(root, 'in.en');
  // A blank line in the middle stays a blank line in the output.
  fs.writeFileSync(input, [sources[0], sources[1], '', ...sources.slice(2)].join('\n') + '\n');
  const output = path.join(root, 'out.es');
  const r = trainlarge([
    path.join(root, 'mt'),
    '--input',
    input,
    '--beam',
    '3',
    '--length-penalty',
    '0.8',
    '--batch',
    '4',
    '--output',
    output,
  ]);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  const expected = await mt.translate(sources, { beam: 3, lengthPenalty: 0.8, batchSize: 4 });
  console.log(`"${sources[0]}" -> "${expected[0]}"`);
  expect(fs.readFileSync(output, 'utf8')).toBe([expected[0], expected[1], '', ...expected.slice(2)].join('\n') + '\n');

  // stdin to stdout, greedy, at most 5 generated tokens.
  const short = trainlarge([path.join(root, 'mt'), '--beam', '1', '--max-len', '5'], sources.join('\n'));
  expect(short.code).toBe(0);
  expect(short.out).toBe((await mt.translate(sources, { beam: 1, maxLenB: 5 })).join('\n') + '\n');
  expect(short.out.length).toBeLessThanOrEqual((await mt.translate(sources, { beam: 1 })).join('\n').length + 1);

  // Saved packed (8-bit): the file the CLI loads is the small one, and its translations are the quantized model's.
  const q8 = await quantize(mt, { bits: 8 });
  await q8.save(path.join(root, 'mt-q8'), { tokenizer: data.tokenizer });
  expect(fs.statSync(path.join(root, 'mt-q8', 'model.safetensors')).size).toBeLessThan(
    fs.statSync(path.join(root, 'mt', 'model.safetensors')).size,
  );
  const packed = trainlarge([path.join(root, 'mt-q8'), '--input', '-', '--beam', '2'], sources.join('\n') + '\n');
  expect(packed.code).toBe(0);
  expect(packed.out).toBe((await q8.translate(sources, { beam: 2 })).join('\n') + '\n');
  q8.dispose();

  // --int8: the Linear layers on int8 kernels, as toInt8 gives them.
  const int8 = await toInt8(mt);
  const r8 = trainlarge([path.join(root, 'mt'), '--int8', '--beam', '2'], sources.join('\n'));
  expect(r8.code).toBe(0);
  expect(r8.out).toBe((await int8.translate(sources, { beam: 2 })).join('\n') + '\n');
  int8.dispose();
});

test('bad input: exit 2 with a message naming the flag or operand and what it accepts', async () => {
  const dir = path.join(root, 'mt');
  const beam0 = trainlarge([dir, '--beam', '0'], 'In the beginning.\n');
  expect(beam0.code).toBe(2);
  expect(beam0.err).toMatch(/--beam: Too small: expected number to be >=1\n/);
  expect(beam0.err).not.toMatch(/\n\s+at /); // no stack trace

  const missing = trainlarge([dir, '--input', path.join(root, 'nope.txt')]);
  expect(missing.code).toBe(2);
  expect(missing.err).toMatch(/--input: no such file .*nope\.txt \(give a file, or - for stdin\)/);

  const noModel = trainlarge([path.join(root, 'nothing-here')], 'x\n');
  expect(noModel.code).toBe(2);
  expect(noModel.err).toMatch(/MODEL_DIR: .*nothing-here holds no saved model/);

  const encoder = await Transformer.create({ vocabSize: 100, maxLen: 16, dModel: 16, layers: 1, heads: 2 }, { seed: 1 });
  await encoder.save(path.join(root, 'encoder'));
  encoder.dispose();
  const notMt = trainlarge([path.join(root, 'encoder')], 'x\n');
  expect(notMt.code).toBe(2);
  expect(notMt.err).toMatch(/MODEL_DIR: .*encoder holds a 'mlm' model; translate needs a 'translate' model/);

  const noDir = trainlarge(['--beam', '2']);
  expect(noDir.code).toBe(2);
  expect(noDir.err).toMatch(/translate: give the model directory \(MODEL_DIR\)/);

  const badPenalty = trainlarge([dir, '--length-penalty', 'long'], 'x\n');
  expect(badPenalty.code).toBe(2);
  expect(badPenalty.err).toMatch(/--length-penalty: expected a number, got 'long'/);
});
