import * as fs from 'fs';
import type { Document, Example } from './documents';
import { expandInputs, InputFormat } from './inputs';
import { collectDocuments, parseJsonLine, recordField } from './stream';
import { firstInvalidUtf8, notUtf8 } from './utf8';

export { firstInvalidUtf8 };

/**
 * Loaders for users' own corpora (the paper's Wikipedia/BookCorpus text, MNLI or SST-2 TSV/JSONL),
 * producing the same Document and Example shapes as the built-in sources. Every error names the file
 * and, where it applies, the line or byte offset.
 */

/** How a file holds its texts: plain text, one JSON object per line, or tab-separated columns. */
export type DocumentFormat = InputFormat;

/** A column: a header name (TSV) or key (JSONL), or a 0-based column index (TSV) or array index (JSONL). */
export type Field = string | number;

export interface DocumentSpec {
  files: string[];
  /** 'text' (default): plain text; 'jsonl': one JSON object per line; 'tsv': tab-separated columns. */
  format?: DocumentFormat;
  /** jsonl/tsv: where the text is (default 'text'; a TSV without a 'text' header uses column 0). */
  textField?: Field;
  /** text format: a document per file (default), per blank-line separated block, or per line. */
  split?: 'file' | 'blank-line' | 'line';
  /** tsv: whether the first row names the columns; default: when a field is a name. */
  header?: boolean;
}

export interface ExampleSpec {
  files: string[];
  format: Extract<DocumentFormat, 'jsonl' | 'tsv'>;
  textField: Field;
  /** Sentence-pair tasks (MNLI): the second segment's field (the hypothesis; textField is the premise). */
  pairField?: Field;
  labelField: Field;
  /** The label names in label order; default: in the order they first occur. */
  labels?: string[];
  /** A field naming the document an example comes from (splits keep a document together); default: file:line. */
  docField?: Field;
  header?: boolean;
}

/** Files read whole (labelled tasks, small pair files) stay well below V8's largest string (~512 MiB). */
const MAX_WHOLE_FILE = 256 * 2 ** 20;

/**
 * The text of `files[index]`: a missing path, a directory, an empty file or bytes that are not UTF-8
 * are errors naming the file. A byte-order mark is dropped and CRLF line ends become '\n'.
 */
export async function readTextFile(file: string, index: number): Promise<string> {
  const what = `files[${index}]`;
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${what}: no such file: ${file}`);
    throw new Error(`${what}: cannot read ${file}: ${code ?? (e as Error).message}`);
  }
  if (stat.isDirectory()) throw new Error(`${what}: ${file} is a directory, not a file`);
  if (stat.size > MAX_WHOLE_FILE)
    throw new Error(
      `${what}: ${file} is ${(stat.size / 2 ** 20).toFixed(0)} MiB, more than the ${MAX_WHOLE_FILE / 2 ** 20} MiB read whole here; ` +
        'prepare large corpora with Corpus.prepare / trainlarge data prepare, which stream them',
    );
  let bytes: Uint8Array;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (e) {
    throw new Error(`${what}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (bytes.length === 0) throw new Error(`${what}: ${file} is empty`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw notUtf8(`${what}: ${file}`, bytes);
  }
  if (text.trim().length === 0) throw new Error(`${what}: ${file} is empty (only whitespace)`);
  return text.replace(/\r\n?/g, '\n');
}

function requireFiles(files: unknown, what: string): string[] {
  if (!Array.isArray(files) || files.length === 0 || !files.every((f) => typeof f === 'string' && f.length > 0)) {
    throw new Error(`${what}: files must be a non-empty list of paths`);
  }
  return files as string[];
}

/** The non-empty lines of a text with their 1-based line numbers. */
function numberedLines(text: string): { line: number; text: string }[] {
  return text
    .split('\n')
    .map((t, i) => ({ line: i + 1, text: t }))
    .filter((l) => l.text.trim().length > 0);
}

/** A record of a JSONL or TSV file: get(field) gives the field as a string or throws naming the line. */
interface Row {
  line: number;
  get(field: Field, role: string): string;
}

function jsonlRows(file: string, text: string): Row[] {
  return numberedLines(text).map(({ line, text: t }) => {
    const record = parseJsonLine(file, line, t);
    return { line, get: (field: Field, role: string): string => recordField(record, field, role, `${file}: line ${line}`) };
  });
}

/**
 * TSV rows (no quoting, as GLUE writes them). With a header, string fields name columns; numbers
 * are 0-based indices either way.
 */
function tsvRows(file: string, text: string, header: boolean): Row[] {
  const lines = numberedLines(text);
  const names = header ? (lines.shift()?.text.split('\t') ?? []) : [];
  return lines.map(({ line, text: t }) => {
    const cells = t.split('\t');
    return {
      line,
      get(field: Field, role: string): string {
        let col: number;
        if (typeof field === 'number') col = field;
        else {
          col = names.indexOf(field);
          if (col < 0) {
            throw new Error(
              header
                ? `${file}: no ${role} column ${JSON.stringify(field)} in the header (columns: ${names.join(', ')})`
                : `${file}: ${role} column ${JSON.stringify(field)} is a name but the file is read without a header row`,
            );
          }
        }
        if (col >= cells.length)
          throw new Error(
            `${file}: line ${line}: has ${cells.length} columns, no ${role} column ${typeof field === 'number' ? field : JSON.stringify(field)}`,
          );
        return cells[col];
      },
    };
  });
}

/** Rows of a JSONL or TSV file; a TSV has a header unless told otherwise or every field is an index. */
function rowsOf(file: string, text: string, format: 'jsonl' | 'tsv', fields: (Field | undefined)[], header: boolean | undefined): Row[] {
  if (format === 'jsonl') return jsonlRows(file, text);
  return tsvRows(file, text, header ?? fields.some((f) => typeof f === 'string'));
}

/**
 * Documents from users' files, in memory (for corpora of any size, Corpus.prepare streams them). `files` are
 * paths, directories (read recursively) or glob patterns; .gz and .zst files are decompressed. text: a document
 * per file (ids are the paths), per blank-line separated block or per line (ids 'path:line'); jsonl, tsv and
 * parquet: a document per line or row, its text in `textField` (default 'text'; a TSV whose first row has no
 * 'text' column reads column 0 without a header). Empty texts are skipped.
 */
export async function readDocuments(spec: DocumentSpec): Promise<Document[]> {
  const what = 'files';
  if (!Array.isArray(spec.files) || spec.files.length === 0) throw new Error(`readDocuments: files must be a non-empty list of paths`);
  const split = spec.split ?? 'file';
  if (!['file', 'blank-line', 'line'].includes(split))
    throw new Error(`readDocuments: split must be 'file', 'blank-line' or 'line', got ${JSON.stringify(split)}`);
  if (spec.format !== undefined && !['text', 'jsonl', 'tsv', 'parquet'].includes(spec.format))
    throw new Error(`readDocuments: format must be 'text', 'jsonl', 'tsv' or 'parquet', got ${JSON.stringify(spec.format)}`);
  const inputs = expandInputs(spec.files, { format: spec.format ?? 'text' }, what);
  return collectDocuments(inputs, { textField: spec.textField, split, header: spec.header }, what);
}

/**
 * Labelled examples from users' JSONL or TSV files (e.g. SST-2's 'sentence\tlabel', MNLI's
 * 'gold_label'). Labels are strings ('1' and 1 are the same label); with `labels` given, any other
 * label is an error naming the line, else labels are numbered in the order they first occur.
 */
export async function readExamples(spec: ExampleSpec): Promise<{ labels: string[]; examples: Example[] }> {
  const files = requireFiles(spec.files, 'readExamples');
  if (spec.format !== 'jsonl' && spec.format !== 'tsv')
    throw new Error(`readExamples: format must be 'jsonl' or 'tsv', got ${JSON.stringify(spec.format)}`);
  if (spec.textField === undefined || spec.labelField === undefined) throw new Error('readExamples: textField and labelField are required');
  const fixed = spec.labels !== undefined;
  const labels = fixed ? [...(spec.labels as string[])] : [];
  if (fixed && (labels.length === 0 || new Set(labels).size !== labels.length))
    throw new Error(`readExamples: labels must be distinct and non-empty, got ${JSON.stringify(labels)}`);
  const index = new Map(labels.map((l, i) => [l, i]));
  const examples: Example[] = [];
  for (const [i, file] of files.entries()) {
    const text = await readTextFile(file, i);
    for (const row of rowsOf(file, text, spec.format, [spec.textField, spec.labelField, spec.docField, spec.pairField], spec.header)) {
      const label = row.get(spec.labelField, 'label').trim();
      let id = index.get(label);
      if (id === undefined) {
        if (fixed) throw new Error(`${file}: line ${row.line}: label ${JSON.stringify(label)} is not one of ${JSON.stringify(labels)}`);
        id = labels.length;
        labels.push(label);
        index.set(label, id);
      }
      const where = `${file}:${row.line}`;
      const doc = spec.docField === undefined ? where : row.get(spec.docField, 'doc');
      const example: Example = { id: where, doc, text: row.get(spec.textField, 'text').trim(), label: id };
      if (spec.pairField !== undefined) example.pair = row.get(spec.pairField, 'pair').trim();
      examples.push(example);
    }
  }
  return { labels, examples };
}
