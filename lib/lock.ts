// Lock files: one writer at a time for a run directory, a sweep's shared files, or a model of a sweep that
// several jobs (Slurm array tasks, Kubernetes Jobs, two shells) work through at once. A lock file holds
// "PID HOST". On the host that wrote it, a lock whose process is gone is stale and taken over. A lock written
// on another host (a shared filesystem) cannot be checked from here, so it counts as held: the error names its
// file, to delete by hand if that job is known to be gone.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** Who holds a lock: its process and host. */
export interface LockHolder {
  pid: number;
  host: string;
}

/** Lock files this process holds (a second take of one of them, from the same process, is refused). */
const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): LockHolder | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined; // released meanwhile
  }
  const [pid, host] = text.trim().split(/\s+/);
  // A lock of the pid-only format (before hosts were written) is this host's.
  return { pid: Number.parseInt(pid, 10), host: host || os.hostname() };
}

function isStale(file: string, h: LockHolder): boolean {
  if (h.host !== os.hostname()) return false;
  if (!Number.isInteger(h.pid)) return true;
  return h.pid === process.pid ? !held.has(file) : !alive(h.pid);
}

/** "process 123" or "process 123 on host gpu7", for errors. */
export function describeHolder(h: LockHolder): string {
  return `process ${h.pid}${h.host !== os.hostname() ? ` on host ${h.host}` : ''}`;
}

/**
 * Takes `file` as a lock: returns its release function, or the live holder when another process (or this one)
 * has it. A stale lock (its process gone, on this host) is taken over.
 */
export function tryLock(file: string): (() => void) | LockHolder {
  const abs = path.resolve(file);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(abs, `${process.pid} ${os.hostname()}\n`, { flag: 'wx' });
      held.add(abs);
      return () => {
        held.delete(abs);
        try {
          fs.rmSync(abs, { force: true });
        } catch {
          // a directory turned read-only: the next taker sees a dead pid and takes over
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = readHolder(abs);
    if (holder && !isStale(abs, holder)) return holder;
    if (holder) fs.rmSync(abs, { force: true }); // left by a process that died
  }
  return readHolder(abs) ?? { pid: Number.NaN, host: os.hostname() };
}

/**
 * Runs `fn` holding `file`, waiting while another process (or another task of this one) holds it: short critical
 * sections, such as preparing shared data or rewriting a shared results file. Not re-entrant: `fn` must not take
 * `file` again. Gives up after `timeoutSeconds` with an error naming the holder.
 */
export async function withLock<T>(file: string, fn: () => Promise<T>, opts: { timeoutSeconds?: number; what?: string } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutSeconds ?? 3600) * 1000;
  for (;;) {
    const got = tryLock(file);
    if (typeof got === 'function') {
      try {
        return await fn();
      } finally {
        got();
      }
    }
    if (Date.now() > deadline)
      throw new Error(
        `${opts.what ?? file}: still held by ${describeHolder(got)} after ${opts.timeoutSeconds ?? 3600} s (${file}); ` +
          'delete that file if the job that wrote it is gone',
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}
