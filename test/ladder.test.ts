// Budget ladders: the same sizes under several budgets, the winner per budget, and whether it grows.
import * as fs from 'fs';
import * as path from 'path';
import { Corpus } from '../lib';
import { LadderResults, LadderSpec, ladderSweeps, runLadder, writeLadderReport } from '../lib/experiment/ladder';
import { RunResult, SweepResults } from '../lib/experiment/sweep';
import { speechFiles, tempDir } from './helpers';

jest.setTimeout(300_000);

/** A finished run with a known curve (the fields the ladder reads). */
function run(label: string, parameters: number, losses: number[]): RunResult {
  const curve = losses.map((loss, i) => ({ step: (i + 1) * 10, trainSeconds: i + 1, loss, perplexity: Math.exp(loss) }));
  return {
    label,
    model: { dModel: 8, layers: 1, heads: 1 },
    parameters,
    steps: curve.length * 10,
    trainSeconds: curve.length,
    trainTokens: 1,
    stoppedBy: 'steps',
    curve,
    finalLoss: losses[losses.length - 1],
  };
}

const rung = (label: string, runs: RunResult[]) => ({
  budget: { seconds: Number(label) },
  label: `${label}seconds`,
  results: new SweepResults(label, runs),
});

describe('the ladder claim on results with known answers', () => {
  test('the small model wins the short budget and the large one the long budget: the winner grows', () => {
    const l = new LadderResults('known', [
      rung('60', [run('small', 1e5, [6, 5.0]), run('large', 1e6, [6.5, 5.2])]),
      rung('240', [run('small', 1e5, [6, 4.8, 4.6]), run('large', 1e6, [6, 4.5, 4.1])]),
    ]);
    expect(l.winners().map((w) => w.label)).toEqual(['small', 'large']);
    expect(l.winners()[1].bestLoss).toBe(4.1);
    const c = l.checkWinnerGrows();
    expect(c.holds).toBe(true);
    expect(c.evidence).toContain('60seconds: small (0.10 M, loss 5.000)');
  });

  test('the large model wins the short budget and the small one the long one: false', () => {
    const l = new LadderResults('known', [
      rung('60', [run('small', 1e5, [5.5]), run('large', 1e6, [5.0])]),
      rung('240', [run('small', 1e5, [4.0]), run('large', 1e6, [4.2])]),
    ]);
    expect(l.checkWinnerGrows().holds).toBe(false);
  });

  test('one size wins every budget: the winner does not grow (false); ties go to the smaller model', () => {
    const l = new LadderResults('known', [
      rung('60', [run('small', 1e5, [5.0]), run('large', 1e6, [5.0])]),
      rung('240', [run('small', 1e5, [4.0]), run('large', 1e6, [4.5])]),
    ]);
    expect(l.winners().map((w) => w.label)).toEqual(['small', 'small']);
    expect(l.checkWinnerGrows().holds).toBe(false);
  });

  test('translate runs: the CSV carries the best BLEU of each curve', () => {
    const r = run('mt', 1e5, [5, 4]);
    r.curve[0].bleu = 3.5;
    r.curve[1].bleu = 2.25;
    const csv = new LadderResults('known', [rung('60', [r]), rung('240', [run('mt', 1e5, [3])])]).csv().trim().split('\n');
    expect(csv[1].split(',').pop()).toBe('3.50');
    expect(csv[2].split(',').pop()).toBe('');
  });

  test('a budget whose runs did not all finish is left out; one complete budget decides nothing', () => {
    const l = new LadderResults('known', [
      rung('60', [run('small', 1e5, [5]), run('large', 1e6, [4])]),
      rung('240', [run('small', 1e5, [4])]),
    ]);
    expect(l.checkWinnerGrows().holds).toBeUndefined();
  });
});

describe('ladder specs', () => {
  const base = {
    kind: 'ladder' as const,
    name: 'l',
    corpus: 'english-prose',
    models: [{ dModel: 32, layers: 1, heads: 2 }],
    evalEvery: { steps: 5 },
  };
  test('budgets: two or more, one unit, increasing; a sweep field is checked as a sweep', () => {
    expect(() => ladderSweeps({ ...base, budgets: [{ seconds: 10 }] })).toThrow(/budgets.*at least two budgets/);
    expect(() => ladderSweeps({ ...base, budgets: [{ seconds: 10 }, { steps: 100 }] })).toThrow(
      /budgets\.1.*every budget must be in seconds/,
    );
    expect(() => ladderSweeps({ ...base, budgets: [{ seconds: 10 }, { seconds: 10 }] })).toThrow(/budgets\.1.*increasing/);
    expect(() => ladderSweeps({ ...base, budgets: [{ seconds: 1 }, { seconds: 2 }], budget: { seconds: 3 } } as LadderSpec)).toThrow(
      /budget.*'budgets'/,
    );
    expect(() => ladderSweeps({ ...base, models: [{ dModel: 32, heads: 2 }], budgets: [{ steps: 1 }, { steps: 2 }] })).toThrow(
      /models\.0\.layers/,
    );
    const sweeps = ladderSweeps({ ...base, budgets: [{ steps: 20 }, { steps: 80 }] });
    expect(sweeps.map((s) => [s.label, s.sweep.spec.name, s.sweep.spec.budget])).toEqual([
      ['20steps', 'l-20steps', { steps: 20 }],
      ['80steps', 'l-80steps', { steps: 80 }],
    ]);
  });
});

test('a real ladder: each budget a sweep, winners from their curves, report, CSV and plot; resumable', async () => {
  const root = tempDir('ladder');
  try {
    const corpusDir = path.join(root, 'corpus');
    await Corpus.prepare({
      source: { name: 'speeches', train: { files: speechFiles(root, 40) } },
      dir: corpusDir,
      tokenizerOptions: { vocabSize: 400 },
    });
    const spec: LadderSpec = {
      kind: 'ladder',
      name: 'tiny',
      corpus: corpusDir,
      models: [
        { dModel: 16, layers: 1, heads: 2 },
        { dModel: 64, layers: 2, heads: 4 },
      ],
      maxLen: 32,
      batchSize: 8,
      lr: 3e-3,
      budgets: [{ steps: 6 }, { steps: 40 }],
      evalEvery: { steps: 20 },
      evalSamples: 32,
    };
    const dir = path.join(root, 'run');
    const seen: string[] = [];
    const r = await runLadder(spec, { dir, onProgress: (p) => p.phase === 'done' && seen.push(`${p.budget}/${p.run}`) });
    expect(seen).toEqual(['6steps/d16-l1-h2', '6steps/d64-l2-h4', '40steps/d16-l1-h2', '40steps/d64-l2-h4']);
    // Each budget is a sweep of its own, with the schedule laid over that budget.
    for (const [label, steps] of [
      ['6steps', 6],
      ['40steps', 40],
    ] as const) {
      const sub = await SweepResults.load(path.join(dir, label));
      expect(sub.runs.map((x) => x.steps)).toEqual([steps, steps]);
      expect(fs.existsSync(path.join(dir, label, 'report.md'))).toBe(true);
      // The winner is the run whose curve went lowest.
      const best = sub.runs
        .map((x) => ({ label: x.label, loss: Math.min(...x.curve.map((p) => p.loss)) }))
        .sort((a, b) => a.loss - b.loss)[0];
      const w = r.winners().find((x) => x.budget === label)!;
      expect(w.label).toBe(best.label);
      expect(w.bestLoss).toBe(best.loss);
    }
    // More steps, lower loss, for every size.
    const csv = fs.readFileSync(path.join(dir, 'results.csv'), 'utf8').trim().split('\n');
    expect(csv).toHaveLength(5);
    expect(csv[0].split(',')).toHaveLength(10);
    const loss = (budget: string, run: string) => Number(csv.find((l) => l.startsWith(`${budget},${run},`))!.split(',')[5]);
    for (const m of ['d16-l1-h2', 'd64-l2-h4']) expect(loss('40steps', m)).toBeLessThan(loss('6steps', m));
    const report = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
    // The claim's verdict, worked out again from the CSV's rows: the winner of each budget is its lowest best
    // loss, and the claim holds when the 40-step winner is larger than the 6-step one.
    const parameters = (m: string) => Number(csv.find((l) => l.split(',')[1] === m)!.split(',')[2]);
    const winner = (budget: string) => ['d16-l1-h2', 'd64-l2-h4'].sort((a, b) => loss(budget, a) - loss(budget, b))[0];
    const grows = r.checkWinnerGrows();
    expect(grows.holds).toBe(parameters(winner('40steps')) > parameters(winner('6steps')));
    expect(grows.evidence).toContain(`40steps: ${winner('40steps')}`);
    expect(report).toContain(`the winning model size grows with the budget: ${grows.holds ? '**true**' : '**false**'}`);
    expect(report).toMatch(/\| d64-l2-h4 \| \d+ \| \d\.\d{3} \| \d\.\d{3} \|/);
    expect(
      fs
        .readFileSync(path.join(dir, 'plots', 'loss-vs-size.png'))
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG');
    // A second run finds every run finished; the report is rewritten from the same data.
    const again = await runLadder(spec, { dir });
    expect(again.csv()).toBe(r.csv());
    expect(await writeLadderReport(dir)).toBe(path.join(dir, 'report.md'));
    await expect(runLadder({ ...spec, budgets: [{ steps: 6 }, { steps: 50 }] }, { dir })).rejects.toThrow(/holds another ladder/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
