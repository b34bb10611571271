// The compression experiment on a translate sweep (runCompression → runTranslationCompression): a real,
// tiny translation sweep on bible-en-es pairs, then every trained translator pruned and quantized over a
// grid and scored by BLEU and loss on the test split. Checks the rows against an independent replay of one
// variant (prune/quantize + mt.evaluate), the bytes against the bits, and the report's table, plots and claims.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { compressedSize, Dataset, ParallelTask, prune, quantize, Tokenizer, Transformer } from '../lib';
import { runCompression } from '../lib/experiment/compression';
import { CompressionSpec } from '../lib/experiment/compression-spec';
import { checkTranslatorsLargeBeatsSmall, TranslationCompressionResults } from '../lib/experiment/compression-translate';
import { Sweep } from '../lib/experiment/sweep';
import { tempDir, TINY_MT_SWEEP } from './helpers';

jest.setTimeout(180_000);

let root: string;
let sweepDir: string;
let data: ParallelTask;

// Bible pairs of at most 100 characters, 40 tokens a side, through a real sweep so the study reads a real sweep
// directory. Two sizes whose file sizes overlap once compressed (the smaller's embeddings stay float).
const DATA = { vocabSize: 600, maxPairs: 2000, maxChars: 100 };
const MAX_LEN = 40;
const LABELS = ['d64-enc1-dec1-h4', 'd64-enc2-dec2-h4'];
const SCORING = { samples: 8, beam: 2, lossSamples: 100 };

beforeAll(async () => {
  const started = Date.now();
  root = tempDir('mt-compression');
  sweepDir = path.join(root, 'sweep');
  await new Sweep({
    ...TINY_MT_SWEEP,
    data: DATA,
    models: [
      { dModel: 64, encoderLayers: 1, decoderLayers: 1, heads: 4 },
      { dModel: 64, encoderLayers: 2, decoderLayers: 2, heads: 4 },
    ],
    maxLen: MAX_LEN,
    budget: { steps: 25 },
    evalEvery: { steps: 25 },
    evalSamples: 50,
    bleu: { samples: 4, beam: 1 },
  }).run({ dir: sweepDir });
  // The test split as the sweep's runs encode it: the sweep's saved tokenizer, the same pairs.
  data = await Dataset.parallel({
    source: 'bible-en-es',
    tokenizer: await Tokenizer.fromDir(path.join(sweepDir, 'tokenizer')),
    maxLen: MAX_LEN,
    maxPairs: DATA.maxPairs,
    maxChars: DATA.maxChars,
  });
  console.log(`sweep of two sizes, 25 steps each, and the test split: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

afterAll(() => {
  data?.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

const spec = (over: Partial<CompressionSpec> = {}): CompressionSpec => ({
  kind: 'compression',
  name: 'mt-comp',
  sweep: sweepDir,
  sparsities: [0.5, 0.9],
  bits: [8, 4, 2],
  structured: { heads: [0.5] },
  scoring: SCORING,
  minBleu: 0,
  ...over,
});

test('a translate sweep is compressed over the grid: packed bytes, BLEU and loss per variant, a report with the claim', async () => {
  const dir = path.join(root, 'study');
  const logs: string[] = [];
  const started = Date.now();
  const r = (await runCompression(spec(), { dir, onLog: (l) => logs.push(l) })) as TranslationCompressionResults;
  console.log(`study: ${((Date.now() - started) / 1000).toFixed(1)} s; ${logs.join(' | ')}`);
  expect(r.task).toBe('translate');
  expect(r.rows.map((x) => `${x.model}:${x.method}:${x.setting}`)).toEqual(
    LABELS.flatMap((m) => [
      `${m}:none:0`,
      `${m}:prune:0.5`,
      `${m}:prune:0.9`,
      `${m}:quantize:8`,
      `${m}:quantize:4`,
      `${m}:quantize:2`,
      `${m}:prune-heads:0.5`,
    ]),
  );
  for (const m of LABELS) {
    const at = (method: string, setting: number) => r.rows.find((x) => x.model === m && x.method === method && x.setting === setting)!;
    // Fewer bits, fewer bytes; more sparsity, fewer bytes; every variant smaller than the float model.
    expect(at('quantize', 8).bytes).toBeLessThan(at('none', 0).bytes);
    expect(at('quantize', 4).bytes).toBeLessThan(at('quantize', 8).bytes);
    expect(at('quantize', 2).bytes).toBeLessThan(at('quantize', 4).bytes);
    expect(at('prune', 0.5).bytes).toBeLessThan(at('none', 0).bytes);
    expect(at('prune', 0.9).bytes).toBeLessThan(at('prune', 0.5).bytes);
    // Half the heads of every attention module removed: a smaller dense file, and the encoder's and the
    // decoder's attention matrices among those it shrank.
    const heads = at('prune-heads', 0.5);
    expect(heads.bytes).toBeLessThan(at('none', 0).bytes);
    expect(Object.keys(heads.weightErrors)).toEqual(
      expect.arrayContaining([
        'layers.0.attn.qkv.weight',
        'decoder.layers.0.self_attn.qkv.weight',
        'decoder.layers.0.cross_attn.kv.weight',
      ]),
    );
    expect(Object.keys(heads.weightErrors)).not.toContain('decoder.layers.0.ffn.fc1.weight');
    for (const x of r.rows.filter((y) => y.model === m)) {
      expect(x.bleu).toBeGreaterThanOrEqual(0);
      expect(x.bleu).toBeLessThanOrEqual(100);
      expect(Number.isFinite(x.loss) && x.loss > 0).toBe(true);
      expect(x.bleuDrop).toBeCloseTo(at('none', 0).bleu - x.bleu, 10);
      expect(x.lossRise).toBeCloseTo(x.loss - at('none', 0).loss, 10);
      if (x.method !== 'none') expect(x.meanWeightError).toBeGreaterThan(0);
    }
    // Fewer bits, or more sparsity, move the weights further.
    expect(at('quantize', 4).meanWeightError).toBeGreaterThan(at('quantize', 8).meanWeightError);
    expect(at('quantize', 2).meanWeightError).toBeGreaterThan(at('quantize', 4).meanWeightError);
    expect(at('prune', 0.9).meanWeightError).toBeGreaterThan(at('prune', 0.5).meanWeightError);
    // The layers' bytes (encoder and decoder) sit inside the file's and shrink with the bits.
    expect(at('none', 0).layerBytes).toBeLessThan(at('none', 0).bytes);
    expect(at('quantize', 4).layerBytes).toBeLessThan(at('quantize', 8).layerBytes);
    console.log(
      `${m}: ${r.rows
        .filter((x) => x.model === m)
        .map((x) => `${x.method} ${x.setting}: ${x.bytes} B BLEU ${x.bleu.toFixed(2)} loss ${x.loss.toFixed(3)}`)
        .join('; ')}`,
    );
  }

  // An independent replay of two variants: the same compression of the sweep's saved model, scored by
  // mt.evaluate with the study's settings, gives the row's bytes, BLEU and loss.
  const mt = await Transformer.load(path.join(sweepDir, LABELS[1]));
  for (const [method, setting, make] of [
    ['quantize', 4, () => quantize(mt, { bits: 4 })],
    ['prune', 0.5, () => prune(mt, { sparsity: 0.5 })],
  ] as const) {
    const c = await make();
    const row = r.rows.find((x) => x.model === LABELS[1] && x.method === method && x.setting === setting)!;
    const t = await c.evaluate(data.test!, { metric: 'bleu', beam: SCORING.beam, maxSamples: SCORING.samples });
    const { loss } = await c.evaluate(data.test!, { metric: 'loss', maxSamples: SCORING.lossSamples });
    expect(row.bleu).toBe(t.bleu);
    expect(row.chrf).toBe(t.chrf);
    expect(row.loss).toBeCloseTo(loss, 6);
    expect(row.bytes).toBe((await compressedSize(c)).bytes);
    expect(r.bleuSignature).toBe(t.bleuSignature);
    c.dispose();
  }
  mt.dispose();

  // results.csv, plots, report: the table rows and the claim as computed from the rows.
  const csv = fs.readFileSync(path.join(dir, 'results.csv'), 'utf8').trim().split('\n');
  expect(csv[0]).toBe('model,parameters,method,setting,bytes,layer_bytes,bleu,chrf,bleu_drop,loss,loss_rise,mean_weight_error');
  expect(csv.length).toBe(r.rows.length + 1);
  for (const method of ['prune', 'quantize', 'structured']) {
    const svg = fs.readFileSync(path.join(dir, 'plots', `bleu-vs-bytes-${method}.svg`), 'utf8');
    expect((svg.match(/aria-roledescription="line mark"/g) ?? []).length).toBe(3); // two sizes + the Pareto front
    expect(fs.statSync(path.join(dir, 'plots', `bleu-vs-bytes-${method}.png`)).size).toBeGreaterThan(1000);
  }
  const report = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
  expect(report).toContain('Compressed: the whole model');
  for (const x of r.rows)
    expect(report).toContain(
      `| ${x.model} | ${x.parameters} | ${x.method} | ${x.method === 'none' ? 'fp32' : x.setting} | ${x.bytes} | ${x.layerBytes} | ${x.bleu.toFixed(2)} | ${x.chrf.toFixed(2)} | ${x.loss.toFixed(3)} |`,
    );
  // The claim, recomputed here from the rows: each compressed small variant against the best large one no bigger.
  const [small, large] = LABELS;
  let wins = 0,
    comparisons = 0;
  for (const x of r.rows.filter((y) => y.model === small && y.method !== 'none')) {
    const rivals = r.rows.filter((y) => y.model === large && y.bytes <= x.bytes);
    if (!rivals.length) continue;
    comparisons++;
    if (Math.max(...rivals.map((y) => y.bleu)) > x.bleu) wins++;
  }
  const holds = comparisons ? wins * 2 > comparisons : undefined;
  const verdict = holds === undefined ? 'not decidable' : holds ? '**true**' : '**false**';
  expect(checkTranslatorsLargeBeatsSmall(r).bleu.holds).toBe(holds);
  expect(report).toContain(
    `- a compressed larger model beats a compressed smaller one of the same or larger file size (BLEU): ${verdict}. ${large} wins ${wins} of ${comparisons}`,
  );
  expect(report).toMatch(/- the same by test loss: (\*\*true\*\*|\*\*false\*\*|not decidable)\./);

  // A rerun loads each size's rows instead of compressing again.
  const again: string[] = [];
  const r2 = (await runCompression(spec(), { dir, onLog: (l) => again.push(l) })) as TranslationCompressionResults;
  expect(again).toEqual(LABELS.map((l) => `${l}: compressed earlier, loaded`));
  expect(r2.rows).toEqual(r.rows);

  // The planner reads classifier evidence (accuracy per byte): translation evidence is refused, naming the flag.
  const cli = path.resolve(__dirname, '..', 'dist', 'lib', 'cli.js');
  const rec = spawnSync(process.execPath, [cli, 'recommend', '--evidence', dir, '--memory', '1e9', '--seconds', '1e6'], {
    encoding: 'utf8',
  });
  expect(rec.status).toBe(2);
  expect(rec.stderr).toMatch(/recommend: --evidence: .* holds a translation compression experiment; recommend reads a classifier one/);

  // minBleu above every model's BLEU: the BLEU claim has nothing to decide on, and says which sizes were left out.
  const strict = checkTranslatorsLargeBeatsSmall({ ...r, minBleu: 100 });
  expect(strict.bleu.holds).toBeUndefined();
  expect(strict.bleu.evidence).toMatch(/left out below BLEU 100: d64-enc1-dec1-h4 \([\d.]+\), d64-enc2-dec2-h4/);
});

test('fields of the other kind of sweep are refused, naming the field', async () => {
  const dir = path.join(root, 'bad');
  await expect(runCompression(spec({ task: 'sentiment' }), { dir })).rejects.toThrow(
    /compression experiment: task: does not apply to the 'translate' sweep/,
  );
  await expect(runCompression(spec({ finetune: { steps: 10 } }), { dir })).rejects.toThrow(/finetune: does not apply/);
  await expect(runCompression(spec({ scoring: { samples: 0 } }), { dir })).rejects.toThrow(/scoring\.samples/);
});
