// Crash safety: a run directory survives SIGKILL at any moment (inside the first checkpoint included), stale
// temporary files are cleared, one fit at a time per model and per directory, and injected faults (a write
// error, a read-only directory, a diverging loss, a corrupted shard, a checkpoint replaced by garbage) each
// leave the previous checkpoint loadable and the process alive.
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Corpus, Trainer, Transformer } from '../lib';
import type { MetricRecord } from '../lib';
import { small, speechData, speechFiles, tempDir } from './helpers';

jest.setTimeout(600_000);

const CHILD = path.join(__dirname, 'peer', 'fit_child.js');

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

/** Runs test/peer/fit_child.js; with `killAt`, sends SIGKILL once it reports that step (or a later one). */
function child(
  opts: { dir: string; maxSteps: number; lr?: number },
  more: { env?: Record<string, string>; killAt?: number; shell?: string } = {},
): Promise<ChildRun> {
  return new Promise((resolve) => {
    const env = { ...process.env, ...more.env };
    const args = [CHILD, JSON.stringify(opts)];
    const p: ChildProcess = more.shell
      ? spawn('bash', ['-c', `${more.shell}; exec "$0" "$@"`, process.execPath, ...args], { env })
      : spawn(process.execPath, args, { env });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const steps = [...out.matchAll(/^step (\d+)$/gm)].map((m) => Number(m[1]));
      if (more.killAt !== undefined && steps.some((s) => s >= more.killAt!)) p.kill('SIGKILL');
    });
    p.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

function metrics(dir: string): MetricRecord[] {
  return fs
    .readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

function tmpFiles(dir: string): string[] {
  return [dir, path.join(dir, 'checkpoints')].filter(fs.existsSync).flatMap((d) => fs.readdirSync(d).filter((f) => /\.tmp-\d+$/.test(f)));
}

const trainLosses = (dir: string) =>
  metrics(dir)
    .filter((r) => r.type === 'train')
    .map((r) => [r.step, r.loss] as const);

describe('kill -9', () => {
  test('killed at several moments, inside the first checkpoint too, each resume continues exactly; each step logged once', async () => {
    const ref = tempDir('kill-ref');
    const whole = await child({ dir: ref, maxSteps: 20 });
    expect(whole.code).toBe(0);
    const dir = tempDir('kill');
    // 1. Inside the first checkpoint: its state file is written, the manifest is not.
    const first = await child({ dir, maxSteps: 20 }, { env: { TRAINLARGE_FAULT: 'kill@state:1' } });
    expect(first.signal).toBe('SIGKILL');
    expect(fs.readdirSync(path.join(dir, 'checkpoints'))).toContain('step-000000002.safetensors');
    expect(fs.existsSync(path.join(dir, 'checkpoint.json'))).toBe(false);
    // 2. Anywhere: the parent kills it when it reports step 7 (it may be past it by then).
    const second = await child({ dir, maxSteps: 20 }, { killAt: 7 });
    expect(second.signal).toBe('SIGKILL');
    expect(second.out).toMatch(/no complete checkpoint in .*, so training starts fresh/);
    // 3. Right after a checkpoint's manifest, before its views (model.safetensors, trainer.json).
    const third = await child({ dir, maxSteps: 20 }, { env: { TRAINLARGE_FAULT: 'kill@manifest:1' } });
    expect(third.signal).toBe('SIGKILL');
    // 4. Anywhere again, later.
    expect((await child({ dir, maxSteps: 20 }, { killAt: 15 })).signal).toBe('SIGKILL');
    const last = await child({ dir, maxSteps: 20 });
    expect(last.code).toBe(0);
    const result = JSON.parse(last.out.trim().split('\n').pop()!);
    expect(result.resumedFrom).toBeGreaterThanOrEqual(8);
    expect(result.steps).toBe(20);
    // The same losses as the uninterrupted run, each step once.
    const want = trainLosses(ref);
    const got = trainLosses(dir);
    expect(got.map(([s]) => s)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    got.forEach(([, loss], i) => expect(Math.abs(loss - want[i][1])).toBeLessThan(1e-5));
    expect(tmpFiles(dir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, '.lock'))).toBe(false);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.json'), 'utf8'));
    expect(manifest.checkpoints.map((c: { step: number }) => c.step)).toEqual([20, 18]);
    expect(fs.readdirSync(path.join(dir, 'checkpoints')).sort()).toEqual(['step-000000018.safetensors', 'step-000000020.safetensors']);
  });
});

describe('run directories', () => {
  const { train } = speechData(64, 20);
  const cfg = { maxSteps: 4, warmupSteps: 1, lr: 1e-3, batchSize: 8, precision: 'fp32' as const, seed: 7 };

  test("the issue's reproduction: a state file alone is not a checkpoint; fit starts fresh and says so", async () => {
    const a = tempDir('repro-a');
    await new Trainer(await Transformer.create(small, { seed: 1 }), { ...cfg, maxSteps: 2 }).fit(train, { dir: a, checkpointEvery: 2 });
    for (const [what, copy] of [
      [
        'a state file from checkpoints/',
        (b: string) =>
          fs.copyFileSync(
            path.join(a, 'checkpoints', 'step-000000002.safetensors'),
            path.join(b, 'checkpoints', 'step-000000002.safetensors'),
          ),
      ],
      [
        'the single state file of the layout before checkpoint.json',
        (b: string) =>
          fs.copyFileSync(path.join(a, 'checkpoints', 'step-000000002.safetensors'), path.join(b, 'trainer_state.safetensors')),
      ],
    ] as const) {
      const b = tempDir('repro-b');
      fs.mkdirSync(path.join(b, 'checkpoints'));
      copy(b);
      const r = await new Trainer(await Transformer.create(small, { seed: 1 }), cfg).fit(train, { dir: b });
      expect([what, r.resumedFrom]).toEqual([what, 0]);
      expect(r.resumeNote).toMatch(/never completed|interrupted first checkpoint/);
      expect(r.resumeNote).toMatch(/no complete checkpoint in .*, so training starts fresh/);
      expect(r.steps).toBe(4);
    }
  });

  test('a run directory of the layout before checkpoint.json (one trainer_state.safetensors) still resumes exactly', async () => {
    const full = await new Trainer(await Transformer.create(small, { seed: 1 }), { ...cfg, maxSteps: 6 }).fit(train);
    const dir = tempDir('legacy');
    await new Trainer(await Transformer.create(small, { seed: 1 }), { ...cfg, maxSteps: 6 }).fit(train, {
      dir,
      checkpointEvery: 3,
      maxTokens: 3 * 8 * 63,
    });
    // What the code before this layout wrote: config.json, model.safetensors, trainer.json, trainer_state.safetensors.
    fs.renameSync(path.join(dir, 'checkpoints', 'step-000000003.safetensors'), path.join(dir, 'trainer_state.safetensors'));
    fs.rmSync(path.join(dir, 'checkpoints'), { recursive: true });
    fs.rmSync(path.join(dir, 'checkpoint.json'));
    const r = await new Trainer(await Transformer.create(small, { seed: 9 }), { ...cfg, maxSteps: 6 }).fit(train, { dir });
    expect(r.resumedFrom).toBe(3);
    expect(r.resumeNote).toBeUndefined();
    const after = (h: MetricRecord[]) => h.filter((x) => x.type === 'train' && x.step > 3).map((x) => x.loss);
    after(r.history).forEach((l, i) => expect(Math.abs(l - after(full.history)[i])).toBeLessThan(1e-5));
    expect(fs.existsSync(path.join(dir, 'trainer_state.safetensors'))).toBe(false); // the new layout took over
  });

  test('stale temporary files are removed at the next start', async () => {
    const dir = tempDir('stale');
    fs.mkdirSync(path.join(dir, 'checkpoints'));
    fs.writeFileSync(path.join(dir, 'model.safetensors.tmp-12345'), 'x');
    fs.writeFileSync(path.join(dir, 'checkpoints', 'step-000000002.safetensors.tmp-777'), 'x');
    fs.writeFileSync(path.join(dir, '.lock'), '999999999\n'); // a dead process's lock
    await new Trainer(await Transformer.create(small, { seed: 1 }), cfg).fit(train, { dir });
    expect(tmpFiles(dir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, '.lock'))).toBe(false);
  });

  test('one fit at a time per model and per directory; predict during fit runs between steps', async () => {
    const model = await Transformer.create(small, { seed: 1 });
    const trainer = new Trainer(model, { ...cfg, maxSteps: 40 });
    const running = trainer.fit(train, { dir: tempDir('one') });
    await expect(trainer.fit(train)).rejects.toThrow(/fit: a fit is already running on this model/);
    await expect(new Trainer(model, cfg).fit(train)).rejects.toThrow(/fit: a fit is already running on this model/);
    await expect(trainer.checkpoint(tempDir('x'))).rejects.toThrow(/checkpoint: a fit is running on this model/);
    const logits = await model.predict([[1, 40, 50]]);
    expect(logits.dims).toEqual([1, 3, small.vocabSize]);
    expect((await running).steps).toBe(40);
    // Another model, the same directory, at the same time.
    const dir = tempDir('shared');
    const one = new Trainer(await Transformer.create(small, { seed: 1 }), { ...cfg, maxSteps: 30 }).fit(train, { dir });
    await new Promise((r) => setTimeout(r, 50));
    await expect(new Trainer(await Transformer.create(small, { seed: 2 }), cfg).fit(train, { dir })).rejects.toThrow(
      /is in use by another fit \(process \d+\)/,
    );
    await one;
    // Afterwards the model trains again.
    expect((await new Trainer(model, cfg).fit(train)).steps).toBe(4);
  });
});

describe('faults', () => {
  const { train } = speechData(64, 20);

  test('a write error during a checkpoint (a file size limit: EFBIG) leaves the previous one; the process lives', async () => {
    const dir = tempDir('efbig');
    expect((await child({ dir, maxSteps: 4 })).code).toBe(0);
    // The state file (~1.5 MB) cannot be written under a 1 MB limit; SIGXFSZ ignored, so write() fails with EFBIG.
    const r = await child({ dir, maxSteps: 8 }, { shell: "trap '' XFSZ; ulimit -f 1024" });
    expect(r.code).toBe(3);
    expect(r.out).toMatch(
      /error: checkpoint: step 6 was not saved \(the previous checkpoint in .* stands\): cannot write .*step-000000006\.safetensors(\.tmp-\d+)?: File too large/,
    );
    expect(r.out).toMatch(/alive: predicted 1 x 4 x 261/);
    expect(tmpFiles(dir)).toEqual([]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.json'), 'utf8')).checkpoints[0].step).toBe(4);
    await expect(Transformer.load(dir)).resolves.toBeInstanceOf(Transformer);
    const again = await child({ dir, maxSteps: 8 });
    expect(JSON.parse(again.out.trim().split('\n').pop()!)).toMatchObject({ resumedFrom: 4, steps: 8 });
  });

  test('a read-only run directory: a clear error, the checkpoint still loads, and training resumes once it is writable', async () => {
    if (process.getuid?.() !== 0 && !process.env.CI) return; // a read-only bind mount needs root (CI runs as root)
    const dir = tempDir('readonly');
    expect((await child({ dir, maxSteps: 4 })).code).toBe(0);
    execFileSync('mount', ['--bind', dir, dir]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', dir, dir]);
      const r = await child({ dir, maxSteps: 8 });
      expect(r.code).toBe(3);
      expect(r.out).toMatch(/error: fit: cannot write to the run directory .*: EROFS/);
      expect(r.out).toMatch(/alive: predicted/);
      const loaded = await Transformer.load(dir);
      expect((await loaded.predict([[1, 40]])).dims).toEqual([1, 2, 261]);
    } finally {
      execFileSync('umount', [dir]);
    }
    const again = await child({ dir, maxSteps: 8 });
    expect(JSON.parse(again.out.trim().split('\n').pop()!)).toMatchObject({ resumedFrom: 4, steps: 8 });
  });

  test('a diverging loss stops fit with the step named; the last checkpoint still loads and resumes', async () => {
    const dir = tempDir('diverge');
    const model = await Transformer.create(small, { seed: 1 });
    await new Trainer(model, { maxSteps: 4, lr: 1e-3, batchSize: 8, precision: 'fp32' }).fit(train, { dir, checkpointEvery: 2 });
    const wild = new Trainer(model, { maxSteps: 200, lr: 1e6, clipNorm: 0, batchSize: 8, precision: 'fp32' });
    await expect(wild.fit(train, { dir, checkpointEvery: 1000 })).rejects.toThrow(
      /training diverged: loss (NaN|-?Infinity|[\d.e+]+), gradient norm .* at step \d+/,
    );
    const loaded = await Transformer.load(dir);
    expect(Array.from((await loaded.predict([[1, 40, 50]])).data).every(Number.isFinite)).toBe(true);
    const r = await new Trainer(await Transformer.create(small, { seed: 1 }), {
      maxSteps: 6,
      lr: 1e-3,
      batchSize: 8,
      precision: 'fp32',
    }).fit(train, { dir });
    expect(r.resumedFrom).toBe(4);
  });

  test('a checkpoint replaced by garbage: resume falls back to the one before and says so; a garbage model file is a clear error', async () => {
    const dir = tempDir('garbage');
    const cfg = { maxSteps: 4, warmupSteps: 1, lr: 1e-3, batchSize: 8, precision: 'fp32' as const, seed: 7 };
    await new Trainer(await Transformer.create(small, { seed: 1 }), cfg).fit(train, { dir, checkpointEvery: 2 });
    const newest = path.join(dir, 'checkpoints', 'step-000000004.safetensors');
    const size = fs.statSync(newest).size;
    fs.writeFileSync(newest, Buffer.alloc(size, 7));
    const r = await new Trainer(await Transformer.create(small, { seed: 1 }), { ...cfg, maxSteps: 6 }).fit(train, { dir });
    expect(r.resumedFrom).toBe(2);
    expect(r.resumeNote).toMatch(
      /the checkpoint of step 4 is damaged: its state file does not match its checksum; resumed from the checkpoint of step 2/,
    );
    fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.from('not a safetensors file at all'));
    await expect(Transformer.load(dir)).rejects.toThrow(/model\.safetensors/);
  });

  test('a token shard corrupted on disk is caught by its checksum when the corpus is opened', async () => {
    const root = tempDir('shard');
    const files = speechFiles(root, 12);
    const corpus = await Corpus.prepare({
      source: { name: 'tiny', train: { files }, validEvery: 4 },
      dir: path.join(root, 'c'),
      tokenizerOptions: { vocabSize: 400 },
    });
    const shard = path.join(corpus.dir, corpus.manifest.splits.train.shards[0].file);
    const bytes = fs.readFileSync(shard);
    bytes[bytes.length - 3] ^= 0xff;
    fs.writeFileSync(shard, bytes);
    await expect(Corpus.open(corpus.dir)).rejects.toThrow(/corpus: shard .*train-00000\.tok fails its checksum/);
  });
});
