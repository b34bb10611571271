import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { native } from './native';

/**
 * Writes a file so that a crash never leaves half of it: temporary name, fsync, rename, fsync of the
 * folder. The engine's one implementation (native/io/atomic_file.cc), which checkpoints use too.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  await native().writeFileAtomic(file, data);
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/** A CSV file: the header line, then one line per row (values already formatted; none holds a comma). */
export async function writeCsvAtomic(file: string, header: string[], rows: (string | number)[][]): Promise<void> {
  await writeFileAtomic(file, [header.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n');
}

export async function readJson<T>(file: string, what: string): Promise<T> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`${what}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`${what}: ${file} is not valid JSON`);
  }
}

/** sha256 and size of a file, streamed. */
export async function fileDigest(file: string): Promise<{ bytes: number; sha256: string }> {
  const h = crypto.createHash('sha256');
  let bytes = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 22 })) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha256: h.digest('hex') };
}

/**
 * The files of a run directory. `checkpoint.json` is written last, atomically, and names the complete
 * checkpoints (newest first) by their state files in `checkpoints/` with size and sha256: nothing else is
 * trusted on resume. config.json, model.safetensors and trainer.json are views of the newest checkpoint,
 * for Transformer.load(dir) and for people. `trainer_state.safetensors` is the single state file of run
 * directories written before checkpoint.json existed (still resumed). `.lock` holds the pid of the fit
 * writing there.
 */
export const RUN_FILES = {
  config: 'config.json',
  weights: 'model.safetensors',
  manifest: 'checkpoint.json',
  checkpoints: 'checkpoints',
  trainerState: 'trainer_state.safetensors',
  trainer: 'trainer.json',
  metrics: 'metrics.jsonl',
  lock: '.lock',
} as const;
