import * as fs from 'fs';
import * as path from 'path';

/** Writes a file so that a crash never leaves half of it: temporary name, fsync, rename. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await fs.promises.open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, file);
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
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

/** The files of a run directory. */
export const RUN_FILES = {
  config: 'config.json',
  weights: 'model.safetensors',
  trainerState: 'trainer_state.safetensors',
  trainer: 'trainer.json',
  metrics: 'metrics.jsonl',
} as const;
