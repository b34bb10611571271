// A prepared corpus's files and records (Corpus.prepare writes them, Corpus.open reads them): the manifest
// written last, each job's progress.json, the shard entries with their reader positions, and the names and
// checksums they use.
import { createHash } from 'crypto';
import { Position } from './stream';

export interface ShardEntry {
  /** Path relative to the corpus directory. */
  file: string;
  /** sha256 of the file. */
  sha256: string;
  bytes: number;
  tokens: number;
  tokenBytes: number;
  documents: number;
  /** Characters of text it holds. */
  chars: number;
  /** Reader positions before its first and after its last document: a damaged shard is rebuilt from `start`. */
  start: Position;
  end: Position;
  /** Which share of the inputs wrote it (absent for a corpus prepared by one job). */
  part?: number;
  /** Translation corpora: the target sentences' shard beside this one (`file` holds the sources). */
  target?: { file: string; sha256: string; bytes: number; tokens: number };
}

export interface SplitManifest {
  documents: number;
  tokens: number;
  shards: ShardEntry[];
}

export interface CorpusManifest {
  format: 'trainlarge-corpus';
  version: 2;
  name: string;
  /** 'mlm': documents joined by eos; 'translate': source and target shards, each sentence followed by eos. */
  kind: 'mlm' | 'translate';
  complete: boolean;
  createdAt: string;
  /** sha256 over the inputs (names, sizes, times, first and last bytes), the reading and shard options and the parts. */
  inputs: string;
  sources: {
    package?: string;
    version?: string;
    integrity?: string;
    license?: string;
    file?: string;
    bytes?: number;
    fingerprint?: string;
  }[];
  tokenizer: {
    file: string;
    sha256: string;
    vocabSize: number;
    options?: Record<string, unknown>;
    trainedOn?: string;
    /** The reservoir sample it was trained on: lines kept of lines seen, and their characters. */
    sample?: { lines: number; seen: number; chars: number };
  };
  /** Documents are followed by the eos token in the token stream (RoBERTa's FULL-SENTENCES input). */
  separator: 'eos';
  /** How documents go to valid: "every 20th (file index + document index in the file)" or "the valid files". */
  split: string;
  /** Jobs that prepared it (--part I/N). */
  parts: number;
  splits: { train: SplitManifest; valid: SplitManifest };
  /** Document ids kept out of both splits (e.g. a downstream task's test documents). */
  heldOut: string[];
  /** sha256 over the shard checksums and the tokenizer: one value that names this exact corpus. */
  checksum: string;
}

/** What a job has finished of its share (progress.json in its directory), saved after each shard. */
export interface PartProgress {
  format: 'trainlarge-corpus-progress';
  inputs: string;
  tokenizer: string;
  part: number;
  parts: number;
  complete: boolean;
  splits: { train: ShardEntry[]; valid: ShardEntry[] };
  documentsTsvBytes: number;
}

export const MANIFEST = 'manifest.json';
export const PROGRESS = 'progress.json';
export const DOCUMENTS = 'documents.tsv';
export const TOKENIZER_FILE = 'tokenizer.model';
export const TOKENIZER_INFO = 'tokenizer.info.json';
/** Bumped when the shard layout or the split rule changes: older progress is then not resumed. */
export const PREPARE_VERSION = 2;
export type SplitName = 'train' | 'valid';
export const SPLITS: readonly SplitName[] = ['train', 'valid'];

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function comparePositions(a: Position, b: Position): number {
  return a.file - b.file || a.offset - b.offset;
}
