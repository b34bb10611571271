// Every options object of the public API is a strict schema (lib/config/): a misspelled option is refused with
// an error naming it, never run as if nothing was passed. One call per public method that takes options, each
// with one misspelled key beside valid values, so only the spelling can be what is refused.
import * as path from 'path';
import {
  ConfigError,
  Corpus,
  corpusBleu,
  corpusChrf,
  createService,
  exportOnnx,
  MlmDataset,
  prune,
  quantize,
  sentenceBleu,
  sentenceChrf,
  setThreads,
  toInt8,
  Tokenizer,
  Trainer,
  Transformer,
} from '../lib';
import { small, tempDir, tok } from './helpers';

let model: Transformer;
let data: MlmDataset;
const dir = tempDir('options');
const ids = [Array.from(tok.encode('the union is strong')), Array.from(tok.encode('and so'))];

beforeAll(async () => {
  model = await Transformer.create(small, { seed: 1 });
  data = MlmDataset.fromDocuments([tok.encode('The state of the union is strong. '.repeat(20))], tok, { maxLen: 32 });
  await model.save(path.join(dir, 'model'));
});

afterAll(() => model.dispose());

/** [what is called, the call, the misspelled key]. */
const calls: [string, () => unknown, string][] = [
  ['Transformer.create', () => Transformer.create(small, { sed: 1 } as never), 'sed'],
  ['Transformer.load', () => Transformer.load(path.join(dir, 'model'), { devise: 'cpu' } as never), 'devise'],
  ['Transformer.fromPretrained', () => Transformer.fromPretrained(path.join(dir, 'model'), { numLabel: 2 } as never), 'numLabel'],
  ['Transformer.fromHF', () => Transformer.fromHF(path.join(dir, 'model'), { tsak: 'mlm' } as never), 'tsak'],
  ['Transformer.save', () => model.save(path.join(dir, 'saved'), { fromat: 'hf' } as never), 'fromat'],
  ['Transformer.predict', () => model.predict(ids, { precison: 'bf16' } as never), 'precison'],
  ['Transformer.fillMask', () => model.fillMask(ids, { topk: 3 } as never), 'topk'],
  ['Transformer.evaluate', () => model.evaluate(data, { sampels: 3 } as never), 'sampels'],
  ['Transformer.translate', () => model.translate(['a'], { beem: 2 } as never), 'beem'],
  ['new Trainer', () => new Trainer(model, { maxSteps: 1, warmup: 1 } as never), 'warmup'],
  ['Trainer.fit', () => new Trainer(model, { maxSteps: 1 }).fit(data, { evalEvry: 5 } as never), 'evalEvry'],
  ['prune', () => prune(model, { sparsity: 0.5, scoep: 'layer' } as never), 'scoep'],
  ['quantize', () => quantize(model, { bits: 4, granularty: 'tensor' } as never), 'granularty'],
  ['toInt8', () => toInt8(model, { engin: 'x86' } as never), 'engin'],
  ['exportOnnx', () => exportOnnx(model, path.join(dir, 'onnx'), { int: true } as never), 'int'],
  ['Tokenizer.train', () => Tokenizer.train({ texts: ['a b c'], vocabsize: 100 } as never), 'vocabsize'],
  ['createService', () => createService({ models: [{ name: 'm', dir: path.join(dir, 'model') }], maxbatch: 2 } as never), 'maxbatch'],
  ['corpusBleu', () => corpusBleu(['a'], ['a'], { tokenise: 'none' } as never), 'tokenise'],
  ['sentenceBleu', () => sentenceBleu('a', 'a', { lowercas: true } as never), 'lowercas'],
  ['corpusChrf', () => corpusChrf(['a'], ['a'], { charorder: 4 } as never), 'charorder'],
  ['sentenceChrf', () => sentenceChrf('a', 'a', { wordorder: 2 } as never), 'wordorder'],
  ['setThreads', () => setThreads({ thread: 1 } as never), 'thread'],
  ['Corpus.prepare', () => Corpus.prepare({ source: 'english-prose', dir: path.join(dir, 'c'), shardChar: 1000 } as never), 'shardChar'],
  [
    'Corpus.prepare source',
    () => Corpus.prepare({ source: { name: 'x', train: { files: ['a.txt'], textFeild: 'text' } }, dir: path.join(dir, 'c') } as never),
    'textFeild',
  ],
  ['Corpus.open', () => Corpus.open(path.join(dir, 'c'), { verfy: true } as never), 'verfy'],
];

test.each(calls)('%s refuses a misspelled option, naming it', async (_what, call, key) => {
  expect.assertions(2);
  try {
    await call();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toContain(`"${key}"`);
  }
});

test('an attentionMask beside arrays of sequences is refused with a pointer to the object form', async () => {
  const attentionMask = new Uint8Array(2 * 19).fill(1);
  for (const call of [() => model.predict(ids, { attentionMask } as never), () => model.fillMask(ids, { attentionMask } as never)]) {
    await expect(call()).rejects.toThrow(
      /attentionMask: goes with the ids it masks: pass tokens as \{ ids: Int32Array, batch, length, attentionMask \}/,
    );
  }
});

test('the object form honours its attentionMask: a padded row gives the unpadded row its logits', async () => {
  const [a] = ids;
  const length = a.length + 5;
  const padded = new Int32Array(length).fill(small.vocabSize - 1);
  padded.set(a);
  const attentionMask = new Uint8Array(length).fill(1, 0, a.length);
  const masked = await model.predict({ ids: padded, batch: 1, length, attentionMask });
  const plain = await model.predict([a]);
  const V = plain.dims[2];
  const diff = Math.max(...Array.from(plain.data, (x, i) => Math.abs(x - masked.data[i])).slice(0, a.length * V));
  expect(diff).toBeLessThan(1e-4);
});
