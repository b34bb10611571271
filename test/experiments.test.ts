// The shipped experiment files are valid specs, and the paper-small ones fit their 20-minute promise.
import * as fs from 'fs';
import * as path from 'path';
import { parseConfig } from '../lib/config/parse';
import { CompressionSpecSchema } from '../lib/experiment/compression-spec';
import { ladderSweeps } from '../lib/experiment/ladder';
import { SweepSpecSchema } from '../lib/experiment/sweep';

const root = path.resolve(__dirname, '..', 'experiments');
const files = ['paper-small', 'paper-scale'].flatMap((d) =>
  fs
    .readdirSync(path.join(root, d))
    .filter((f) => f.endsWith('.json'))
    .map((f) => path.join(d, f)),
);

test.each(files)('%s is a valid experiment', (file) => {
  const spec = JSON.parse(fs.readFileSync(path.join(root, file), 'utf8'));
  if (spec.kind === 'compression') {
    const c = parseConfig(CompressionSpecSchema, spec, file);
    // A translate sweep's translators: 4 sizes x (1 + sparsities + bits) scorings. Measured on the depth sweep's
    // 6+6 model, 100 pairs at beam 2 + 500 loss pairs, on 2 cores shared with another job (load ~4): 5-87 s a
    // scoring, ~50 s mean (a weak model's beams often run to maxLen); the 1+1 model 7-18 s. At 60 pairs and
    // 11 scorings a size: ~13 min so loaded, less on idle cores.
    if (c.scoring && file.startsWith('paper-small')) {
      expect(c.scoring.samples ?? 100).toBeLessThanOrEqual(60);
      expect((c.scoring.beam ?? 2) * (1 + c.sparsities.length + c.bits.length)).toBeLessThanOrEqual(2 * 11);
    }
    return;
  }
  if (spec.kind === 'ladder') {
    const budgets = ladderSweeps(spec).map((r) => r.sweep.spec.budget as { seconds: number });
    // Every budget trains every size: the sum of the budgets per size, plus ~10% measurement and evaluation.
    if (file.startsWith('paper-small'))
      expect(spec.models.length * budgets.reduce((n, b) => n + b.seconds, 0) * 1.1).toBeLessThanOrEqual(20 * 60);
    return;
  }
  const s = parseConfig(SweepSpecSchema, spec, file);
  if (file.startsWith('paper-small')) {
    // Training budgets plus ~10% for step-time measurement and evaluation stay within 20 minutes.
    expect('seconds' in s.budget).toBe(true);
    expect(s.models.length * (s.budget as { seconds: number }).seconds * 1.1).toBeLessThanOrEqual(20 * 60);
  }
  if (s.task === 'translate') {
    // BLEU cheap enough for a wall-clock cadence: a fixed subset of the validation pairs.
    expect(s.bleu!.samples).toBeLessThanOrEqual(file.startsWith('paper-small') ? 100 : 1000);
    if (file.startsWith('paper-scale')) expect(typeof s.corpus === 'object' && s.corpus.name).toBe('wmt14-en-fr');
  }
});

test('there is an experiment for every figure of the paper at small scale', () => {
  expect(files.filter((f) => f.startsWith('paper-small')).sort()).toEqual([
    'paper-small/batch.json',
    'paper-small/compression.json',
    'paper-small/depth.json',
    'paper-small/ladder.json',
    'paper-small/translation-compression.json',
    'paper-small/translation-depth.json',
    'paper-small/translation-ladder.json',
    'paper-small/translation-width.json',
    'paper-small/width.json',
  ]);
});
