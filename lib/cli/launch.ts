// `trainlarge launch`: starts a script as several data-parallel processes with torchrun's conventions
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT in each one's environment), so
// that `new Trainer(model, { distributed: 'auto' })` in the script joins one process group. It forwards
// SIGINT/SIGTERM once to every rank and exits non-zero naming the rank that failed.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import { Args, Command, UsageError } from './args';

export interface LaunchPlan {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  threads: number;
  graceSeconds: number;
}

/** The launch flags, checked; every mistake is a UsageError naming its flag. */
export function launchPlan(args: Args): LaunchPlan {
  const nproc = args.int('nproc') ?? 1;
  const nnodes = args.int('nnodes') ?? 1;
  const nodeRank = args.int('node-rank') ?? 0;
  if (nproc < 1) throw new UsageError(`--nproc: must be >= 1, got ${nproc}`, 'launch');
  if (nnodes < 1) throw new UsageError(`--nnodes: must be >= 1, got ${nnodes}`, 'launch');
  if (nodeRank < 0 || nodeRank >= nnodes) throw new UsageError(`--node-rank: must be in 0..${nnodes - 1}, got ${nodeRank}`, 'launch');
  const master = args.string('master') ?? '127.0.0.1:29500';
  const m = /^(.+):(\d+)$/.exec(master);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UsageError(`--master: expected HOST:PORT, got '${master}'`, 'launch');
  if (nnodes > 1 && !args.has('master')) {
    throw new UsageError("--master: with --nnodes > 1 every host needs rank 0's HOST:PORT (the same on every host)", 'launch');
  }
  const threads = args.int('threads') ?? Math.max(1, Math.floor(os.availableParallelism() / nproc));
  if (threads < 1) throw new UsageError(`--threads: must be >= 1, got ${threads}`, 'launch');
  const graceSeconds = args.number('grace-seconds') ?? 30;
  if (!(graceSeconds >= 0)) throw new UsageError(`--grace-seconds: must be >= 0, got ${graceSeconds}`, 'launch');
  return { nproc, nnodes, nodeRank, masterAddr: m[1], masterPort: Number(m[2]), threads, graceSeconds };
}

/** The environment of local process `local`: torchrun's variables over the launcher's own. */
export function rankEnv(plan: LaunchPlan, local: number, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    RANK: String(plan.nodeRank * plan.nproc + local),
    WORLD_SIZE: String(plan.nnodes * plan.nproc),
    LOCAL_RANK: String(local),
    LOCAL_WORLD_SIZE: String(plan.nproc),
    GROUP_RANK: String(plan.nodeRank),
    MASTER_ADDR: plan.masterAddr,
    MASTER_PORT: String(plan.masterPort),
    // torchrun's default is 1; here the host's cores are shared out (trainlarge's threads: 'auto' reads it).
    OMP_NUM_THREADS: base.OMP_NUM_THREADS ?? String(plan.threads),
  };
}

interface Exit {
  rank: number;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

function describe(e: Exit): string {
  return e.signal ? `rank ${e.rank} (pid ${e.pid}) was killed by ${e.signal}` : `rank ${e.rank} (pid ${e.pid}) exited with code ${e.code}`;
}

/** Runs the ranks of this host; resolves with the launcher's exit code. */
export async function runLaunch(
  plan: LaunchPlan,
  script: string,
  scriptArgs: string[],
  log = (s: string) => console.error(s),
): Promise<number> {
  const children: { rank: number; proc: ChildProcess }[] = [];
  const exits: Exit[] = [];
  let interrupted: NodeJS.Signals | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const live = () => children.filter((c) => !exits.some((e) => e.rank === c.rank));
  const killRest = () => {
    for (const c of live()) c.proc.kill('SIGTERM');
    // A rank stopped (SIGSTOP) or stuck in native code does not act on SIGTERM.
    setTimeout(() => live().forEach((c) => c.proc.kill('SIGKILL')), 2000).unref();
  };
  const forward = (signal: NodeJS.Signals) => {
    interrupted = signal;
    for (const c of live()) c.proc.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    await new Promise<void>((resolve) => {
      for (let local = 0; local < plan.nproc; local++) {
        const rank = plan.nodeRank * plan.nproc + local;
        // Its own process group: a Ctrl-C at the terminal reaches the launcher, which forwards it once.
        const proc = spawn(process.execPath, [script, ...scriptArgs], { env: rankEnv(plan, local), stdio: 'inherit', detached: true });
        children.push({ rank, proc });
        proc.on('exit', (code, signal) => {
          const e = { rank, pid: proc.pid ?? -1, code, signal };
          exits.push(e);
          const failed = code !== 0;
          if (failed && !interrupted && killTimer === undefined && live().length) {
            log(`trainlarge launch: ${describe(e)}; the other ranks get ${plan.graceSeconds} s to stop on their own`);
            killTimer = setTimeout(killRest, plan.graceSeconds * 1000);
            killTimer.unref();
          }
          if (exits.length === plan.nproc) resolve();
        });
      }
    });
  } finally {
    process.removeListener('SIGINT', forward);
    process.removeListener('SIGTERM', forward);
    if (killTimer) clearTimeout(killTimer);
  }
  const failed = exits.filter((e) => e.code !== 0);
  if (failed.length === 0) return 0;
  // The first to fail is the likely cause; the others usually failed because of it.
  log(`trainlarge launch: ${failed.map(describe).join('; ')}`);
  if (interrupted) return 130;
  const first = failed[0];
  return first.code !== null && first.code !== 0 ? first.code : 1;
}

export const launch: Command = {
  name: 'launch',
  operands: 'SCRIPT [-- ARGS...]',
  passThrough: true,
  brief: 'Runs a script as data-parallel processes (torchrun conventions).',
  summary:
    'Starts SCRIPT (a Node script) as --nproc processes on this host with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and ' +
    "MASTER_PORT set, as torchrun does: a Trainer with distributed: 'auto' in it joins one process group (Gloo over TCP). " +
    'SIGINT/SIGTERM go to every rank; when a rank fails the others get --grace-seconds to stop on their own, and the ' +
    'launcher exits non-zero naming the rank.',
  synopsis: '[--nproc N] [--nnodes M --node-rank K --master HOST:PORT] SCRIPT.js [-- ARGS...]',
  notes:
    'One host:    trainlarge launch --nproc 2 dist/examples/pretrain.js -- --seconds 120\n' +
    'Many hosts:  trainlarge launch --nnodes 2 --node-rank 0 --master 10.0.0.1:29500 --nproc 8 my-script.js   (and --node-rank 1 on the other)',
  flags: [
    { name: 'nproc', kind: 'int', value: 'N', help: 'processes on this host (default 1)' },
    { name: 'nnodes', kind: 'int', value: 'M', help: 'hosts (default 1)' },
    { name: 'node-rank', kind: 'int', value: 'K', help: "this host's index, 0..M-1 (default 0)" },
    { name: 'master', kind: 'string', value: 'HOST:PORT', help: "rank 0's host and a free port (default 127.0.0.1:29500)" },
    { name: 'threads', kind: 'int', help: "OMP_NUM_THREADS of each process (default: this host's cores / N)" },
    {
      name: 'grace-seconds',
      kind: 'number',
      value: 'S',
      help: 'after a rank fails, seconds the others get to report and stop before they are killed (default 30)',
    },
  ],
  run: async (args: Args) => {
    const plan = launchPlan(args);
    const [script, ...rest] = args.positional;
    if (!script) throw new UsageError('launch: name the script to run (SCRIPT.js)', 'launch');
    if (!fs.existsSync(script)) throw new UsageError(`launch: no script at '${script}'`, 'launch');
    process.exitCode = await runLaunch(plan, script, rest);
  },
};
