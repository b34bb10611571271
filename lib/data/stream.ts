// Users' corpora as a stream of documents, whatever their size: the files lib/data/inputs.ts expands (files,
// directories, glob patterns) in plain text, JSONL, TSV and Parquet, gzip- or zstd-compressed. Nothing is read whole:
// text is read in chunks of CHUNK bytes, Parquet a row group at a time, so memory does not grow with the
// corpus. Every document carries the position just after it (file, byte offset or row, line, its index in
// the file): a reader started there goes on with the next document, which is how an interrupted prepare
// resumes without reading the corpus again from the start (compressed files are decompressed from their
// start and skipped up to the offset; plain files and Parquet seek).
import { isUtf8 } from 'buffer';
import * as fs from 'fs';
import * as zlib from 'zlib';
import type { Document } from './documents';
import { InputFile, InputFormat } from './inputs';
import { notUtf8 } from './utf8';

/** Plain text: a document per file, per blank-line separated block, or per line. */
export type TextSplit = 'file' | 'blank-line' | 'line';
export const TEXT_SPLITS: readonly TextSplit[] = ['file', 'blank-line', 'line'];

/** A column: a header name (TSV) or key (JSONL, Parquet), or a 0-based column index (TSV) or array index (JSONL). */
export type Field = string | number;

export interface ReadSpec {
  /** Default: by extension (.jsonl/.ndjson, .tsv, .parquet; anything else is text). */
  format?: InputFormat;
  /** jsonl/tsv/parquet: where the text is (default 'text'; a TSV without a 'text' header uses column 0). */
  textField?: Field;
  /** text: a document per file (default), per blank-line block, or per line. */
  split?: TextSplit;
  /** tsv: whether the first row names the columns; default: when the field is a name. */
  header?: boolean;
  /**
   * Pairs (translation): the second text's field or column (the target; textField is the source). TSV
   * defaults to columns 0 and 1, JSONL and Parquet to 'source' and 'target'. A pair with an empty side is skipped.
   */
  pairField?: Field;
  pairs?: boolean;
}

/** Where a reader stands: the next document starts here. `offset` is a byte of the decompressed text, or a Parquet row. */
export interface Position {
  file: number;
  offset: number;
  /** Lines read before `offset` (text formats). */
  line: number;
  /** Documents of this file before `offset`. */
  docInFile: number;
}

export const START: Position = Object.freeze({ file: 0, offset: 0, line: 0, docInFile: 0 });

/** One document, or one piece of a document too long to hold at once (`more`: the same document goes on). */
export interface StreamDoc {
  id: string;
  text: string;
  /** The target of a pair (ReadSpec.pairs). */
  pair?: string;
  more: boolean;
  file: number;
  docInFile: number;
  /** The position after this document (meaningful when !more). */
  end: Position;
}

/** Bytes read of each file (compressed bytes for compressed files), for progress and ETA. */
export type BytesRead = (file: number, bytes: number) => void;

const CHUNK = 1 << 22;
/** A 'file' document is handed on in pieces of about this many characters (cut at line ends). */
const PIECE_CHARS = 1 << 24;
/** A line longer than this is refused (it could not become one string, and is not text meant for a tokenizer). */
const MAX_LINE_BYTES = 1 << 28;

/** The decompressed bytes of a file from `offset` on, in chunks; `onRead` gets the file's bytes read so far. */
async function* bytesFrom(input: InputFile, offset: number, what: string, onRead: (bytes: number) => void): AsyncGenerator<Buffer> {
  if (input.compression === 'none') {
    let read = offset;
    for await (const chunk of fs.createReadStream(input.path, { start: offset, highWaterMark: CHUNK })) {
      read += (chunk as Buffer).length;
      onRead(read);
      yield chunk as Buffer;
    }
    return;
  }
  let skip = offset;
  const skipping = function* (chunk: Buffer): Generator<Buffer> {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      return;
    }
    yield skip > 0 ? chunk.subarray(skip) : chunk;
    skip = 0;
  };
  let raw = 0;
  const file = fs.createReadStream(input.path, { highWaterMark: CHUNK });
  if (input.compression === 'gzip') {
    const gunzip = zlib.createGunzip({ chunkSize: 1 << 20 });
    file.on('data', (c) => onRead((raw += (c as Buffer).length)));
    file.on('error', (e) => gunzip.destroy(e));
    file.pipe(gunzip);
    try {
      for await (const chunk of gunzip) yield* skipping(chunk as Buffer);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const reason = err.code === 'Z_BUF_ERROR' ? 'truncated (unexpected end of the gzip stream)' : `not valid gzip (${err.message})`;
      throw new Error(`${what}: ${input.path} is ${reason}`);
    } finally {
      file.destroy();
    }
    return;
  }
  // zstd: fzstd's streaming decoder (Node 20's zlib has no zstd).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Decompress } = require('fzstd') as typeof import('fzstd');
  let out: Buffer[] = [];
  const dec = new Decompress((data) => out.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength)));
  const fail = (e: unknown): Error => new Error(`${what}: ${input.path} is not valid zstd (${(e as Error).message})`);
  try {
    for await (const chunk of file) {
      raw += (chunk as Buffer).length;
      onRead(raw);
      try {
        dec.push(chunk as Buffer);
      } catch (e) {
        throw fail(e);
      }
      const ready = out;
      out = [];
      for (const c of ready) yield* skipping(c);
    }
    try {
      dec.push(new Uint8Array(0), true);
    } catch (e) {
      throw new Error(`${what}: ${input.path} is truncated (the zstd stream ends inside a frame: ${(e as Error).message})`);
    }
  } finally {
    file.destroy();
  }
  for (const c of out) yield* skipping(c);
}

interface Line {
  text: string;
  /** 1-based. */
  line: number;
  /** Byte offset just after the line's '\n'. */
  end: number;
}

/**
 * The lines of a file (without '\n', a trailing '\r' or a leading byte-order mark) from `from`, a chunk at a
 * time; bytes that are not UTF-8 are an error naming the file, the byte, its offset and its line.
 */
async function* linesFrom(input: InputFile, from: Position, what: string, onRead: (bytes: number) => void): AsyncGenerator<Line[]> {
  let carry: Buffer | undefined;
  let carryAt = from.offset; // byte offset of carry[0] in the decompressed text
  let line = from.line;
  const check = (buf: Buffer, end: number, at: number, firstLine: number): void => {
    if (!isUtf8(buf.subarray(0, end))) throw notUtf8(`${what}: ${input.path}`, buf.subarray(0, end), at, firstLine);
  };
  const split = (buf: Buffer, end: number): Line[] => {
    check(buf, end, carryAt, line + 1);
    const out: Line[] = [];
    let s = 0;
    while (s < end) {
      let e = buf.indexOf(0x0a, s);
      if (e < 0 || e >= end) e = end;
      let stop = e;
      if (stop > s && buf[stop - 1] === 0x0d) stop--;
      let text = buf.toString('utf8', s, stop);
      if (carryAt + s === 0 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      line++;
      out.push({ text, line, end: carryAt + Math.min(e + 1, end) });
      s = e + 1;
    }
    return out;
  };
  for await (const chunk of bytesFrom(input, from.offset, what, onRead)) {
    const buf: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
    const lastNewline = buf.lastIndexOf(0x0a);
    if (lastNewline < 0) {
      if (buf.length > MAX_LINE_BYTES)
        throw new Error(`${what}: ${input.path}: line ${line + 1} is longer than ${MAX_LINE_BYTES >> 20} MiB; split the text into lines`);
      carry = buf;
      continue;
    }
    const lines = split(buf, lastNewline + 1);
    carryAt += lastNewline + 1;
    carry = lastNewline + 1 < buf.length ? Buffer.from(buf.subarray(lastNewline + 1)) : undefined;
    yield lines;
  }
  if (carry && carry.length > 0) yield split(carry, carry.length);
}

function fieldValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return undefined;
}

/** The record of a JSONL line; errors name the file and line. */
export function parseJsonLine(file: string, line: number, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: line ${line}: bad JSON (${(e as Error).message})`);
  }
  if (value === null || typeof value !== 'object')
    throw new Error(`${file}: line ${line}: expected a JSON object or array, got ${JSON.stringify(value)}`);
  return value as Record<string, unknown>;
}

/** A record's field as a string, or an error naming the file, line and field. */
export function recordField(record: Record<string, unknown>, field: Field, role: string, where: string): string {
  const v = record[field];
  if (v === undefined || v === null) throw new Error(`${where}: no ${role} field ${JSON.stringify(field)}`);
  const s = fieldValue(v);
  if (s === undefined) throw new Error(`${where}: ${role} field ${JSON.stringify(field)} is not a string or number`);
  return s;
}

/** The column of a TSV field given its header (undefined without one). */
export function tsvColumn(file: string, names: string[] | undefined, field: Field, role: string): number {
  if (typeof field === 'number') return field;
  if (!names) throw new Error(`${file}: ${role} column ${JSON.stringify(field)} is a name but the file is read without a header row`);
  const col = names.indexOf(field);
  if (col < 0) throw new Error(`${file}: no ${role} column ${JSON.stringify(field)} in the header (columns: ${names.join(', ')})`);
  return col;
}

interface HyparquetModule {
  asyncBufferFromFile(file: string): Promise<unknown>;
  parquetMetadataAsync(file: unknown): Promise<{
    num_rows: bigint;
    row_groups: { num_rows: bigint }[];
    schema: { name: string }[];
  }>;
  parquetReadObjects(o: {
    file: unknown;
    metadata?: unknown;
    columns?: string[];
    rowStart?: number;
    rowEnd?: number;
    compressors?: unknown;
  }): Promise<Record<string, unknown>[]>;
}

/** Parquet rows from `from.offset`, a row group at a time (hyparquet; zstd, gzip, brotli, lz4 and snappy pages). */
async function* parquetDocs(input: InputFile, index: number, from: Position, spec: ReadSpec, what: string, onRead: BytesRead) {
  const pairs = spec.pairs ?? false;
  const field = spec.textField ?? (pairs ? 'source' : 'text');
  const pairColumn = String(spec.pairField ?? 'target');
  // hyparquet is an ES module; Node 20.19+ loads it with require().
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const hp = require('hyparquet') as HyparquetModule;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { compressors } = require('hyparquet-compressors') as { compressors: unknown };
  let file: unknown, metadata: Awaited<ReturnType<HyparquetModule['parquetMetadataAsync']>>;
  try {
    file = await hp.asyncBufferFromFile(input.path);
    metadata = await hp.parquetMetadataAsync(file);
  } catch (e) {
    throw new Error(`${what}: ${input.path} is not a readable Parquet file (${(e as Error).message})`);
  }
  const column = String(field);
  const names = metadata.schema.slice(1).map((s) => s.name);
  for (const [c, role] of pairs
    ? [
        [column, 'source'],
        [pairColumn, 'target'],
      ]
    : [[column, 'text']])
    if (!names.includes(c))
      throw new Error(`${what}: ${input.path}: no ${role} column ${JSON.stringify(c)} (columns: ${names.join(', ')})`);
  const total = Number(metadata.num_rows);
  let groupStart = 0;
  let docInFile = from.docInFile;
  for (const g of metadata.row_groups) {
    const groupEnd = groupStart + Number(g.num_rows);
    const rowStart = Math.max(groupStart, from.offset);
    if (rowStart < groupEnd) {
      let rows: Record<string, unknown>[];
      try {
        rows = await hp.parquetReadObjects({
          file,
          metadata,
          columns: pairs ? [column, pairColumn] : [column],
          rowStart,
          rowEnd: groupEnd,
          compressors,
        });
      } catch (e) {
        throw new Error(`${what}: ${input.path}: rows ${rowStart + 1}-${groupEnd}: ${(e as Error).message}`);
      }
      const docs: StreamDoc[] = [];
      rows.forEach((r, k) => {
        const row = rowStart + k;
        const where = `${input.path}: row ${row + 1}`;
        const value = (c: string, role: string): string => {
          const v = r[c];
          if (v === undefined || v === null) return ''; // a null text: no document, as an empty one
          const s = fieldValue(v);
          if (s === undefined) throw new Error(`${where}: ${role} field ${JSON.stringify(c)} is not a string`);
          return s.trim();
        };
        const text = value(column, pairs ? 'source' : 'text');
        const pair = pairs ? value(pairColumn, 'target') : undefined;
        if (!text || pair === '') return;
        docs.push({
          id: `${input.path}:${row + 1}`,
          text,
          ...(pairs ? { pair } : {}),
          more: false,
          file: index,
          docInFile: docInFile++,
          end: { file: index, offset: row + 1, line: 0, docInFile },
        });
      });
      onRead(index, Math.round((input.bytes * groupEnd) / Math.max(1, total)));
      if (docs.length) yield docs;
    }
    groupStart = groupEnd;
  }
}

/** The documents of one text-format file (text, JSONL, TSV) from `from`, a chunk at a time. */
async function* textDocs(
  input: InputFile,
  index: number,
  from: Position,
  spec: ReadSpec,
  what: string,
  onRead: BytesRead,
): AsyncGenerator<StreamDoc[]> {
  const split = spec.split ?? 'file';
  let docInFile = from.docInFile;
  const file = input.path;
  const pos = (offset: number, line: number): Position => ({ file: index, offset, line, docInFile });
  const read = (b: number) => onRead(index, b);
  if (input.format === 'text' && spec.pairs)
    throw new Error(
      `${what}: ${file}: pairs are read from TSV, JSONL or Parquet files, not plain text (give --format or a .tsv/.jsonl name)`,
    );
  if (input.format === 'text') {
    if (split === 'line') {
      for await (const lines of linesFrom(input, from, what, read)) {
        const docs: StreamDoc[] = [];
        for (const l of lines) {
          const text = l.text.trim();
          if (!text) continue;
          docInFile++;
          docs.push({ id: `${file}:${l.line}`, text, more: false, file: index, docInFile: docInFile - 1, end: pos(l.end, l.line) });
        }
        if (docs.length) yield docs;
      }
    } else if (split === 'blank-line') {
      let block: string[] = [];
      let start = 0;
      let last: Line | undefined;
      const flush = (docs: StreamDoc[]): void => {
        if (block.length > 0 && last) {
          docInFile++;
          docs.push({
            id: `${file}:${start}`,
            text: block.join('\n'),
            more: false,
            file: index,
            docInFile: docInFile - 1,
            end: pos(last.end, last.line),
          });
        }
        block = [];
      };
      for await (const lines of linesFrom(input, from, what, read)) {
        const docs: StreamDoc[] = [];
        for (const l of lines) {
          if (l.text.trim()) {
            if (block.length === 0) start = l.line;
            block.push(l.text.trimEnd());
            last = l;
          } else flush(docs);
        }
        if (docs.length) yield docs;
      }
      const docs: StreamDoc[] = [];
      flush(docs);
      if (docs.length) yield docs;
    } else {
      // A document per file, handed on in pieces at line ends when it is long; the tokenizer sees whitespace
      // at every cut, as it would inside the whole text.
      let piece: string[] = [];
      let chars = 0;
      let started = false;
      let pendingBlank = 0;
      for await (const lines of linesFrom(input, from, what, read)) {
        const out: StreamDoc[] = [];
        for (const l of lines) {
          if (!l.text.trim()) {
            if (started) pendingBlank++;
            continue;
          }
          if (!started) {
            started = true;
            l.text = l.text.trimStart();
          }
          for (; pendingBlank > 0; pendingBlank--) piece.push('');
          piece.push(l.text);
          chars += l.text.length + 1;
          if (chars >= PIECE_CHARS) {
            out.push({ id: file, text: piece.join('\n'), more: true, file: index, docInFile: 0, end: pos(l.end, l.line) });
            piece = [];
            chars = 0;
          }
        }
        if (out.length) yield out;
      }
      if (!started) throw new Error(`${what}: ${file} is empty (only whitespace)`);
      const text = piece.join('\n').trimEnd();
      yield [{ id: file, text, more: false, file: index, docInFile: 0, end: { file: index + 1, offset: 0, line: 0, docInFile: 0 } }];
      return;
    }
    return;
  }
  // JSONL and TSV: a document (or pair) per line, its text in a field.
  const pairs = spec.pairs ?? false;
  let field = spec.textField ?? (pairs ? (input.format === 'tsv' ? 0 : 'source') : undefined);
  const pairField = spec.pairField ?? (input.format === 'tsv' ? 1 : 'target');
  let header = spec.header;
  let names: string[] | undefined;
  let col = -1;
  let pairCol = -1;
  const fromStart = from.offset === 0;
  if (input.format === 'tsv') {
    // The header is the file's first line, wherever the reader starts.
    const first = await firstLine(input, what);
    if (field === undefined) {
      field = 'text';
      if (header === undefined && !first.split('\t').includes('text')) {
        field = 0;
        header = false;
      }
    }
    if (header === undefined) header = typeof field === 'string' || (pairs && typeof pairField === 'string');
    names = header ? first.split('\t') : undefined;
    col = tsvColumn(file, names, field, pairs ? 'source' : 'text');
    if (pairs) pairCol = tsvColumn(file, names, pairField, 'target');
  }
  const textField = field ?? 'text';
  const role = pairs ? 'source' : 'text';
  let skipHeader = input.format === 'tsv' && header && fromStart;
  for await (const lines of linesFrom(input, from, what, read)) {
    const docs: StreamDoc[] = [];
    for (const l of lines) {
      if (!l.text.trim()) continue;
      if (skipHeader) {
        skipHeader = false;
        continue;
      }
      const where = `${file}: line ${l.line}`;
      let raw: string;
      let rawPair = '';
      if (input.format === 'jsonl') {
        const record = parseJsonLine(file, l.line, l.text);
        raw = recordField(record, textField, role, where);
        if (pairs) rawPair = recordField(record, pairField, 'target', where);
      } else {
        const cells = l.text.split('\t');
        const need = Math.max(col, pairCol);
        if (need >= cells.length) {
          const [c, f, r] = col >= cells.length ? [col, field, role] : [pairCol, pairField, 'target'];
          throw new Error(`${where}: has ${cells.length} columns, no ${r} column ${typeof f === 'number' ? c : JSON.stringify(f)}`);
        }
        raw = cells[col];
        if (pairs) rawPair = cells[pairCol];
      }
      const text = raw.trim();
      const pair = pairs ? rawPair.trim() : undefined;
      if (!text || pair === '') continue;
      docInFile++;
      docs.push({
        id: `${file}:${l.line}`,
        text,
        ...(pairs ? { pair } : {}),
        more: false,
        file: index,
        docInFile: docInFile - 1,
        end: pos(l.end, l.line),
      });
    }
    if (docs.length) yield docs;
  }
}

/** The first line of a (possibly compressed) file. */
async function firstLine(input: InputFile, what: string): Promise<string> {
  for await (const lines of linesFrom(input, START, what, () => {})) {
    const l = lines.find((x) => x.text.trim());
    if (l) return l.text;
  }
  return '';
}

/**
 * The documents of `inputs` from position `from` on, in order, a batch at a time. Empty texts are skipped; a
 * file that holds no document at all is an error (a silently short corpus is worse than none).
 */
export async function* streamDocuments(
  inputs: InputFile[],
  spec: ReadSpec | ((file: number) => ReadSpec),
  from: Position = START,
  onRead: BytesRead = () => {},
  what = 'files',
): AsyncGenerator<StreamDoc[]> {
  const specOf = typeof spec === 'function' ? spec : () => spec;
  for (let i = from.file; i < inputs.length; i++) {
    const input = inputs[i];
    const s = specOf(i);
    const split = s.split ?? 'file';
    if (!TEXT_SPLITS.includes(split))
      throw new Error(`split: must be one of ${TEXT_SPLITS.map((t) => `'${t}'`).join(', ')}, got ${JSON.stringify(split)}`);
    const start = i === from.file ? from : { ...START, file: i };
    const label = `${what}[${i}]`;
    let any = start.docInFile > 0;
    const docs = input.format === 'parquet' ? parquetDocs(input, i, start, s, label, onRead) : textDocs(input, i, start, s, label, onRead);
    for await (const batch of docs) {
      any = true;
      yield batch;
    }
    if (!any) throw new Error(`${label}: ${input.path} is empty (no document with text)`);
    onRead(i, input.bytes);
  }
}

/** Every document of `inputs`, in memory (for small inputs: tokenizer training texts, tests, tasks). */
export async function collectDocuments(inputs: InputFile[], spec: ReadSpec, what = 'files'): Promise<Document[]> {
  const out: Document[] = [];
  let pending: StreamDoc | undefined;
  for await (const batch of streamDocuments(inputs, spec, START, undefined, what)) {
    for (const d of batch) {
      if (pending) pending = { ...pending, text: `${pending.text}\n${d.text}`, more: d.more };
      else pending = d;
      if (!pending.more) {
        out.push({ id: pending.id, text: pending.text });
        pending = undefined;
      }
    }
  }
  return out;
}
