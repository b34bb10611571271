// A parallel corpus's pieces, whoever made it (a built-in, lib/data/builtin/parallel.ts, or your files,
// lib/data/parallel-files.ts): splits of (source, target) pairs, the manifest that describes them, and the
// checksums that name them.
import { createHash } from 'crypto';
import type { Split } from './documents';

/** One split: source[i] translates to target[i]; ids[i] names where the pair comes from ('Gen.1.1', 'apt.html#3', 'pairs.tsv:12'). */
export interface ParallelSplit {
  source: string[];
  target: string[];
  ids: string[];
}

export interface ParallelSplitManifest {
  pairs: number;
  /** Books, chapters or files the pairs come from (a unit is in one split only). */
  units: number;
  /** sha256 of the split as `id<TAB>source<TAB>target` lines. */
  sha256: string;
}

export interface ParallelManifest {
  format: 'trainlarge-parallel';
  version: 1;
  name: string;
  /** Language codes of the stored direction (built-ins: 'en' and the other language); absent for your files. */
  source?: string;
  target?: string;
  description: string;
  /** How train/valid/test are made. */
  split: string;
  createdAt: string;
  sources: {
    debianPackage?: string;
    /** Installed version (dpkg), and the version the corpus was measured with. */
    version?: string;
    pinned?: string;
    license?: string;
    file?: string;
    files?: number;
    bytes: number;
    sha256: string;
  }[];
  splits: Record<Split, ParallelSplitManifest>;
  /** Pairs left out while preparing, by reason. */
  dropped: Record<string, number>;
  /** sha256 over the preparation's version and its input files: the cached corpus is rebuilt when it changes. */
  inputs?: string;
  /** Wall time of the preparation. */
  prepareSeconds?: number;
  /** sha256 over the three splits' checksums: one value that names this exact corpus. */
  checksum: string;
}

export const SPLITS: readonly Split[] = ['train', 'valid', 'test'];

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A split as its TSV file holds it: `id<TAB>source<TAB>target` lines (the texts hold no tabs or newlines). */
export function splitLines(s: ParallelSplit): string {
  return s.ids.map((id, i) => `${id}\t${s.source[i]}\t${s.target[i]}\n`).join('');
}

export function splitManifest(s: ParallelSplit, units: (id: string) => string): ParallelSplitManifest {
  return { pairs: s.ids.length, units: new Set(s.ids.map(units)).size, sha256: sha256(splitLines(s)) };
}

export function corpusChecksum(splits: Record<Split, ParallelSplitManifest>): string {
  return sha256(SPLITS.map((s) => splits[s].sha256).join(''));
}
