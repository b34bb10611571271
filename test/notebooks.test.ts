// The tslab notebooks in examples/notebooks, executed headless the way Jupyter runs them
// (`python3 -m nbconvert --to notebook --execute`) with small budgets: every cell must run, and each
// notebook must show its real outputs (training log, inline plots, tables, the claims checked).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { tempDir } from './helpers';

jest.setTimeout(900_000);

const NB_DIR = path.join(__dirname, '..', 'examples', 'notebooks');
const PY = '/usr/bin/python3'; // Debian's, with nbconvert and jupyter-client (the python3 on PATH may be another)

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
}
interface Notebook {
  cells: { cell_type: string; source: string | string[]; outputs?: Output[] }[];
  metadata: { kernelspec?: { name: string } };
}

const joined = (t: string | string[] | undefined): string => (Array.isArray(t) ? t.join('') : (t ?? ''));

let runs: string;
beforeAll(() => {
  runs = tempDir('notebooks');
});
afterAll(() => fs.rmSync(runs, { recursive: true, force: true }));

/** Executes a notebook into a temporary copy; throws with the failing cell's error when a cell fails. */
function execute(name: string): { stdout: string; outputs: Output[]; nb: Notebook } {
  const out = path.join(runs, 'executed');
  const env = {
    ...process.env,
    JUPYTER_PATH: path.join(NB_DIR, 'jupyter'), // the tslab kernelspec, pointing at node_modules/tslab
    TRAINLARGE_NB_SECONDS: '6',
    TRAINLARGE_NB_FINETUNE_STEPS: '20',
    TRAINLARGE_NB_RUNS: path.join(runs, 'runs'),
  };
  const r = spawnSync(
    PY,
    ['-m', 'nbconvert', '--to', 'notebook', '--execute', '--ExecutePreprocessor.timeout=900', '--output-dir', out, path.join(NB_DIR, name)],
    {
      env,
      encoding: 'utf8',
      timeout: 900_000,
    },
  );
  if (r.status !== 0) {
    // tslab reports a cell's error on its stderr stream, which nbconvert does not print: run it again
    // cell by cell to say what failed.
    const why = spawnSync(PY, [path.join(__dirname, 'peer', 'run_notebook.py'), path.join(NB_DIR, name)], {
      env,
      encoding: 'utf8',
      timeout: 900_000,
    });
    throw new Error(`${name}: nbconvert exited ${r.status}\n${r.stderr.slice(-3000)}\n${why.stderr.slice(-3000)}`);
  }
  const nb = JSON.parse(fs.readFileSync(path.join(out, name), 'utf8')) as Notebook;
  const outputs = nb.cells.flatMap((c) => c.outputs ?? []);
  const stdout = outputs
    .filter((o) => o.output_type === 'stream' && o.name === 'stdout')
    .map((o) => joined(o.text))
    .join('');
  // Every code cell ran to the end and printed or displayed something.
  nb.cells
    .filter((c) => c.cell_type === 'code')
    .forEach((c, i) => expect({ cell: i, outputs: (c.outputs ?? []).length > 0 }).toEqual({ cell: i, outputs: true }));
  return { stdout, outputs, nb };
}

function displays(outputs: Output[], mime: string): string[] {
  return outputs.filter((o) => o.output_type === 'display_data' && o.data?.[mime] !== undefined).map((o) => joined(o.data![mime]));
}

function isPng(b64: string): boolean {
  const bytes = Buffer.from(b64, 'base64');
  return bytes.length > 5000 && bytes.subarray(1, 4).toString('latin1') === 'PNG';
}

test('every notebook uses the tslab TypeScript kernel', () => {
  const names = fs
    .readdirSync(NB_DIR)
    .filter((f) => f.endsWith('.ipynb'))
    .sort();
  expect(names).toEqual(['compress.ipynb', 'quickstart.ipynb', 'sweep.ipynb']);
  for (const n of names)
    expect((JSON.parse(fs.readFileSync(path.join(NB_DIR, n), 'utf8')) as Notebook).metadata.kernelspec?.name).toBe('tslab');
});

test('quickstart: trains, the validation loss falls, the curve is drawn, masked words are filled', () => {
  const { stdout, outputs } = execute('quickstart.ipynb');
  const losses = [...stdout.matchAll(/step (\d+): valid loss (\d+\.\d+)/g)].map((m) => Number(m[2]));
  expect(losses.length).toBeGreaterThanOrEqual(2);
  expect(losses[losses.length - 1]).toBeLessThan(losses[0]);
  expect(stdout).toMatch(/stopped by (steps|seconds) after \d+ steps/);
  // The use of context is judged on the <mask> positions against a unigram model of the same targets.
  const ctx = stdout.match(/on the <mask> positions (\d+\.\d+) vs (\d+\.\d+) for a unigram model of the same targets: (.*)/);
  expect(ctx).not.toBeNull();
  expect(ctx![3]).toBe(Number(ctx![1]) < Number(ctx![2]) ? 'the model uses context' : 'no use of context yet (train longer)');
  const pngs = displays(outputs, 'image/png');
  expect(pngs).toHaveLength(1);
  expect(isPng(pngs[0])).toBe(true);
  const [table] = displays(outputs, 'text/markdown');
  expect(table).toMatch(/&lt;mask&gt;/);
  expect(table.split('\n').filter((l) => /^\| (Congress|States) \|/.test(l))).toHaveLength(2);
});

test('sweep: three sizes trained for the same budget, loss curves inline, the claim stated', () => {
  const { outputs } = execute('sweep.ipynb');
  const pngs = displays(outputs, 'image/png');
  expect(pngs).toHaveLength(2);
  for (const p of pngs) expect(isPng(p)).toBe(true);
  const [table, claim] = displays(outputs, 'text/markdown');
  expect(table.split('\n').filter((l) => /^\| d\d+-l\d+-h\d+ \|/.test(l))).toHaveLength(3);
  expect(claim).toMatch(/^\*\*(holds|does not hold|undecided)\*\*: /);
});

test('compress: two sizes fine-tuned, pruned and quantized, accuracy vs bytes inline, a recommendation per budget', () => {
  const { stdout, outputs } = execute('compress.ipynb');
  const [table, claim] = displays(outputs, 'text/markdown');
  const rows = table.split('\n').filter((l) => /^\| d\d+-l\d+-h\d+ \|/.test(l));
  expect(rows).toHaveLength(2 * (1 + 3 + 4)); // uncompressed + 3 sparsities + 4 bit widths, per size
  for (const r of rows) expect(Number(r.split('|')[5])).toBeGreaterThan(0.3); // real accuracies on the test split
  const pngs = displays(outputs, 'image/png');
  expect(pngs).toHaveLength(2);
  for (const p of pngs) expect(isPng(p)).toBe(true);
  expect(claim).toMatch(/^\*\*Compressed larger beats compressed smaller: (holds|does not hold|undecided)\.\*\*/);
  expect(stdout.match(/MB: d\d+-l\d+-h\d+ .* measured \d\.\d+ at \d+ bytes/g)).toHaveLength(3);
});
