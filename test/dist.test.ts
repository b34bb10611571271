// Data-parallel training (issue 17) on one machine over loopback: `trainlarge launch` runs
// test/peer/dist_child.js as ranks of one c10d process group (TCPStore + Gloo). Two ranks with batch B reach
// the weights of one process with batch 2B; a rank that dies or hangs is named by the others within the
// timeout and the launcher fails; bad setups say what is wrong.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { Corpus, Trainer, Transformer } from '../lib';
import { rankDevice } from '../lib/config/dist';
import { small, speechFiles, tempDir, withEnv } from './helpers';

jest.setTimeout(120_000);

const ROOT = path.join(__dirname, '..');
const CHILD = path.join(__dirname, 'peer', 'dist_child.js');
const CLI = path.join(ROOT, 'dist', 'lib', 'cli.js');

interface Run {
  code: number | null;
  out: string;
  seconds: number;
}

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const start = Date.now();
  return new Promise((resolve) => {
    // One thread a process, as the launcher gives each rank of two on two cores: the same GEMM code paths.
    const p: ChildProcess = spawn(process.execPath, args, { env: { ...process.env, OMP_NUM_THREADS: '1', ...env }, cwd: ROOT });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => resolve({ code, out, seconds: (Date.now() - start) / 1000 }));
  });
}

/** `trainlarge launch --nproc 2` on loopback port `port`, with launcher `flags`, running `command`. */
const launchTwo = (port: number, command: string[], flags: string[] = []) =>
  run([CLI, 'launch', '--nproc', '2', '--master', `127.0.0.1:${port}`, ...flags, ...command]);
const launch = (port: number, opts: object, flags: string[] = []) => launchTwo(port, [CHILD, '--', JSON.stringify(opts)], flags);
const alone = (opts: object, env: Record<string, string> = {}) => run([CHILD, JSON.stringify(opts)], env);

/**
 * A small sweep's spec over a speeches corpus prepared in `dir` (from `files` speeches), with `spec` on top: no
 * dropout (each rank would draw its own masks), maxLen 32, an evaluation every 4 steps.
 */
async function speechSweep(dir: string, files: number, spec: Record<string, unknown>): Promise<Record<string, unknown>> {
  const corpus = path.join(dir, 'corpus');
  await Corpus.prepare({
    source: { name: 'speeches', train: { files: speechFiles(dir, files) } },
    dir: corpus,
    tokenizerOptions: { vocabSize: 400 },
  });
  return { corpus, dropout: 0, maxLen: 32, evalEvery: { steps: 4 }, ...spec };
}

/** A port nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The float32 tensors of a safetensors file, by name. */
function readSafetensors(file: string): Map<string, Float32Array> {
  const b = fs.readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString()) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const out = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [s, e] = t.data_offsets;
    out.set(name, new Float32Array(b.buffer.slice(b.byteOffset + 8 + n + s, b.byteOffset + 8 + n + e)));
  }
  return out;
}

function maxAbsDiff(a: string, b: string): number {
  const x = readSafetensors(a);
  const y = readSafetensors(b);
  expect([...x.keys()].sort()).toEqual([...y.keys()].sort());
  let max = 0;
  for (const [name, t] of x) {
    const u = y.get(name)!;
    for (let i = 0; i < t.length; i++) max = Math.max(max, Math.abs(t[i] - u[i]));
  }
  return max;
}

const results = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map(
      (l) =>
        JSON.parse(l) as {
          rank: number;
          worldSize: number;
          steps: number;
          resumedFrom: number;
          loss: number[];
          valid?: {
            loss: number;
            maskLoss?: number;
            accuracy?: number;
            bleu?: number;
            chrf?: number;
            seconds: number;
            trainSeconds: number;
          };
        },
    );

describe('data-parallel training over c10d', () => {
  test.each([
    // evalSamples: validation after the last step, each rank evaluating its share of the batches (10 samples in
    // batches of 4 and 8: uneven shares).
    ['mlm', { task: 'mlm', batchSize: 4, maxSteps: 6, evalSamples: 10 }],
    ['mlm with accumulation', { task: 'mlm', batchSize: 2, accumSteps: 2, maxSteps: 4 }],
    ['classification', { task: 'classify', batchSize: 4, maxSteps: 6, evalSamples: 10 }],
    // batchTokens: 2 ranks x 384 tokens split one process's 768-token batches by rows. bleuSamples: BLEU and chrF
    // on 7 sources, rank 0 translating 4 and rank 1 3, every rank scoring all 7.
    ['translation', { task: 'translate', batchTokens: 384, maxSteps: 6, evalSamples: 10, bleuSamples: 7 }],
  ])('two_ranks_with_batch_B_reach_the_weights_of_one_process_with_2B (%s)', async (_, opts: Record<string, number | string>) => {
    const dir = tempDir('dist-same');
    const two = await launch(await freePort(), { ...opts, save: path.join(dir, 'two') });
    expect(two.out).not.toMatch(/error/);
    expect(two.code).toBe(0);
    const twice =
      opts.batchTokens !== undefined ? { batchTokens: Number(opts.batchTokens) * 2 } : { batchSize: Number(opts.batchSize) * 2 };
    const one = await alone({ ...opts, ...twice, save: path.join(dir, 'one') });
    expect(one.code).toBe(0);
    const [r0, r1] = results(two.out).sort((a, b) => a.rank - b.rank);
    expect([r0.worldSize, r1.worldSize, r0.steps, r1.steps]).toEqual([2, 2, opts.maxSteps, opts.maxSteps]);
    expect(r1.loss).toEqual(r0.loss); // every rank reports the whole batch's loss
    const single = results(one.out)[0];
    for (let i = 0; i < single.loss.length; i++) expect(Math.abs(r0.loss[i] - single.loss[i])).toBeLessThan(1e-5);
    // Measured: 1.2e-7 (MLM, 6 steps): float32 sums in another order, nothing more.
    const diff = maxAbsDiff(path.join(dir, 'two', 'model.safetensors'), path.join(dir, 'one', 'model.safetensors'));
    expect(diff).toBeLessThan(1e-5);
    expect(single.loss[single.loss.length - 1]).toBeLessThan(single.loss[0]); // it trained
    if (opts.evalSamples !== undefined) {
      // Validation: the group's figures equal one process's (each batch evaluated once, on one rank, then summed).
      const figures = (v: typeof r0.valid) => [v!.loss, v!.maskLoss, v!.accuracy, v!.bleu, v!.chrf];
      expect(figures(r1.valid)).toEqual(figures(r0.valid));
      if (opts.bleuSamples !== undefined) {
        // The translations of the group are one process's: the same corpus scores.
        expect([r0.valid!.bleu, r0.valid!.chrf]).toEqual([single.valid!.bleu, single.valid!.chrf]);
        expect(r0.valid!.chrf).toBeGreaterThan(0);
      }
      for (const key of ['loss', 'maskLoss', 'accuracy'] as const) {
        const want = single.valid![key];
        if (want !== undefined) expect(Math.abs(r0.valid![key]! - want)).toBeLessThan(1e-5);
      }
      expect(r0.valid!.loss).toBeGreaterThan(0);
    }
  });

  test('two_launchers_as_two_hosts_form_one_group', async () => {
    // --nnodes 2 on loopback: each launcher one process, its RANK from --node-rank, as on two hosts.
    const dir = tempDir('dist-nodes');
    const port = await freePort();
    const opts = { task: 'mlm', batchSize: 4, maxSteps: 4 };
    const host = (rank: number, save?: string) =>
      run([
        CLI,
        'launch',
        '--nnodes',
        '2',
        '--node-rank',
        String(rank),
        '--nproc',
        '1',
        '--master',
        `127.0.0.1:${port}`,
        CHILD,
        '--',
        JSON.stringify({ ...opts, ...(save ? { save } : {}) }),
      ]);
    const [h0, h1] = await Promise.all([host(0, path.join(dir, 'two')), host(1)]);
    expect([h0.code, h1.code]).toEqual([0, 0]);
    const [r0, r1] = [...results(h0.out), ...results(h1.out)].sort((a, b) => a.rank - b.rank);
    expect([r0.rank, r1.rank, r0.worldSize, r1.worldSize]).toEqual([0, 1, 2, 2]);
    const one = await alone({ ...opts, batchSize: 8, save: path.join(dir, 'one') });
    expect(one.code).toBe(0);
    expect(maxAbsDiff(path.join(dir, 'two', 'model.safetensors'), path.join(dir, 'one', 'model.safetensors'))).toBeLessThan(1e-5);
  });

  test('only_rank_0_writes_the_run_directory_and_one_process_resumes_it', async () => {
    const dir = tempDir('dist-resume');
    const two = await launch(await freePort(), { batchSize: 4, maxSteps: 4, dir, checkpointEvery: 2 });
    expect(two.code).toBe(0);
    const lines = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { step: number }).step)).toEqual([1, 2, 3, 4]); // once each, by rank 0
    const more = await alone({ batchSize: 8, maxSteps: 6, dir });
    expect(more.code).toBe(0);
    expect(results(more.out)[0]).toMatchObject({ worldSize: 1, resumedFrom: 4, steps: 6 });
  });

  test('ctrl_c_on_the_launcher_stops_every_rank_at_one_step_after_a_checkpoint', async () => {
    const dir = tempDir('dist-abort');
    const port = await freePort();
    const p = spawn(
      process.execPath,
      [
        CLI,
        'launch',
        '--nproc',
        '2',
        '--master',
        `127.0.0.1:${port}`,
        CHILD,
        '--',
        JSON.stringify({ batchSize: 4, maxSteps: 100000, dir, announce: true }),
      ],
      { env: { ...process.env, OMP_NUM_THREADS: '1' }, cwd: ROOT },
    );
    let out = '';
    let sent = false;
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!sent && out.includes('training')) {
        sent = true;
        setTimeout(() => p.kill('SIGINT'), 1000);
      }
    });
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => p.on('exit', resolve));
    const stops = [...out.matchAll(/aborted at step (\d+) on rank (\d)/g)].map((m) => ({ step: Number(m[1]), rank: Number(m[2]) }));
    expect(stops.map((s) => s.rank).sort()).toEqual([0, 1]);
    expect(stops[0].step).toBe(stops[1].step);
    expect(code).toBe(130);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.json'), 'utf8')) as { checkpoints: { step: number }[] };
    expect(manifest.checkpoints[0].step).toBe(stops[0].step);
  });

  test('a_killed_rank_is_named_by_the_other_and_the_launcher_fails', async () => {
    const r = await launch(
      await freePort(),
      { batchSize: 4, maxSteps: 100000, die: { rank: 1, afterMs: 3000 }, distributed: { timeoutSeconds: 10 } },
      ['--grace-seconds', '20'],
    );
    expect(r.out).toMatch(/error: distributed: rank 0 of 2: .* failed because rank 1 has died or hung/);
    expect(r.out).toMatch(/trainlarge launch: rank 1 \(pid \d+\) was killed by SIGKILL/);
    expect(r.code).not.toBe(0);
    expect(r.seconds).toBeLessThan(30); // the dead peer's socket closes: no need to wait for the timeout
  });

  test('a_hung_rank_is_named_within_the_timeout', async () => {
    const r = await launch(
      await freePort(),
      { batchSize: 4, maxSteps: 100000, die: { rank: 1, afterMs: 3000, signal: 'SIGSTOP' }, distributed: { timeoutSeconds: 4 } },
      ['--grace-seconds', '1'],
    );
    expect(r.out).toMatch(/error: distributed: rank 0 of 2: .* failed because rank 1 has died or hung \(timeout 4 s\)/);
    expect(r.out).toMatch(/rank 0 \(pid \d+\) exited with code 3; rank 1 \(pid \d+\) was killed by SIGKILL/);
    expect(r.code).not.toBe(0);
    expect(r.seconds).toBeLessThan(25);
  });

  test('bad_setups_say_what_is_wrong', async () => {
    const port = await freePort();
    const env = (rank: number, world: number, p = port) => ({
      RANK: `${rank}`,
      WORLD_SIZE: `${world}`,
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: `${p}`,
    });
    const opts = { batchSize: 4, maxSteps: 2, distributed: { timeoutSeconds: 5 } };
    // The port is taken.
    const busy = net.createServer().listen(port, '127.0.0.1');
    await new Promise((r) => busy.once('listening', r));
    const taken = await alone(opts, env(0, 2));
    busy.close();
    expect(taken.out).toMatch(/rank 0 of 2: cannot serve the rendezvous on port \d+ \(MASTER_PORT\): .*address already in use/);
    // Ranks disagree on WORLD_SIZE.
    const p2 = await freePort();
    const [a, b] = await Promise.all([alone(opts, env(0, 2, p2)), alone(opts, env(1, 3, p2))]);
    expect(a.out).toMatch(/rank 0 of 2: WORLD_SIZE differs between ranks: rank 1 has 3, rank 0 has 2/);
    expect(b.out).toMatch(/rank 1 of 3: WORLD_SIZE differs between ranks: rank 0 has 2, rank 1 has 3/);
    // Rank 0 never comes.
    const lonely = await alone({ ...opts, distributed: { timeoutSeconds: 2 } }, env(1, 2, await freePort()));
    expect(lonely.out).toMatch(/rank 1 of 2: cannot reach rank 0's rendezvous at 127\.0\.0\.1:\d+ .* within 2 s/);
    expect(lonely.seconds).toBeLessThan(20);
  });

  test('the_environment_is_checked_before_any_native_work', async () => {
    const model = await Transformer.create(small, { seed: 1 });
    const make = (env: Record<string, string>, distributed: 'auto' | 'off' = 'auto') =>
      withEnv(env, () => new Trainer(model, { maxSteps: 2, batchSize: 2, distributed }));
    expect(() => make({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '29500' })).toThrow(
      'distributed: the environment sets RANK, WORLD_SIZE, MASTER_PORT but not MASTER_ADDR',
    );
    expect(() => make({ RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '29500' })).toThrow(
      'distributed: RANK must be below WORLD_SIZE (2), got 2',
    );
    expect(() => make({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: 'x' })).toThrow(
      "distributed: MASTER_PORT must be an integer in 1..65535, got 'x'",
    );
    // 'off', or no torchrun variables, or WORLD_SIZE=1: one process, as before.
    expect(make({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '29500' }, 'off').worldSize).toBe(1);
    expect(make({}).worldSize).toBe(1);
    expect(make({ RANK: '0', WORLD_SIZE: '1', MASTER_ADDR: 'h', MASTER_PORT: '29500' }).distributed).toBeUndefined();
    expect(() => new Trainer(model, { maxSteps: 2, distributed: { timeoutSeconds: -1 } })).toThrow(/distributed/);
    model.dispose();
  });

  test('each_rank_puts_cuda_on_its_own_gpu', () => {
    const launched = { LOCAL_RANK: '3', WORLD_SIZE: '8' };
    const gpus = (n: number) => () => n;
    // Under a launch, 'cuda' and 'auto' mean GPU LOCAL_RANK (modulo the host's count, as extra ranks share).
    expect(rankDevice('cuda', gpus(4), launched)).toBe('cuda:3');
    expect(rankDevice('auto', gpus(2), launched)).toBe('cuda:1');
    // Explicit choices, a host without GPUs, and a lone process are left as they are.
    expect(rankDevice('cuda:0', gpus(4), launched)).toBe('cuda:0');
    expect(rankDevice('cpu', gpus(4), launched)).toBe('cpu');
    expect(rankDevice('auto', gpus(0), launched)).toBe('auto');
    expect(rankDevice('cuda', gpus(4), { LOCAL_RANK: '3', WORLD_SIZE: '1' })).toBe('cuda');
    expect(rankDevice('cuda', gpus(4), {})).toBe('cuda');
  });

  test('launch_refuses_a_bad_command_line', async () => {
    const none = await run([CLI, 'launch', '--nproc', '2']);
    expect(none.code).toBe(2);
    expect(none.out).toMatch(/launch: name the script to run/);
    const badMaster = await run([CLI, 'launch', '--master', 'nohost', CHILD]);
    expect(badMaster.code).toBe(2);
    expect(badMaster.out).toMatch(/--master: expected HOST:PORT, got 'nohost'/);
  });

  test('a_seconds_budget_is_paced_by_a_data_parallel_step_measured_on_every_rank', async () => {
    const dir = tempDir('dist-pace');
    const spec = await speechSweep(dir, 20, {
      name: 'pace',
      models: [{ dModel: 64, layers: 2, heads: 2 }],
      budget: { seconds: 4 },
      batchSize: 8,
    });
    fs.writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(spec));
    // Two ranks of 2 threads each on this machine's 2 cores: a data-parallel step is far slower than one rank's
    // step alone (which had both cores), so a pace measured on rank 0 alone planned about twice the steps the
    // clock let the ranks train.
    const r = await launchTwo(
      await freePort(),
      [CLI, 'experiment', 'run', path.join(dir, 'spec.json'), '--dir', path.join(dir, 'out')],
      ['--threads', '2'],
    );
    expect(r.code).toBe(0);
    const run = path.join(dir, 'out', 'd64-l2-h2');
    const plan = JSON.parse(fs.readFileSync(path.join(run, 'plan.json'), 'utf8')) as { maxSteps: number };
    const result = JSON.parse(fs.readFileSync(path.join(run, 'result.json'), 'utf8')) as { steps: number; stoppedBy: string };
    // The plan has 10% slack over the measured pace: the clock ends the run near the planned count.
    expect(result.steps / plan.maxSteps).toBeGreaterThan(0.6);
    expect(result.steps).toBeLessThanOrEqual(plan.maxSteps);
  });

  test('a_sweep_trains_each_model_data_parallel_and_rank_0_writes_its_files', async () => {
    const dir = tempDir('dist-sweep');
    const base = await speechSweep(dir, 40, {
      name: 'dp',
      models: [
        { dModel: 32, layers: 1, heads: 2 },
        { dModel: 48, layers: 2, heads: 4 },
      ],
      budget: { steps: 8 },
      evalSamples: 24,
      // Each model's rate searched: 2 steps per candidate (data-parallel on the ranks, in one process alone).
      lrSearch: { rates: [1e-3, 3e-3], fraction: 0.25 },
    });
    const spec = (batchSize: number) => ({ ...base, batchSize });
    fs.writeFileSync(path.join(dir, 'two.json'), JSON.stringify(spec(4)));
    fs.writeFileSync(path.join(dir, 'one.json'), JSON.stringify(spec(8)));
    const two = await launchTwo(await freePort(), [CLI, 'experiment', 'run', path.join(dir, 'two.json'), '--dir', path.join(dir, 'two')]);
    expect(two.out).not.toMatch(/error/i);
    expect(two.code).toBe(0);
    // Rank 0 alone prints and writes: one "done" per model, one report.
    expect(two.out.match(/: done/g)).toHaveLength(2);
    expect(two.out.match(/wrote .*report\.md/g)).toHaveLength(1);
    const one = await run([CLI, 'experiment', 'run', path.join(dir, 'one.json'), '--dir', path.join(dir, 'one')]);
    expect(one.code).toBe(0);
    const rows = (d: string) =>
      fs
        .readFileSync(path.join(dir, d, 'results.csv'), 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(','));
    const [a, b] = [rows('two'), rows('one')];
    expect(a.map((r) => [r[0], r[1], r[2]])).toEqual(b.map((r) => [r[0], r[1], r[2]])); // runs, parameters, steps
    expect(a).toHaveLength(4); // two evaluations of two models
    // 2 ranks x batch 4 train as 1 process x batch 8: the same validation losses (result.json's, unrounded), to
    // 3e-4: at the searched rate (3e-3 here) AdamW turns float32 summation-order noise in near-zero gradients
    // into steps of the learning rate's size (measured: 1.1e-4 after 8 steps).
    for (const m of ['d32-l1-h2', 'd48-l2-h4']) {
      const curve = (d: string) =>
        (JSON.parse(fs.readFileSync(path.join(dir, d, m, 'result.json'), 'utf8')) as { curve: { loss: number }[] }).curve;
      const [ca, cb] = [curve('two'), curve('one')];
      expect(ca).toHaveLength(cb.length);
      ca.forEach((e, i) => expect(Math.abs(e.loss - cb[i].loss)).toBeLessThan(3e-4));
    }
    for (const m of ['d32-l1-h2', 'd48-l2-h4']) {
      expect(fs.readdirSync(path.join(dir, 'two', m)).filter((f) => f.startsWith('.'))).toEqual([]);
      // The searches: the same trials (losses to 3e-4, as above: a trial's first step is at the full rate) and
      // the same choice, saved in the plan.
      type Search = { lr: number; trials: { lr: number; loss: number; steps: number }[] };
      const search = (d: string) =>
        (JSON.parse(fs.readFileSync(path.join(dir, d, m, 'result.json'), 'utf8')) as { lrSearch: Search }).lrSearch;
      const [sa, sb] = [search('two'), search('one')];
      expect(sa.lr).toBe(sb.lr);
      expect(sa.trials.map((t) => [t.lr, t.steps])).toEqual(sb.trials.map((t) => [t.lr, t.steps]));
      sa.trials.forEach((t, i) => expect(Math.abs(t.loss - sb.trials[i].loss)).toBeLessThan(3e-4));
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'two', m, 'plan.json'), 'utf8')).lrSearch.lr).toBe(sa.lr);
    }
  });

  test('a_stop_on_rank_0_between_two_models_stops_every_rank_at_once', async () => {
    // Rank 0's signal fires as the first model is done; rank 1 has none and waits for rank 0's word on the next
    // model, which is "stop" (it once waited there until rank 0's exit broke the group, and failed on that).
    const dir = tempDir('dist-sweep-stop');
    const spec = await speechSweep(dir, 20, {
      name: 'dp-stop',
      models: [
        { dModel: 32, layers: 1, heads: 2 },
        { dModel: 48, layers: 1, heads: 4 },
      ],
      batchSize: 4,
      budget: { steps: 4 },
      evalSamples: 8,
    });
    fs.writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(spec));
    const r = await launchTwo(
      await freePort(),
      [path.join(__dirname, 'peer', 'dist_sweep_child.js'), path.join(dir, 'spec.json'), path.join(dir, 'sweep')],
      ['--grace-seconds', '120'],
    );
    expect(r.out).toMatch(/rank 0: AbortError: training aborted at step 0/);
    expect(r.out).toMatch(/rank 1: AbortError: training aborted at step 0/);
    expect(r.code).toBe(130);
    expect(r.seconds).toBeLessThan(90);
    expect(fs.existsSync(path.join(dir, 'sweep', 'd32-l1-h2', 'result.json'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'sweep', 'd48-l1-h4', 'result.json'))).toBe(false);
  });
});
