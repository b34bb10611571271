// Data-parallel training's environment: which process group (if any) this process joins and which device its
// model goes on, read from torchrun's environment variables as `trainlarge launch` (lib/cli/launch.ts) or
// torchrun itself sets them. Only reading and checking: the collectives are in lib/train/dist.ts (over
// libtorch's c10d, native/train/dist.cc). It sits below the model, which places itself with rankDevice.
import { Device } from './model';
import { DistBackend, TrainConfig } from './train';

/** The process group a Trainer joins: torchrun's variables, checked, plus the backend and timeout. */
export interface DistSetup {
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
  backend: DistBackend;
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
