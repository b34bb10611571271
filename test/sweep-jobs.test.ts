// One sweep split across jobs (issue 17): `experiment run FILE --only NAME` per scheduler task into one shared
// directory, claims that keep two jobs off one model, and a merged report equal to the whole sweep's.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Corpus } from '../lib';
import { tryLock, withLock } from '../lib/lock';
import { Sweep, SweepProgress } from '../lib/experiment/sweep';
import { speechFiles, tempDir } from './helpers';

jest.setTimeout(300_000);

const CLI = path.resolve(__dirname, '..', 'dist', 'lib', 'cli.js');
let root: string;
let file: string;
const models = [
  { dModel: 32, layers: 1, heads: 2 },
  { dModel: 64, layers: 2, heads: 4 },
];

beforeAll(async () => {
  root = tempDir('sweep-jobs');
  const corpusDir = path.join(root, 'corpus');
  await Corpus.prepare({
    source: { name: 'speeches', train: { files: speechFiles(root, 40) } },
    dir: corpusDir,
    tokenizerOptions: { vocabSize: 400 },
  });
  file = path.join(root, 'jobs.json');
  const spec = { name: 'jobs', corpus: corpusDir, models, maxLen: 32, batchSize: 8, budget: { steps: 12 }, evalEvery: { steps: 4 } };
  fs.writeFileSync(file, JSON.stringify(spec));
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function job(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, 'experiment', 'run', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** results.csv without its train_seconds column (the only column a second run cannot repeat). */
function csvWithoutSeconds(dir: string): string[] {
  const rows = fs.readFileSync(path.join(dir, 'results.csv'), 'utf8').trim().split('\n');
  const col = rows[0].split(',').indexOf('train_seconds');
  expect(col).toBeGreaterThan(0);
  return rows.map((r) =>
    r
      .split(',')
      .filter((_, i) => i !== col)
      .join(','),
  );
}

/** report.md: its runs table without the seconds column, and its claim by steps without the seconds it quotes. */
function reportBySteps(dir: string): string[] {
  const lines = fs.readFileSync(path.join(dir, 'report.md'), 'utf8').split('\n');
  const table = lines
    .filter((l) => /^\| d\d+-l\d+-h\d+ \|/.test(l))
    .map((l) =>
      l
        .split('|')
        .filter((_, i) => i !== 4)
        .join('|'),
    );
  const claims = lines.filter((l) => l.includes('reaches (steps)')).map((l) => l.replace(/ \(\d+\.\d s\)/g, ''));
  return [...table, ...claims];
}

test('two --only jobs at once into one directory: the merged results and report equal the sweep run whole', async () => {
  const whole = path.join(root, 'whole');
  const w = await job(['--dir', whole]);
  expect(w.status).toBe(0);

  const shared = path.join(root, 'shared');
  const [a, b] = await Promise.all([job(['--dir', shared, '--only', 'd32-l1-h2']), job(['--dir', shared, '--only', 'd64-l2-h4'])]);
  for (const j of [a, b]) {
    expect(j.stderr).not.toMatch(/error|trainlarge:/i); // progress lines only
    expect(j.status).toBe(0);
  }
  expect(a.stdout).toMatch(/d32-l1-h2: done/);
  expect(a.stdout).not.toMatch(/d64-l2-h4/);
  expect(b.stdout).toMatch(/d64-l2-h4: done/);

  // Whichever job finished last wrote results.csv with both runs; `experiment report` merges them again.
  expect(csvWithoutSeconds(shared)).toEqual(csvWithoutSeconds(whole));
  const rep = spawnSync(process.execPath, [CLI, 'experiment', 'report', shared], { encoding: 'utf8' });
  expect(rep.status).toBe(0);
  expect(reportBySteps(shared)).toEqual(reportBySteps(whole));
  expect(reportBySteps(whole).length).toBeGreaterThanOrEqual(3); // two runs and the steps claim
  for (const d of [shared, whole]) {
    expect(fs.readdirSync(d).filter((f) => f.endsWith('.lock'))).toEqual([]);
    for (const m of ['d32-l1-h2', 'd64-l2-h4']) expect(fs.existsSync(path.join(d, m, '.claim'))).toBe(false);
  }
});

test("a model claimed by a live job: --only refuses it, a whole run skips it as busy; a dead job's claim is taken over", async () => {
  const dir = path.join(root, 'claimed');
  const runDir = path.join(dir, 'd32-l1-h2');
  fs.mkdirSync(runDir, { recursive: true });
  const sleeper = spawn('sleep', ['60']);
  try {
    fs.writeFileSync(path.join(runDir, '.claim'), `${sleeper.pid} ${os.hostname()}\n`);
    const only = await job(['--dir', dir, '--only', 'd32-l1-h2']);
    expect(only.status).toBe(1);
    expect(only.stderr).toMatch(new RegExp(`d32-l1-h2 is being trained by another job \\(process ${sleeper.pid}\\)`));

    const phases: SweepProgress[] = [];
    const spec = JSON.parse(fs.readFileSync(file, 'utf8')) as ConstructorParameters<typeof Sweep>[0];
    const r = await new Sweep(spec).run({ dir, onProgress: (p) => p.phase !== 'train' && phases.push(p) });
    expect(phases.find((p) => p.run === 'd32-l1-h2')?.phase).toBe('busy');
    expect(r.runs.map((x) => x.label)).toEqual(['d64-l2-h4']);
  } finally {
    sleeper.kill();
  }
  // The holder is gone: the next job takes the claim over and trains the model.
  await new Promise((res) => sleeper.once('exit', res));
  const next = await job(['--dir', dir, '--only', 'd32-l1-h2']);
  expect(next.status).toBe(0);
  expect(next.stdout).toMatch(/d32-l1-h2: done/);
  expect(fs.readFileSync(path.join(dir, 'results.csv'), 'utf8')).toMatch(/d64-l2-h4[\s\S]*d32-l1-h2|d32-l1-h2[\s\S]*d64-l2-h4/);
});

test('--only names a run of the sweep; it does not apply to compression experiments', () => {
  const r = spawnSync(process.execPath, [CLI, 'experiment', 'run', file, '--only', 'd99-l9-h9'], { encoding: 'utf8', cwd: root });
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/only: 'd99-l9-h9' is not a run of sweep 'jobs'; its runs are d32-l1-h2, d64-l2-h4/);
  const comp = path.join(root, 'comp.json');
  fs.writeFileSync(comp, JSON.stringify({ kind: 'compression', name: 'c', sweep: path.join(root, 'whole') }));
  const c = spawnSync(process.execPath, [CLI, 'experiment', 'run', comp, '--only', 'x'], { encoding: 'utf8', cwd: root });
  expect(c.status).toBe(2);
  expect(c.stderr).toMatch(/--only applies to sweeps and ladders/);
});

test('lock files: a lock from another host is held (and says where), a dead process is taken over, withLock waits its turn', async () => {
  const dir = tempDir('locks');
  try {
    const f = path.join(dir, 'x.lock');
    fs.writeFileSync(f, '4242 some-other-host\n');
    expect(tryLock(f)).toEqual({ pid: 4242, host: 'some-other-host' });
    fs.writeFileSync(f, '999999999\n'); // the pid-only format, of a process that is gone
    const release = tryLock(f);
    expect(typeof release).toBe('function');
    expect(fs.readFileSync(f, 'utf8')).toBe(`${process.pid} ${os.hostname()}\n`);
    expect(tryLock(f)).toEqual({ pid: process.pid, host: os.hostname() }); // this process holds it already
    (release as () => void)();
    expect(fs.existsSync(f)).toBe(false);

    const order: string[] = [];
    const slow = withLock(f, async () => {
      order.push('a in');
      await new Promise((r) => setTimeout(r, 300));
      order.push('a out');
    });
    await new Promise((r) => setTimeout(r, 50));
    await Promise.all([slow, withLock(f, async () => void order.push('b'))]);
    expect(order).toEqual(['a in', 'a out', 'b']); // the second task waited for the first to give it back
    fs.writeFileSync(f, '4242 some-other-host\n');
    await expect(withLock(f, async () => 1, { timeoutSeconds: 0.2, what: 'sweep' })).rejects.toThrow(
      /sweep: still held by process 4242 on host some-other-host after 0.2 s .*delete that file if the job that wrote it is gone/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
