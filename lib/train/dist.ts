// Data-parallel training's collectives: rank 0's decisions shared with every rank and values gathered from
// them, over libtorch's c10d (native/train/dist.cc). Which group a process joins is read from torchrun's
// environment in lib/config/dist.ts.
import { DistSetup } from '../config/dist';
import { native } from '../native';

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
