// Files written by an earlier trainlarge (test/fixtures/v0.1, made by test/fixtures/make-v0.1.ts at
// 5cbce6c) still load: saved models, packed compressed models and run directories that resume.
import * as fs from 'fs';
import * as path from 'path';
import { ByteTokenizer, loadSpeeches, MlmDataset, Trainer, Transformer } from '../lib';
import { tempDir } from './helpers';

const dir = path.join(__dirname, 'fixtures', 'v0.1');
const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8'));

function expectClose(got: Float32Array, want: number[]): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  got.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - want[i]))));
  expect(worst).toBeLessThan(1e-4);
}

describe('files written by trainlarge 0.1', () => {
  test('a saved model loads and predicts the same logits', async () => {
    const model = await Transformer.load(path.join(dir, 'model'));
    expect(model.compression).toEqual({ pruned: {}, quantized: {} });
    expectClose((await model.predict(expected.ids)).data, expected.model);
  });

  test('a packed compressed model loads with its compression state', async () => {
    const model = await Transformer.load(path.join(dir, 'packed'));
    expect(model.compression).toEqual(expected.compression);
    expect(Object.values(model.compression.quantized).map((q) => q.bits)).toEqual([4, 4, 4, 4]);
    expectClose((await model.predict(expected.ids)).data, expected.packed);
  });

  test('a run directory resumes from its checkpoint', async () => {
    const run = tempDir('fixture-run');
    fs.cpSync(path.join(dir, 'run'), run, { recursive: true });
    const tok = new ByteTokenizer();
    const docs = loadSpeeches()
      .slice(0, 4)
      .map((s) => tok.encode(s.text.slice(0, 4000)));
    const data = MlmDataset.fromDocuments(docs, tok, { maxLen: 16 });
    const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')).model;
    const model = await Transformer.create(config, { seed: 99 });
    const result = await new Trainer(model, expected.trainConfig).fit(data, { dir: run });
    expect(result.resumedFrom).toBe(4);
    const steps = result.history.filter((r) => r.type === 'train').map((r) => r.step);
    expect(steps).toEqual([5, 6, 7, 8]);
    const logged = fs
      .readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(logged.filter((r) => r.type === 'train').map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
