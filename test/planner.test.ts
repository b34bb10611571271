// The planner on a synthetic evidence table whose answer is known.
import { CompressionRow } from '../lib/compress/study';
import { recommend } from '../lib/experiment/planner';
import { pairwiseWins } from '../lib/experiment/compression-claims';

const row = (model: string, method: CompressionRow['method'], setting: number, bytes: number, accuracy: number): CompressionRow => ({
  model,
  parameters: 0,
  method,
  setting,
  bytes,
  layerBytes: bytes,
  accuracy,
  accuracyDrop: 0,
  meanWeightError: 0,
  weightErrors: {},
});

const evidence = {
  models: [
    { label: 'small', parameters: 1e6, trainSeconds: 100 },
    { label: 'large', parameters: 8e6, trainSeconds: 100 },
    { label: 'huge', parameters: 3e7, trainSeconds: 400 },
  ],
  compression: [
    row('small', 'none', 0, 4_000_000, 0.8),
    row('small', 'quantize', 4, 600_000, 0.78),
    row('large', 'none', 0, 32_000_000, 0.88),
    row('large', 'prune', 0.9, 3_500_000, 0.85),
    row('large', 'quantize', 4, 4_200_000, 0.86),
    row('large', 'quantize', 2, 2_100_000, 0.7),
    row('huge', 'none', 0, 120_000_000, 0.92),
    row('huge', 'quantize', 2, 8_000_000, 0.9),
  ],
};

test('a heavily compressed large model beats a lightly compressed small one at the same memory', () => {
  const r = recommend(evidence, { memoryBytes: 4_500_000, trainSeconds: 100 });
  expect([r.model, r.method, r.setting, r.expectedAccuracy]).toEqual(['large', 'quantize', 4, 0.86]);
  expect(r.alternatives.map((a) => `${a.model}:${a.method}:${a.setting}`)).toEqual(['small:none:0']);
  expect(r.reason).toMatch(/large quantize 4 measured 0\.860 at 4200000 bytes/);
});

test('the training budget decides which sizes are candidates', () => {
  expect(recommend(evidence, { memoryBytes: 10_000_000, trainSeconds: 100 }).model).toBe('large');
  expect(recommend(evidence, { memoryBytes: 10_000_000, trainSeconds: 500 })).toMatchObject({
    model: 'huge',
    method: 'quantize',
    setting: 2,
  });
  expect(recommend(evidence, { memoryBytes: 1_000_000, trainSeconds: 100 })).toMatchObject({
    model: 'small',
    method: 'quantize',
    setting: 4,
  });
});

test('impossible budgets are refused with what would fit', () => {
  expect(() => recommend(evidence, { memoryBytes: 100_000, trainSeconds: 100 })).toThrow(
    /nothing measured fits in 100000 bytes; the smallest is small quantize 4 at 600000 bytes/,
  );
  expect(() => recommend(evidence, { memoryBytes: 1e9, trainSeconds: 10 })).toThrow(
    /no model was trained within 10 s; the quickest evidence is small at 100 s/,
  );
  expect(() => recommend(evidence, { memoryBytes: -1, trainSeconds: 10 })).toThrow(/memoryBytes: must be a positive number/);
});

test('pairwiseWins counts, for each pair of sizes, the compressed small variants the larger model beats at no larger size', () => {
  const rows = [row('a', 'none', 0, 100, 0.7), row('a', 'quantize', 8, 50, 0.6), row('a', 'quantize', 4, 30, 0.5)];
  rows.push(row('b', 'none', 0, 200, 0.8), row('b', 'quantize', 8, 45, 0.65), row('b', 'quantize', 4, 35, 0.4));
  // By layer bytes the larger model's 4-bit variant is the only one no larger than a's 8-bit one, and it loses.
  rows[4].layerBytes = 60;
  const sizes = [
    { label: 'b', parameters: 2 },
    { label: 'a', parameters: 1 },
  ];
  // a quantize 8 (50 B): b's best at <= 50 B is quantize 8 (0.65 > 0.6): a win; a quantize 4 (30 B): no b variant that small.
  expect(pairwiseWins(rows, sizes, (x, y) => x.accuracy > y.accuracy)).toEqual([
    '- b over a: wins 1 of 1 by file bytes, 0 of 1 by layer bytes',
  ]);
});
