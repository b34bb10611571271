// Size sweeps under a budget: curves, the first model to reach a loss, results.csv, and resuming.
import * as fs from 'fs';
import * as path from 'path';
import { AbortError, Corpus } from '../lib';
import { runCompression } from '../lib/experiment/compression';
import { recommend } from '../lib/experiment/planner';
import { checkFirstToReach, writeSweepReport } from '../lib/experiment/report';
import { Sweep, SweepProgress, SweepResults, sweepModelConfig } from '../lib/experiment/sweep';
import { spawnSync } from 'child_process';
import { legendLabels, speechFiles, tempDir } from './helpers';

jest.setTimeout(300_000);

let root: string;
let corpusDir: string;

beforeAll(async () => {
  root = tempDir('sweep');
  const files = speechFiles(root, 60);
  corpusDir = path.join(root, 'corpus');
  await Corpus.prepare({ source: { name: 'speeches', train: { files } }, dir: corpusDir, tokenizerOptions: { vocabSize: 500 } });
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const models = [
  { dModel: 32, layers: 1, heads: 2 },
  { dModel: 64, layers: 2, heads: 4 },
];

test('a seconds-budget sweep gives each model its budget, curves on a wall-clock cadence and a CSV', async () => {
  const dir = path.join(root, 'seconds');
  const sweep = new Sweep({
    name: 'depth',
    corpus: corpusDir,
    models,
    maxLen: 32,
    batchSize: 8,
    budget: { seconds: 3 },
    evalEvery: { seconds: 1 },
    evalSamples: 32,
  });
  const results = await sweep.run({ dir });
  expect(results.runs.map((r) => r.label)).toEqual(['d32-l1-h2', 'd64-l2-h4']);
  for (const r of results.runs) {
    // The clock ends the run unless the schedule (laid over the measured pace + 10%) ran out first.
    if (r.stoppedBy === 'seconds') expect(r.trainSeconds).toBeGreaterThanOrEqual(3);
    else expect(r.stoppedBy).toBe('steps');
    expect(r.trainSeconds).toBeLessThan(3 + 0.5); // never beyond the budget by more than a step (milliseconds here)
    // An evaluation per full second of training plus one at the end. A run the schedule ended early (the pace
    // measured before it, on a noisy machine, was slower than the real one) has fewer seconds and so fewer
    // points: under a second of training, only the final one.
    expect(r.curve.length).toBeGreaterThanOrEqual(Math.max(1, Math.floor(r.trainSeconds)));
    if (r.stoppedBy === 'seconds') expect(r.curve.length).toBeGreaterThanOrEqual(3);
    // Every point is below the loss of a uniform guess over the vocabulary, and the curve falls.
    for (const p of r.curve) expect(p.loss).toBeLessThan(Math.log(500));
    if (r.curve.length > 1) expect(r.curve[r.curve.length - 1].loss).toBeLessThan(r.curve[0].loss);
    r.curve.forEach((p, i) => i > 0 && expect(p.trainSeconds).toBeGreaterThan(r.curve[i - 1].trainSeconds));
  }
  const csv = fs.readFileSync(path.join(dir, 'results.csv'), 'utf8').trim().split('\n');
  expect(csv[0]).toBe('run,parameters,step,train_seconds,loss,perplexity');
  expect(csv.length - 1).toBe(results.runs.reduce((n, r) => n + r.curve.length, 0));
  const worst = Math.max(...results.runs.map((r) => r.curve[0].loss));
  const reach = results.firstToReach(worst);
  expect(reach.reached).toHaveLength(2);
  expect(reach.first!.seconds).toBe(Math.min(...reach.reached.map((x) => x.seconds)));
  expect(results.firstToReach(0).first).toBeUndefined();
  const loaded = await SweepResults.load(dir);
  expect(loaded.runs).toEqual(results.runs);

  // The report: plots as SVG and PNG with one series per run, a table, and the paper's claim checked.
  const report = fs.readFileSync(await writeSweepReport(dir), 'utf8');
  for (const x of ['seconds', 'steps']) {
    const svg = fs.readFileSync(path.join(dir, 'plots', `loss-vs-${x}.svg`), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    for (const r of results.runs) expect(svg).toContain(r.label);
    expect((svg.match(/<path[^>]*aria-roledescription="line mark"/g) ?? []).length).toBe(2);
    const png = fs.readFileSync(path.join(dir, 'plots', `loss-vs-${x}.png`));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(16)).toBe(960); // IHDR width
  }
  for (const r of results.runs) expect(report).toMatch(new RegExp(`\\| ${r.label} \\| ${r.parameters} \\| ${r.steps} \\|`));
  const check = checkFirstToReach(results);
  expect(report).toContain(`${check.claim}: ${check.holds ? '**true**' : '**false**'}`);
  // The use of context, per run, from the last evaluation's <mask>-position loss against the unigram baseline.
  expect(report).toContain('## Use of context');
  for (const r of results.runs) {
    const last = r.curve[r.curve.length - 1];
    expect(last.maskLoss).toBeGreaterThan(0);
    expect(last.maskUnigramLoss).toBeGreaterThan(0);
    const verdict = last.maskLoss! < last.maskUnigramLoss! ? 'uses context' : '**flagged: learns nothing from context**';
    expect(report).toContain(`- ${r.label}: ${last.maskLoss!.toFixed(3)} vs ${last.maskUnigramLoss!.toFixed(3)}: ${verdict}`);
  }
  expect(check.evidence).toMatch(/reached by: d\d+-l\d-h\d [\d.]+ s/);
});

test('the compression experiment fine-tunes each size, compresses it, plots accuracy vs bytes and feeds the planner', async () => {
  const spec = {
    kind: 'compression' as const,
    name: 'comp',
    sweep: path.join(root, 'seconds'),
    corpus: corpusDir,
    task: 'sentiment',
    maxLen: 32,
    finetune: { steps: 20, batchSize: 16 },
    sparsities: [0.5, 0.9],
    bits: [8, 2],
    structured: { heads: [0.5] },
  };
  const dir = path.join(root, 'compression');
  const r = await runCompression(spec, { dir });
  expect(r.rows.map((x) => `${x.model}:${x.method}:${x.setting}`)).toEqual(
    ['d32-l1-h2', 'd64-l2-h4'].flatMap((m) => [
      `${m}:none:0`,
      `${m}:prune:0.5`,
      `${m}:prune:0.9`,
      `${m}:quantize:8`,
      `${m}:quantize:2`,
      `${m}:prune-heads:0.5`,
    ]),
  );
  for (let i = 1; i < r.pareto.length; i++) {
    expect(r.pareto[i].bytes).toBeGreaterThan(r.pareto[i - 1].bytes);
    expect(r.pareto[i].accuracy).toBeGreaterThan(r.pareto[i - 1].accuracy);
  }
  for (const m of ['prune', 'quantize', 'structured']) {
    const svg = fs.readFileSync(path.join(dir, 'plots', `accuracy-vs-bytes-${m}.svg`), 'utf8');
    const labels = legendLabels(svg);
    expect(new Set(labels).size).toBe(labels.length);
    expect(labels.filter((l) => l.includes('…'))).toEqual([]);
    expect(labels).toEqual(r.models.map((x) => `${x.label} (${(x.parameters / 1e6).toFixed(2)} M parameters)`));
    expect((svg.match(/aria-roledescription="line mark"/g) ?? []).length).toBe(3); // two sizes + the Pareto front
  }
  const report = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
  expect(report).toMatch(/a compressed larger model beats .*: (\*\*true\*\*|\*\*false\*\*|not decidable)/);
  // What was compressed is stated, and each row has the layers' bytes beside the file's, in the table and the CSV.
  expect(report).toContain('Compressed: the whole model');
  expect(report).toMatch(/- d64-l2-h4 over d32-l1-h2: wins \d+ of \d+ by file bytes, \d+ of \d+ by layer bytes/);
  const csv = fs.readFileSync(path.join(dir, 'results.csv'), 'utf8').trim().split('\n');
  expect(csv[0]).toBe('model,parameters,method,setting,bytes,layer_bytes,accuracy,accuracy_drop,mean_weight_error');
  for (const x of r.rows) {
    expect(x.layerBytes).toBeGreaterThan(0);
    expect(x.layerBytes).toBeLessThan(x.bytes);
    expect(report).toContain(`| ${x.bytes} | ${x.layerBytes} |`);
  }
  const logs: string[] = [];
  await runCompression(spec, { dir, onLog: (l) => logs.push(l) });
  expect(logs).toEqual(['d32-l1-h2: fine-tuned earlier, loaded', 'd64-l2-h4: fine-tuned earlier, loaded']);
  const best = [...r.rows].sort((a, b) => b.accuracy - a.accuracy || a.bytes - b.bytes)[0];
  const pick = recommend({ models: r.models, compression: r.rows }, { memoryBytes: 1e12, trainSeconds: 1e6 });
  expect([pick.model, pick.method, pick.setting]).toEqual([best.model, best.method, best.setting]);
  const cli = path.resolve(__dirname, '..', 'dist', 'lib', 'cli.js');
  const out = spawnSync(process.execPath, [cli, 'recommend', '--evidence', dir, '--memory', '1e12', '--seconds', '1e6'], {
    encoding: 'utf8',
  });
  expect(out.stdout).toContain(`recommend: ${best.model}`);
  const none = spawnSync(process.execPath, [cli, 'recommend', '--evidence', dir, '--memory', '1000', '--seconds', '1e6'], {
    encoding: 'utf8',
  });
  expect(none.status).toBe(1);
  expect(none.stderr).toMatch(/nothing measured fits in 1000 bytes; the smallest is/);
});

test('running a finished sweep again redoes nothing; an interrupted one resumes where it stopped', async () => {
  const dir = path.join(root, 'resume');
  const spec = { name: 'resume', corpus: corpusDir, models, maxLen: 32, batchSize: 8, budget: { steps: 40 }, evalEvery: { steps: 10 } };
  const controller = new AbortController();
  const phases: string[] = [];
  const first = new Sweep(spec).run({
    dir,
    signal: controller.signal,
    onProgress: (p: SweepProgress) => {
      phases.push(`${p.run}:${p.phase}`);
      if (p.index === 1 && p.phase === 'train' && (p.progress?.step ?? 0) >= 10) controller.abort();
    },
  });
  await expect(first).rejects.toBeInstanceOf(AbortError);
  expect(fs.existsSync(path.join(dir, 'd32-l1-h2', 'result.json'))).toBe(true);
  expect(fs.existsSync(path.join(dir, 'd64-l2-h4', 'result.json'))).toBe(false);
  const finished = fs.statSync(path.join(dir, 'd32-l1-h2', 'result.json')).mtimeMs;
  const again: SweepProgress[] = [];
  const results = await new Sweep(spec).run({ dir, onProgress: (p) => again.push(p) });
  expect(again.filter((p) => p.run === 'd32-l1-h2').map((p) => p.phase)).toEqual(['skipped']);
  const resumedAt = again.find((p) => p.run === 'd64-l2-h4' && p.phase === 'train')!.progress!.step;
  expect(resumedAt).toBeGreaterThan(10); // continued from its checkpoint, not from step 0
  expect(fs.statSync(path.join(dir, 'd32-l1-h2', 'result.json')).mtimeMs).toBe(finished);
  for (const r of results.runs) {
    expect(r.steps).toBe(40);
    expect(r.stoppedBy).toBe('steps');
    expect(r.curve.map((p) => p.step)).toEqual([10, 20, 30, 40]);
  }
  const third: SweepProgress[] = [];
  await new Sweep(spec).run({ dir, onProgress: (p) => third.push(p) });
  expect(third.map((p) => p.phase)).toEqual(['skipped', 'skipped']);
  await expect(new Sweep({ ...spec, budget: { steps: 50 } }).run({ dir })).rejects.toThrow(/holds another sweep/);
});

test('trainlarge experiment run and report, from a JSON file, as a user runs them', () => {
  const file = path.join(root, 'tiny.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ name: 'tiny', corpus: corpusDir, models, maxLen: 32, batchSize: 8, budget: { steps: 12 }, evalEvery: { steps: 4 } }),
  );
  const dir = path.join(root, 'cli-sweep');
  const cli = path.resolve(__dirname, '..', 'dist', 'lib', 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'experiment', 'run', file, '--dir', dir], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/\[2\/2\] d64-l2-h4: done/);
  expect(fs.existsSync(path.join(dir, 'report.md'))).toBe(true);
  const again = spawnSync(process.execPath, [cli, 'experiment', 'run', file, '--dir', dir], { encoding: 'utf8' });
  expect(again.stdout).toMatch(/\[1\/2\] d32-l1-h2: finished earlier, skipped/);
  const bad = spawnSync(process.execPath, [cli, 'experiment', 'report', path.join(root, 'nowhere')], { encoding: 'utf8' });
  expect(bad.status).toBe(1);
  expect(bad.stderr).toMatch(/nowhere.*sweep\.json/);
});

test('bad sweep specs name the field', () => {
  expect(() => new Sweep({ name: 'x', corpus: corpusDir, models: [], budget: { seconds: 1 }, evalEvery: { steps: 1 } })).toThrow(
    /sweep: models/,
  );
  expect(() => new Sweep({ name: 'x', corpus: corpusDir, models, budget: { minutes: 1 } as never, evalEvery: { steps: 1 } })).toThrow(
    /sweep: budget/,
  );
  expect(
    () => new Sweep({ name: 'x', corpus: corpusDir, models: [models[0], models[0]], budget: { steps: 1 }, evalEvery: { steps: 1 } }),
  ).toThrow(/two models have the run name 'd32-l1-h2'/);
  expect(
    () => new Sweep({ name: 'x', corpus: corpusDir, models, budget: { steps: 1 }, evalEvery: { steps: 1 }, lrSearch: { rates: [1e-3] } }),
  ).toThrow(/sweep: lrSearch\.rates/);
});

test('lrSearch gives each size the rate its short trial runs found best, reports the search and keeps it on resume', async () => {
  const dir = path.join(root, 'lr');
  const spec = {
    name: 'lr',
    corpus: corpusDir,
    // The second model keeps its own rate.
    models: [models[0], { ...models[1], lr: 2e-3 }],
    maxLen: 32,
    batchSize: 8,
    budget: { steps: 40 },
    evalEvery: { steps: 20 },
    evalSamples: 32,
    lrSearch: { rates: [1e-5, 3e-3, 40], fraction: 0.25 },
  };
  const results = await new Sweep(spec).run({ dir });
  const [searched, own] = results.runs;
  const s = searched.lrSearch!;
  expect(s.trials.map((t) => t.lr)).toEqual([1e-5, 3e-3, 40]);
  for (const t of s.trials) expect(t.steps).toBe(10); // 25% of the 40 planned steps
  // A rate of 40 blows the model up; of the others, the lower loss wins (1e-5 barely moves in 10 steps).
  expect(s.trials[2].diverged).toBe(true);
  const usable = s.trials.filter((t) => !t.diverged);
  expect(s.lr).toBe(usable.reduce((a, b) => (b.loss < a.loss ? b : a)).lr);
  expect(s.lr).toBe(3e-3);
  expect(searched.lr).toBe(s.lr);
  expect(s.searchSeconds).toBeCloseTo(
    s.trials.reduce((n, t) => n + t.seconds, 0),
    6,
  );
  expect(own.lrSearch).toBeUndefined();
  expect(own.lr).toBe(2e-3);
  const plan = JSON.parse(fs.readFileSync(path.join(dir, searched.label, 'plan.json'), 'utf8'));
  expect(plan.lrSearch).toEqual(s);

  const report = fs.readFileSync(await writeSweepReport(dir), 'utf8');
  expect(report).toContain('## Learning rates');
  expect(report).toContain(`The search took ${s.searchSeconds.toFixed(1)} s in all`);
  expect(report).toContain(`- ${searched.label}: lr 0.003 chosen; 0.00001 -> loss ${s.trials[0].loss.toFixed(3)}, 0.003 -> loss`);
  expect(report).toContain(`- ${own.label}: lr 0.002 (its own, not searched)`);

  // An interrupted run resumes from its plan: the search is not run again.
  fs.rmSync(path.join(dir, searched.label, 'result.json'));
  const phases: string[] = [];
  const again = await new Sweep(spec).run({ dir, onProgress: (p) => p.run === searched.label && phases.push(p.phase) });
  expect(phases).not.toContain('lr-search');
  expect(again.runs[0].lrSearch).toEqual(s);
});

test("a sweep's norm and dropout apply to the models that do not set their own", () => {
  const s = new Sweep({
    name: 'n',
    corpus: 'english-prose',
    models: [
      { dModel: 32, layers: 1, heads: 2 },
      { dModel: 32, layers: 2, heads: 2, norm: 'post', dropout: 0.2 },
    ],
    norm: 'pre',
    dropout: 0,
    budget: { steps: 1 },
    evalEvery: { steps: 1 },
  }).spec;
  expect(sweepModelConfig(s, s.models[0], 100)).toMatchObject({ norm: 'pre', dropout: 0, attentionDropout: 0 });
  const own = sweepModelConfig(s, s.models[1], 100);
  expect(own).toMatchObject({ norm: 'post', dropout: 0.2 });
  expect(own.attentionDropout).toBeUndefined();
  expect(() => new Sweep({ ...s, norm: 'mid' } as never)).toThrow(/norm/);
});

test('a compression experiment with recover adds gradual pruning and QAT, drawn and compared with one-shot', async () => {
  const dir = path.join(root, 'compression-recover');
  const r = await runCompression(
    {
      kind: 'compression',
      name: 'comp-recover',
      sweep: path.join(root, 'seconds'),
      corpus: corpusDir,
      task: 'sentiment',
      maxLen: 32,
      finetune: { steps: 20, batchSize: 16 },
      recover: { steps: 8 },
      sparsities: [0.5],
      bits: [4],
    },
    { dir },
  );
  expect(r.rows.map((x) => `${x.model}:${x.method}:${x.setting}`)).toEqual(
    ['d32-l1-h2', 'd64-l2-h4'].flatMap((m) => [`${m}:none:0`, `${m}:prune:0.5`, `${m}:quantize:4`, `${m}:gradual:0.5`, `${m}:qat:4`]),
  );
  for (const m of ['prune', 'quantize']) {
    const svg = fs.readFileSync(path.join(dir, 'plots', `accuracy-vs-bytes-${m}.svg`), 'utf8');
    expect((svg.match(/aria-roledescription="line mark"/g) ?? []).length).toBe(5); // two sizes x (one-shot, during) + the front
    // The legends name every model and method whole and once: a reader can tell each line apart.
    const labels = legendLabels(svg);
    expect(new Set(labels).size).toBe(labels.length);
    expect(labels.filter((l) => l.includes('…'))).toEqual([]);
    expect(labels).toEqual(
      expect.arrayContaining([
        ...r.models.map((x) => `${x.label} (${(x.parameters / 1e6).toFixed(2)} M parameters)`),
        'one-shot',
        m === 'prune' ? 'gradual pruning (during fine-tuning)' : 'QAT (during fine-tuning)',
      ]),
    );
  }
  const report = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
  expect(report).toContain('## One-shot vs during fine-tuning');
  for (const x of r.rows.filter((row) => row.method === 'gradual'))
    expect(report).toMatch(new RegExp(`\\| ${x.model} \\| 0.5 \\| prune \\| [\\d.]+ \\| gradual \\| ${x.accuracy.toFixed(3)} \\|`));
});
