// A run directory as Trainer.fit uses it: one fit at a time (a lock file with its pid and host, lib/lock.ts), stale temporary
// files removed at the start, and checkpoints that are trusted only when complete: each checkpoint's state
// (weights + optimizer + step) is one file in checkpoints/, and checkpoint.json, written last and
// atomically, lists the complete ones (newest first) with their size and sha256. A process that dies at
// any instant leaves either the previous manifest or the new one, each naming files that exist whole.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TrainConfig } from '../config/train';
import { fileDigest, readJson, RUN_FILES, writeJsonAtomic } from '../io';
import { ModelConfig } from '../config/model';
import { describeHolder, tryLock } from '../lock';

/** How many complete checkpoints stay on disk: the newest, and one to fall back to if it is damaged later. */
const KEEP = 2;

export interface CheckpointEntry {
  step: number;
  /** The state file, relative to the run directory. */
  file: string;
  bytes: number;
  sha256: string;
  trainSeconds: number;
  trainTokens: number;
}

export interface CheckpointManifest {
  format: 'trainlarge-checkpoint';
  version: 1;
  model: ModelConfig;
  train: TrainConfig;
  checkpoints: CheckpointEntry[];
}

/** A checkpoint to resume from, or why there is none. */
export type ResumePoint = { entry: CheckpointEntry; legacy?: boolean; notes: string[] } | { entry?: undefined; notes: string[] };

/**
 * Fault injection for the crash tests: TRAINLARGE_FAULT=kill@POINT:N kills this process with SIGKILL the Nth
 * time it reaches POINT ('state': a checkpoint's state file is written, its manifest not yet; 'manifest':
 * the manifest is written, the views not yet). Unset in normal use.
 */
const reached = new Map<string, number>();
export function faultPoint(point: 'state' | 'manifest'): void {
  const spec = process.env.TRAINLARGE_FAULT;
  if (!spec) return;
  const m = /^kill@(state|manifest):(\d+)$/.exec(spec);
  if (!m) throw new Error(`TRAINLARGE_FAULT: expected kill@state:N or kill@manifest:N, got '${spec}'`);
  const n = (reached.get(point) ?? 0) + 1;
  reached.set(point, n);
  if (m[1] === point && Number(m[2]) === n) process.kill(process.pid, 'SIGKILL');
}

function canonical(o: object): string {
  return JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))));
}

/** A checkpoint is resumed only by a model of its own config (key order aside: a loaded config orders its keys differently). */
function checkSameModel(saved: object, model: ModelConfig, dir: string): void {
  if (canonical(saved) !== canonical(model)) throw new Error(`resume: ${dir} holds a run of another model config; use a new directory`);
}

export class RunDirectory {
  private constructor(
    readonly dir: string,
    private readonly release: () => void,
  ) {}

  /**
   * Takes the directory for one fit: creates it, takes its lock (refusing while another live process or
   * another fit in this one holds it), and removes temporary files that killed writers left behind.
   */
  static open(dir: string): RunDirectory {
    const abs = path.resolve(dir);
    const lockFile = path.join(abs, RUN_FILES.lock);
    try {
      fs.mkdirSync(path.join(abs, RUN_FILES.checkpoints), { recursive: true });
    } catch (e) {
      throw new Error(`fit: cannot use the run directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let release: () => void;
    try {
      const got = tryLock(lockFile);
      if (typeof got !== 'function')
        throw new Error(
          `fit: ${dir} is in use by another fit (${describeHolder(got)}); wait for it to end, or use another directory` +
            (got.host !== os.hostname() ? ` (or delete ${lockFile} if that job is gone)` : ''),
        );
      release = got;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!code) throw e;
      throw new Error(`fit: cannot write to the run directory ${dir}: ${code}`);
    }
    const run = new RunDirectory(abs, release);
    run.removeStale();
    return run;
  }

  /** Gives the directory back (a lock file that cannot be removed, on a directory turned read-only, is stale to the next fit). */
  close(): void {
    this.release();
  }

  private removeStale(): void {
    for (const sub of ['.', RUN_FILES.checkpoints]) {
      for (const f of fs.readdirSync(path.join(this.dir, sub))) {
        if (/\.tmp-\d+$/.test(f)) fs.rmSync(path.join(this.dir, sub, f), { force: true });
      }
    }
  }

  private manifestFile(): string {
    return path.join(this.dir, RUN_FILES.manifest);
  }

  /**
   * The newest checkpoint whose state file is whole (size and sha256 as the manifest says), for a model of
   * `model`'s config; a run directory from before checkpoint.json (config.json + trainer.json +
   * trainer_state.safetensors) also counts. `notes` says what was passed over and why.
   */
  async resumePoint(model: ModelConfig): Promise<ResumePoint> {
    const notes: string[] = [];
    let manifest: CheckpointManifest | undefined;
    if (fs.existsSync(this.manifestFile())) {
      try {
        manifest = await readJson<CheckpointManifest>(this.manifestFile(), 'resume');
        if (manifest.format !== 'trainlarge-checkpoint' || !Array.isArray(manifest.checkpoints))
          throw new Error('not a checkpoint manifest');
      } catch (e) {
        notes.push(`${RUN_FILES.manifest} is unreadable (${(e as Error).message})`);
        manifest = undefined;
      }
    }
    if (manifest) {
      checkSameModel(manifest.model, model, this.dir);
      for (const entry of manifest.checkpoints) {
        const file = path.join(this.dir, entry.file);
        const why = !fs.existsSync(file)
          ? 'its state file is missing'
          : await fileDigest(file).then((d) =>
              d.bytes !== entry.bytes
                ? `its state file has ${d.bytes} bytes, not ${entry.bytes}`
                : d.sha256 !== entry.sha256
                  ? 'its state file does not match its checksum'
                  : '',
            );
        if (!why) return { entry, notes };
        notes.push(`the checkpoint of step ${entry.step} is damaged: ${why}`);
      }
      return { notes };
    }
    // Before checkpoint.json: one state file, trusted when the files written after it are there too.
    const legacy = ['config.json', 'trainer.json', 'trainer_state.safetensors'].map((f) => path.join(this.dir, f));
    if (fs.existsSync(legacy[2])) {
      if (legacy.every((f) => fs.existsSync(f))) {
        const saved = await readJson<{ model: ModelConfig }>(legacy[0], 'resume');
        checkSameModel(saved.model, model, this.dir);
        const t = await readJson<{ step: number; trainSeconds?: number; trainTokens?: number }>(legacy[1], 'resume');
        const d = await fileDigest(legacy[2]);
        return {
          entry: {
            step: t.step,
            file: RUN_FILES.trainerState,
            bytes: d.bytes,
            sha256: d.sha256,
            trainSeconds: t.trainSeconds ?? 0,
            trainTokens: t.trainTokens ?? 0,
          },
          legacy: true,
          notes,
        };
      }
      notes.push(`${RUN_FILES.trainerState} is there without the files written after it (an interrupted first checkpoint)`);
    }
    const stray = fs.readdirSync(path.join(this.dir, RUN_FILES.checkpoints)).filter((f) => f.endsWith('.safetensors'));
    if (stray.length)
      notes.push(`${RUN_FILES.checkpoints}/${stray[0]} has no ${RUN_FILES.manifest} naming it (a checkpoint that never completed)`);
    return { notes };
  }

  /** A new checkpoint's state file name (written by the engine, atomically). */
  stateFile(step: number): string {
    return path.join(RUN_FILES.checkpoints, `step-${String(step).padStart(9, '0')}.safetensors`);
  }

  /**
   * Makes the checkpoint whose state file was just written the newest complete one: the manifest names it
   * (and the previous one) and is renamed into place; then state files it no longer names are removed.
   */
  async commit(entry: Omit<CheckpointEntry, 'bytes' | 'sha256'>, model: ModelConfig, train: TrainConfig): Promise<void> {
    const digest = await fileDigest(path.join(this.dir, entry.file));
    let previous: CheckpointEntry[] = [];
    try {
      previous = (await readJson<CheckpointManifest>(this.manifestFile(), 'checkpoint')).checkpoints ?? [];
    } catch {
      // first checkpoint, or an unreadable manifest: nothing to keep
    }
    const checkpoints = [{ ...entry, ...digest }, ...previous.filter((c) => c.file !== entry.file && c.step < entry.step)].slice(0, KEEP);
    const manifest: CheckpointManifest = { format: 'trainlarge-checkpoint', version: 1, model, train, checkpoints };
    await writeJsonAtomic(this.manifestFile(), manifest);
    faultPoint('manifest');
    const keep = new Set(checkpoints.map((c) => path.basename(c.file)));
    for (const f of fs.readdirSync(path.join(this.dir, RUN_FILES.checkpoints))) {
      if (!keep.has(f)) fs.rmSync(path.join(this.dir, RUN_FILES.checkpoints, f), { force: true });
    }
    // The state file of the layout before checkpoint.json, once a new checkpoint stands in for it.
    fs.rmSync(path.join(this.dir, RUN_FILES.trainerState), { force: true });
  }

  /** Forgets every checkpoint (a fresh start over the leftovers of one that never completed). */
  reset(): void {
    for (const f of [RUN_FILES.manifest, RUN_FILES.trainerState, RUN_FILES.trainer, RUN_FILES.metrics])
      fs.rmSync(path.join(this.dir, f), { force: true });
    fs.rmSync(path.join(this.dir, RUN_FILES.checkpoints), { recursive: true, force: true });
    fs.mkdirSync(path.join(this.dir, RUN_FILES.checkpoints), { recursive: true });
  }
}
