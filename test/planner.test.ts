// The planner on a synthetic evidence table whose answer is known.
import { CompressionRow } from '../lib/compress/study';
import { recommend } from '../lib/experiment/planner';

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
