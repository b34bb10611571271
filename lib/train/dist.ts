// Data-parallel training: which process group (if any) a Trainer joins, read from torchrun's environment
// variables as `trainlarge launch` (lib/cli/launch.ts) or torchrun itself sets them. The collectives are
// libtorch's c10d (native/train/dist.cc); this only decides and checks, before any native work.
import { Device } from '../config/model';
import { TrainConfig } from '../config/train';
import { native } from '../native';

/** The process group a Trainer joins: torchrun's variables, checked, plus the backend and timeout. */
export interface DistSetup {
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
  backend: 'auto' | 'gloo' | 'nccl';
  timeoutSeconds: number;
}

/** torchrun's variables, in the order they are checked. */
export const DIST_ENV = ['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'] as const;

/**
 * The process group `distributed` asks for in this environment; undefined for one process ('off', no
 * torchrun variables, or WORLD_SIZE=1). A partial or malformed environment throws one sentence naming the
 * variables, so a launch mistake never trains alone silently.
 */
export function resolveDistributed(setting: TrainConfig['distributed'], env: NodeJS.ProcessEnv = process.env): DistSetup | undefined {
  if (setting === 'off') return undefined;
  const given = DIST_ENV.filter((k) => env[k] !== undefined && env[k] !== '');
  if (given.length === 0) return undefined;
  const missing = DIST_ENV.filter((k) => !given.includes(k));
  if (missing.length) {
    throw new Error(
      `distributed: the environment sets ${given.join(', ')} but not ${missing.join(', ')}; ` +
        'start every rank with `trainlarge launch` (or torchrun), or unset them to train in one process',
    );
  }
  const int = (name: string, min: number, max: number): number => {
    const raw = env[name]!;
    const v = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || v < min || v > max)
      throw new Error(`distributed: ${name} must be an integer in ${min}..${max}, got '${raw}'`);
    return v;
  };
  const worldSize = int('WORLD_SIZE', 1, 1 << 20);
  const rank = int('RANK', 0, 1 << 20);
  if (rank >= worldSize) throw new Error(`distributed: RANK must be below WORLD_SIZE (${worldSize}), got ${rank}`);
  const masterPort = int('MASTER_PORT', 1, 65535);
  const localRank = env.LOCAL_RANK ? int('LOCAL_RANK', 0, 1 << 20) : rank;
  if (worldSize === 1) return undefined;
  const options = typeof setting === 'object' ? setting : { backend: 'auto' as const, timeoutSeconds: 300 };
  return { rank, worldSize, localRank, masterAddr: env.MASTER_ADDR!.trim(), masterPort, ...options };
}

/**
 * The device a model goes on in this process: under a launch of several processes (LOCAL_RANK set,
 * WORLD_SIZE > 1), 'cuda', and 'auto' on a host with GPUs, mean this host's GPU LOCAL_RANK (modulo the
 * count, so extra ranks share), as torchrun's users choose with torch.cuda.set_device(local_rank): NCCL
 * needs one GPU per rank. An explicit 'cuda:N' and 'cpu' are kept; so is everything in a lone process.
 */
export function rankDevice(device: Device, cudaDevices: () => number, env: NodeJS.ProcessEnv = process.env): Device {
  if (device !== 'cuda' && device !== 'auto') return device;
  const local = env.LOCAL_RANK?.trim() ?? '';
  if (!/^\d+$/.test(local) || !(Number(env.WORLD_SIZE) > 1)) return device;
  const count = cudaDevices();
  if (count === 0) return device; // 'auto' goes to the CPU; 'cuda' fails in the engine with its reason
  return `cuda:${Number(local) % count}`;
}

/** Whether this process writes for its group: rank 0, or a process training alone. */
export function isRank0(setting: TrainConfig['distributed'], env: NodeJS.ProcessEnv = process.env): boolean {
  return (resolveDistributed(setting, env)?.rank ?? 0) === 0;
}

/**
 * Rank 0's decision on every rank of the process group `setup` describes: rank 0 runs `decide` and every rank
 * gets its value (JSON), or its error (thrown on every rank, the others' naming rank 0). The other ranks wait
 * in the group's broadcast meanwhile (up to its timeoutSeconds). One process (`setup` undefined) just decides.
 */
export async function decideOnRank0<T>(setup: DistSetup | undefined, decide: () => Promise<T>): Promise<T> {
  if (!setup) return decide();
  const config = groupConfig(setup);
  if (setup.rank !== 0) {
    const got = JSON.parse(await native().distShare(config, null)) as { value?: T; error?: string };
    if (got.error !== undefined) throw new Error(`${got.error} (on rank 0)`);
    return got.value as T;
  }
  let value: T;
  try {
    value = await decide();
  } catch (e) {
    await native().distShare(config, JSON.stringify({ error: (e as Error).message }));
    throw e;
  }
  await native().distShare(config, JSON.stringify({ value: value ?? null }));
  return value;
}

/** Every rank's `value` (JSON), in rank order, on every rank of the process group `setup` describes. */
export async function gatherOnRanks<T>(setup: DistSetup, value: T): Promise<T[]> {
  return (await native().distGather(groupConfig(setup), JSON.stringify(value))).map((t) => JSON.parse(t) as T);
}

/** The native side's description of the group (this process's, shared with its trainers). */
function groupConfig(setup: DistSetup) {
  return {
    rank: setup.rank,
    worldSize: setup.worldSize,
    masterAddr: setup.masterAddr,
    masterPort: setup.masterPort,
    backend: setup.backend,
    timeoutSeconds: setup.timeoutSeconds,
  };
}
