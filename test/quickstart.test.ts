// The quickstart's cloze sentences are a fair test of context, and its flags fail clearly. Its targets at the
// default settings (9,000 steps, ~12 min) are checked by `npm run test:quickstart` (quickstart --check).
import { spawnSync } from 'child_process';
import * as path from 'path';
import { Corpus } from '../lib';
import { CLOZE } from '../examples/quickstart';

jest.setTimeout(120_000);

test("every hidden word is one piece of the quickstart's tokenizer and none is among a unigram model's top five", async () => {
  // The quickstart's own corpus directory (prepared by `npm run quickstart`, else here: ~20 s).
  const corpus = await Corpus.prepare({ source: 'english-prose', dir: path.resolve(__dirname, '..', 'data', 'english-prose') });
  const tok = corpus.tokenizer;
  const uni = corpus.unigram();
  const top5 = [...Array(tok.vocabSize).keys()]
    .filter((v) => v > tok.special.mask)
    .sort((a, b) => uni.logProbs[b] - uni.logProbs[a])
    .slice(0, 5);
  expect(top5.map((v) => tok.piece(v))).toEqual(expect.arrayContaining(['▁the', ',', '.']));
  expect(CLOZE).toHaveLength(10);
  for (const [, word] of CLOZE) {
    const ids = tok.encode(` ${word}`);
    expect(ids).toHaveLength(1);
    expect(top5).not.toContain(ids[0]);
  }
});

test('bad flags exit 1 naming the flag, before any work', () => {
  const script = path.resolve(__dirname, '..', 'dist', 'examples', 'quickstart.js');
  for (const [flag, value] of [
    ['--steps', '0'],
    ['--seconds', 'soon'],
  ]) {
    const r = spawnSync(process.execPath, [script, flag, value], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${flag}: expected a positive number, got '${value}'`);
  }
});
