// Translation size sweeps (task 'translate'): BLEU and loss on a wall-clock cadence, the report's claims,
// resuming, schema errors, and the shipped paper-small translation files run scaled down. Real data: a small
// subset of bible-en-es.
import * as fs from 'fs';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { checkFirstToReach } from '../lib/experiment/report';
import { Sweep, SweepResults, SweepSpec } from '../lib/experiment/sweep';
import { EvalRecord, MetricRecord } from '../lib/train/trainer';
import { tempDir, TINY_MT_SWEEP } from './helpers';

jest.setTimeout(300_000);

let root: string;
beforeAll(() => (root = tempDir('sweep-mt')));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const cli = path.resolve(__dirname, '..', 'dist', 'lib', 'cli.js');
const tiny = {
  ...TINY_MT_SWEEP,
  data: { vocabSize: 600, maxPairs: 1500, maxChars: 120 },
  models: [
    { dModel: 32, encoderLayers: 1, decoderLayers: 1, heads: 2 },
    { dModel: 64, encoderLayers: 2, decoderLayers: 2, heads: 4 },
  ],
  maxLen: 48,
  budget: { seconds: 4 },
  evalEvery: { seconds: 1 },
  evalSamples: 60,
  bleu: { samples: 24, beam: 1 },
} as const;

const verdict = (holds: boolean | undefined) => (holds === undefined ? 'not decidable' : holds ? '**true**' : '**false**');

test('trainlarge experiment run: a translation sweep gives BLEU and loss over wall-clock time per size, plots and the claims', async () => {
  const file = path.join(root, 'tiny-mt.json');
  fs.writeFileSync(file, JSON.stringify(tiny));
  const dir = path.join(root, 'cli');
  const r = spawnSync(process.execPath, [cli, 'experiment', 'run', file, '--dir', dir], { encoding: 'utf8' });
  if (r.status !== 0) console.log(r.stdout, r.stderr);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/\[2\/2\] d64-enc2-dec2-h4: done/);

  // results.csv: a row per evaluation with BLEU, on a wall-clock cadence, for each size.
  const csv = fs.readFileSync(path.join(dir, 'results.csv'), 'utf8').trim().split('\n');
  expect(csv[0]).toBe('run,parameters,step,train_seconds,loss,perplexity,bleu,chrf');
  const rows = csv.slice(1).map((l) => l.split(','));
  for (const label of ['d32-enc1-dec1-h2', 'd64-enc2-dec2-h4']) {
    const mine = rows.filter((x) => x[0] === label);
    console.log(`${label}: ${mine.map((x) => `${x[3]} s step ${x[2]} loss ${x[4]} BLEU ${x[6]}`).join(' | ')}`);
    // An evaluation each time training crosses a full second, and one at the end (4 s of training); a slow first
    // step (2.3 s measured for the larger model) crosses two marks at once and so makes one point, not two.
    expect(mine.length).toBeGreaterThanOrEqual(3);
    for (const x of mine) expect(Number.isFinite(Number(x[6])) && x[6] !== '').toBe(true);
    const seconds = mine.map((x) => Number(x[3]));
    seconds.forEach((s, i) => i > 0 && expect(s).toBeGreaterThan(seconds[i - 1]));
    expect(Number(mine[mine.length - 1][4])).toBeLessThan(Number(mine[0][4]));
    // Evaluation (BLEU included) is timed but not charged to training: the run ends within a step of 4 s.
    const metrics = fs
      .readFileSync(path.join(dir, label, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as MetricRecord);
    const evals = metrics.filter((m) => m.type === 'eval');
    expect(evals.every((e) => e.type === 'eval' && e.bleu !== undefined && e.seconds > 0)).toBe(true);
    const last = metrics.filter((m) => m.type === 'train').pop()!;
    expect(last.type === 'train' && last.trainSeconds).toBeGreaterThanOrEqual(4);
    // The last step is the one that crossed the budget: it began inside it (a slow step on a busy machine may
    // end well past it, so the bound is on where it began).
    expect(last.type === 'train' && last.trainSeconds - last.seconds).toBeLessThan(4);
  }
  // The shared tokenizer is kept with the sweep (a resumed or rerun sweep encodes with the same ids).
  expect(fs.existsSync(path.join(dir, 'tokenizer', 'tokenizer.model'))).toBe(true);

  // Plots: BLEU and loss against seconds and steps, a line per size.
  for (const name of ['bleu-vs-seconds', 'bleu-vs-steps', 'loss-vs-seconds', 'loss-vs-steps']) {
    const svg = fs.readFileSync(path.join(dir, 'plots', `${name}.svg`), 'utf8');
    expect((svg.match(/<path[^>]*aria-roledescription="line mark"/g) ?? []).length).toBe(2);
    expect(svg).toContain('d64-enc2-dec2-h4');
    const png = fs.readFileSync(path.join(dir, 'plots', `${name}.png`));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
  }
  expect(fs.readFileSync(path.join(dir, 'plots', 'bleu-vs-seconds.svg'), 'utf8')).toContain('validation BLEU');

  // The report states each claim from the data, with the numbers.
  const report = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
  console.log(report.slice(report.indexOf('## Claims')));
  expect(report).toContain('| final BLEU | best BLEU |');
  const results = await SweepResults.load(dir);
  expect(results.task).toBe('translate');
  const lines = [];
  for (const metric of ['bleu', 'loss'] as const)
    for (const by of ['seconds', 'steps'] as const) {
      const c = checkFirstToReach(results, { metric, by });
      lines.push(`- ${c.claim}: ${verdict(c.holds)}. ${c.evidence}.`);
    }
  expect(lines[0]).toMatch(/^- the largest model is the first to reach a BLEU every model reaches \(wall-clock\): /);
  expect(lines[1]).toMatch(/a BLEU every model reaches \(steps\)/);
  expect(lines[2]).toMatch(
    /a loss every model reaches \(wall-clock\): \*\*(true|false)\*\*\. loss [\d.]+ reached by: d\d+-enc\d-dec\d-h\d [\d.]+ s \(step \d+\)/,
  );
  expect(lines[3]).toMatch(
    /a loss every model reaches \(steps\): \*\*(true|false)\*\*\. loss [\d.]+ reached by: d\d+-enc\d-dec\d-h\d step \d+/,
  );
  for (const l of lines) expect(report).toContain(l);

  // Rerunning redoes nothing.
  const again = spawnSync(process.execPath, [cli, 'experiment', 'run', file, '--dir', dir], { encoding: 'utf8' });
  expect(again.stdout).toMatch(/\[1\/2\] d32-enc1-dec1-h2: finished earlier, skipped/);
  expect(again.stdout).toMatch(/\[2\/2\] d64-enc2-dec2-h4: finished earlier, skipped/);
});

test('the BLEU claim is computed from the curves: first to reach a BLEU every model reaches, by seconds or steps', () => {
  const run = (label: string, parameters: number, curve: [number, number, number][]) => ({
    label,
    model: { dModel: 1, heads: 1 },
    parameters,
    steps: curve[curve.length - 1][1],
    trainSeconds: curve[curve.length - 1][0],
    trainTokens: 0,
    stoppedBy: 'seconds' as const,
    curve: curve.map(([s, step, bleu]) => ({ trainSeconds: s, step, loss: 10 - bleu, perplexity: 1, bleu })),
    finalLoss: 10 - curve[curve.length - 1][2],
  });
  // The large model reaches BLEU 4 (the small one's best) at 20 s / step 40; the small one at 30 s / step 150.
  const small = run('small', 1e5, [
    [10, 50, 1],
    [30, 150, 4],
  ]);
  const large = run('large', 1e6, [
    [10, 20, 2],
    [20, 40, 5],
    [30, 60, 9],
  ]);
  const r = new SweepResults('x', [small, large], 'translate');
  const bySeconds = checkFirstToReach(r, { metric: 'bleu', by: 'seconds' });
  expect(bySeconds.holds).toBe(true);
  expect(bySeconds.evidence).toBe(
    'BLEU 4.00 reached by: large 20.0 s (step 40), small 30.0 s (step 150); largest model: large (1.00 M parameters)',
  );
  expect(checkFirstToReach(r, { metric: 'bleu', by: 'steps' }).holds).toBe(true);
  // A small model that is faster in steps but not in seconds: the two claims come apart.
  const quickSmall = run('small', 1e5, [
    [15, 30, 4],
    [30, 60, 4],
  ]);
  const r2 = new SweepResults('x', [quickSmall, large], 'translate');
  expect(checkFirstToReach(r2, { metric: 'bleu', by: 'seconds' }).holds).toBe(false);
  expect(checkFirstToReach(r2, { metric: 'bleu', by: 'steps' }).holds).toBe(false);
  const r3 = new SweepResults('x', [run('small', 1e5, [[10, 30, 0]]), large], 'translate');
  const zero = checkFirstToReach(r3, { metric: 'bleu' });
  expect(zero.holds).toBeUndefined();
  expect(zero.evidence).toMatch(/not decidable: small never scored above 0 BLEU/);
});

test('bad translate sweep specs name the field', () => {
  const base = { ...tiny, models: [...tiny.models] } as unknown as SweepSpec;
  const bad = (patch: Record<string, unknown>) => () => new Sweep({ ...base, ...patch });
  expect(bad({ models: [{ dModel: 32, layers: 2, heads: 2 }] })).toThrow(
    /models\.0\.layers: does not apply when task is 'translate'.*models\.0\.encoderLayers: is required when task is 'translate'.*models\.0\.decoderLayers: is required/,
  );
  expect(bad({ models: [{ dModel: 32, encoderLayers: 1, decoderLayers: 1, heads: 2, batchSize: 8 }] })).toThrow(
    /models\.0\.batchSize: does not apply when task is 'translate' \(batches are made by batchTokens\)/,
  );
  expect(bad({ corpus: 'english-prose' })).toThrow(/corpus: 'english-prose' is not a built-in parallel corpus \(bible-en-es, /);
  expect(bad({ corpus: { name: 'mine', train: { files: ['a.tsv'] } } })).toThrow(/sweep: corpus/);
  expect(bad({ labelSmoothing: 1 })).toThrow(/labelSmoothing: /);
  expect(bad({ schedule: 'rsqrt' })).toThrow(/schedule: .*"inverse-sqrt"/);
  expect(bad({ bleu: { samples: 0 } })).toThrow(/bleu\.samples: /);
  expect(bad({ data: { vocabSize: 600, maxPair: 10 } })).toThrow(/data: Unrecognized key.*maxPair/);
  // mlm sweeps refuse the translate fields, and translate models' fields.
  const mlm = { name: 'x', corpus: 'english-prose', budget: { steps: 1 }, evalEvery: { steps: 1 } };
  expect(() => new Sweep({ ...mlm, models: [{ dModel: 32, encoderLayers: 1, decoderLayers: 1, heads: 2 }] })).toThrow(
    /models\.0\.layers: is required; models\.0\.encoderLayers: only applies when task is 'translate'/,
  );
  expect(() => new Sweep({ ...mlm, models: [{ dModel: 32, layers: 1, heads: 2 }], batchTokens: 512, bleu: {} })).toThrow(
    /bleu: only applies when task is 'translate'; batchTokens: only applies when task is 'translate'/,
  );
  // Defaults: inverse-sqrt, BLEU on 100 pairs greedily, an 8000-piece shared vocabulary.
  const s = new Sweep({
    name: 'd',
    task: 'translate',
    corpus: 'bible-en-es',
    models: tiny.models.slice(),
    budget: { seconds: 1 },
    evalEvery: { seconds: 1 },
  });
  expect([s.spec.schedule, s.spec.bleu, s.spec.data]).toEqual(['inverse-sqrt', { samples: 100, beam: 1 }, { vocabSize: 8000 }]);
  expect(new Sweep({ ...mlm, models: [{ dModel: 32, layers: 1, heads: 2 }] }).spec.schedule).toBe('linear');
});

// The shipped files, scaled down: every model, with the file's own data and evaluation settings, trains one step
// and is evaluated once. Its measured evaluation time (untrained, a model decodes to the length limit: an upper
// estimate; measured 0.6-2.3 s per model on two idle cores, up to ~10x that while another job shared them) and the
// setup time (the tokenizer on the whole corpus) bound the full run; the 10% over each budget covers the step-time
// measurement and checkpoints.
test.each(['translation-depth.json', 'translation-width.json'])(
  'experiments/paper-small/%s runs scaled down and fits 20 minutes',
  async (name) => {
    const shipped = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', 'experiments', 'paper-small', name), 'utf8'));
    const full = new Sweep(shipped).spec;
    const scaled = { ...shipped, budget: { steps: 1 }, evalEvery: { steps: 1 } };
    const dir = path.join(root, name);
    const started = Date.now();
    const results = await new Sweep(scaled).run({ dir });
    const wall = (Date.now() - started) / 1000;
    expect(results.runs).toHaveLength(full.models.length);
    results.runs.forEach((r, i) => i > 0 && expect(r.parameters).toBeGreaterThan(results.runs[i - 1].parameters));
    const budget = (full.budget as { seconds: number }).seconds;
    const evalsPerModel = Math.floor(budget / (full.evalEvery as { seconds: number }).seconds) + 1;
    let setup = wall;
    let estimate = 0;
    const perEval: string[] = [];
    for (const r of results.runs) {
      const evals = fs
        .readFileSync(path.join(dir, r.label, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as MetricRecord)
        .filter((m): m is EvalRecord => m.type === 'eval');
      expect(evals.length).toBeGreaterThanOrEqual(1);
      expect(evals.every((e) => e.bleu !== undefined)).toBe(true);
      const seconds = evals.reduce((n, e) => n + e.seconds, 0);
      setup -= r.trainSeconds + seconds;
      estimate += budget * 1.1 + evalsPerModel * (seconds / evals.length);
      perEval.push(`${r.label} ${(r.parameters / 1e6).toFixed(2)} M ${(seconds / evals.length).toFixed(1)} s`);
    }
    estimate += setup;
    console.log(
      `${name}: per evaluation (loss on ${full.evalSamples} + BLEU on ${full.bleu!.samples} pairs): ${perEval.join(', ')}; ` +
        `setup ${setup.toFixed(1)} s: full run <= ~${(estimate / 60).toFixed(1)} min`,
    );
    expect(estimate).toBeLessThanOrEqual(20 * 60);
  },
);
