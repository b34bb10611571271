// Parallel corpora from your own files: TSV or JSONL pairs for train, and valid/test when you have them;
// every error names the split, the file and the line. loadParallelCorpus (lib/data/parallel.ts) reads them.
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import type { Split } from './documents';
import { readTextFile } from './files';
import { corpusChecksum, ParallelManifest, ParallelSplit, ParallelSplitManifest, sha256, splitManifest, SPLITS } from './pairs';

const FieldSchema = z.union([z.string().min(1), z.number().int().min(0)]);

const PairFilesSchema = z
  .object({
    files: z.array(z.string().min(1)).min(1),
    format: z.enum(['tsv', 'jsonl']),
    /** JSONL: the key (default 'source'); TSV: a 0-based column (default 0) or a header name. */
    sourceField: FieldSchema.optional(),
    /** JSONL: the key (default 'target'); TSV: a 0-based column (default 1) or a header name. */
    targetField: FieldSchema.optional(),
  })
  .strict();

export const ParallelFilesSpecSchema = z
  .object({
    name: z.string().min(1),
    train: PairFilesSchema,
    valid: PairFilesSchema.optional(),
    test: PairFilesSchema.optional(),
  })
  .strict();

/** Files of your own pairs: TSV (two tab-separated columns, or the columns sourceField/targetField name) or JSONL. */
export type ParallelFiles = z.input<typeof PairFilesSchema>;
/** Your own corpus: train files, and valid/test files when you have them (no pairs are carved out of train). */
export type ParallelFilesSpec = z.input<typeof ParallelFilesSpecSchema>;

/** The pairs of one split of your files; every error names the split, the file and the line. */
async function readPairFiles(spec: z.output<typeof PairFilesSchema>, split: Split): Promise<ParallelSplit> {
  const out: ParallelSplit = { source: [], target: [], ids: [] };
  const tsv = spec.format === 'tsv';
  const sourceField = spec.sourceField ?? (tsv ? 0 : 'source');
  const targetField = spec.targetField ?? (tsv ? 1 : 'target');
  for (const [index, file] of spec.files.entries()) {
    let text: string;
    try {
      text = await readTextFile(file, index);
    } catch (e) {
      throw new Error(`${split}.${(e as Error).message}`);
    }
    const where = (line: number): string => `${split}.files[${index}] ${file}: line ${line}`;
    const lines = text
      .split('\n')
      .map((t, i) => ({ line: i + 1, text: t }))
      .filter((l) => l.text.trim().length > 0);
    if (tsv) {
      // String fields name columns of a header row; numbers are 0-based columns of headerless rows.
      const header = typeof sourceField === 'string' || typeof targetField === 'string' ? lines.shift() : undefined;
      const names = header?.text.split('\t').map((c) => c.trim());
      const column = (field: string | number, role: string): number => {
        if (typeof field === 'number') return field;
        const col = names?.indexOf(field) ?? -1;
        if (col < 0)
          throw new Error(
            `${split}.${role}Field: no column ${JSON.stringify(field)} in the header of ${file} (columns: ${names?.join(', ')})`,
          );
        return col;
      };
      const sc = column(sourceField, 'source');
      const tc = column(targetField, 'target');
      // Two columns by default; with fields given, every row has as many as the first (or the header).
      const expected =
        spec.sourceField === undefined && spec.targetField === undefined ? 2 : (names?.length ?? lines[0]?.text.split('\t').length);
      for (const { line, text: t } of lines) {
        const cells = t.split('\t');
        if (cells.length !== expected) {
          throw new Error(
            `${where(line)}: ${cells.length} tab-separated column${cells.length === 1 ? '' : 's'}, expected ${expected}` +
              (expected === 2 ? ' (source<TAB>target)' : ''),
          );
        }
        for (const [col, role] of [
          [sc, 'source'],
          [tc, 'target'],
        ] as const) {
          if (col >= cells.length) throw new Error(`${where(line)}: no ${role} column ${col} (the row has ${cells.length})`);
          if (!cells[col].trim()) throw new Error(`${where(line)}: empty ${role} (column ${col})`);
        }
        out.source.push(cells[sc].trim());
        out.target.push(cells[tc].trim());
        out.ids.push(`${file}:${line}`);
      }
    } else {
      for (const { line, text: t } of lines) {
        let value: unknown;
        try {
          value = JSON.parse(t);
        } catch (e) {
          throw new Error(`${where(line)}: bad JSON (${(e as Error).message})`);
        }
        if (value === null || typeof value !== 'object' || Array.isArray(value))
          throw new Error(`${where(line)}: expected a JSON object with ${JSON.stringify(sourceField)} and ${JSON.stringify(targetField)}`);
        const record = value as Record<string, unknown>;
        const get = (field: string | number, role: string): string => {
          const v = record[field];
          if (v === undefined || v === null) throw new Error(`${where(line)}: no ${role} field ${JSON.stringify(field)}`);
          if (typeof v !== 'string')
            throw new Error(`${where(line)}: ${role} field ${JSON.stringify(field)} is a ${typeof v}, expected a string`);
          if (!v.trim()) throw new Error(`${where(line)}: empty ${role} field ${JSON.stringify(field)}`);
          return v.replace(/\s+/g, ' ').trim();
        };
        out.source.push(get(sourceField, 'source'));
        out.target.push(get(targetField, 'target'));
        out.ids.push(`${file}:${line}`);
      }
    }
  }
  if (out.ids.length === 0) throw new Error(`${split}: no pairs in ${spec.files.join(', ')}`);
  return out;
}

export async function loadPairFiles(
  spec: z.output<typeof ParallelFilesSpecSchema>,
): Promise<{ splits: Record<Split, ParallelSplit>; manifest: ParallelManifest }> {
  const empty = (): ParallelSplit => ({ source: [], target: [], ids: [] });
  const splits: Record<Split, ParallelSplit> = {
    train: await readPairFiles(spec.train, 'train'),
    valid: spec.valid ? await readPairFiles(spec.valid, 'valid') : empty(),
    test: spec.test ? await readPairFiles(spec.test, 'test') : empty(),
  };
  const files = SPLITS.flatMap((s) => spec[s]?.files ?? []);
  const sources = await Promise.all(
    files.map(async (f) => {
      const data = await fs.promises.readFile(f);
      return { file: path.resolve(f), bytes: data.length, sha256: sha256(data) };
    }),
  );
  const fileOf = (id: string): string => id.slice(0, id.lastIndexOf(':'));
  const manifestSplits = Object.fromEntries(SPLITS.map((s) => [s, splitManifest(splits[s], fileOf)])) as Record<
    Split,
    ParallelSplitManifest
  >;
  const manifest: ParallelManifest = {
    format: 'trainlarge-parallel',
    version: 1,
    name: spec.name,
    description: `your files: ${files.join(', ')}`,
    split: 'as given: train, valid and test files',
    createdAt: new Date().toISOString(),
    sources,
    splits: manifestSplits,
    dropped: {},
    checksum: corpusChecksum(manifestSplits),
  };
  return { splits, manifest };
}
