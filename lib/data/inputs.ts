// Which files a user's inputs name, and in what format: paths, directories read recursively and glob patterns
// expanded in a stable order, each file's format by its extension (after .gz / .zst) unless one is given.
// Reading them is lib/data/stream.ts's.
import * as fs from 'fs';
import * as path from 'path';

/** How a file holds its texts. */
export type InputFormat = 'text' | 'jsonl' | 'tsv' | 'parquet';
export const INPUT_FORMATS: readonly InputFormat[] = ['text', 'jsonl', 'tsv', 'parquet'];
export type Compression = 'none' | 'gzip' | 'zstd';

export interface InputFile {
  path: string;
  format: InputFormat;
  compression: Compression;
  /** Size on disk. */
  bytes: number;
  mtimeMs: number;
}

const EXTENSIONS: Record<string, InputFormat> = { '.jsonl': 'jsonl', '.ndjson': 'jsonl', '.tsv': 'tsv', '.parquet': 'parquet' };

function compressionOf(file: string): { compression: Compression; inner: string } {
  if (file.endsWith('.gz')) return { compression: 'gzip', inner: file.slice(0, -3) };
  if (file.endsWith('.zst')) return { compression: 'zstd', inner: file.slice(0, -4) };
  if (file.endsWith('.zstd')) return { compression: 'zstd', inner: file.slice(0, -5) };
  return { compression: 'none', inner: file };
}

/** The format a file's name says (after a compression extension). */
export function formatOf(file: string): InputFormat {
  return EXTENSIONS[path.extname(compressionOf(file).inner).toLowerCase()] ?? 'text';
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        // '**/' matches any number of directories, '**' at the end anything
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${pattern
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Every file under `dir`, sorted, hidden files and directories left out. */
function walk(dir: string): string[] {
  const out: string[] = [];
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile() || (e.isSymbolicLink() && fs.statSync(p).isFile())) out.push(p);
  }
  return out;
}

/** Files matching a glob pattern ('*', '?', '[abc]', '**'), sorted. */
function glob(pattern: string): string[] {
  const parts = pattern.split('/');
  const first = parts.findIndex((p) => /[*?[]/.test(p));
  const base = parts.slice(0, first).join('/') || (pattern.startsWith('/') ? '/' : '.');
  if (!fs.existsSync(base) || !fs.statSync(base).isDirectory()) return [];
  const re = globToRegExp(parts.slice(first).join('/'));
  return walk(base).filter((f) => re.test(path.relative(base, f).split(path.sep).join('/')));
}

/**
 * The files named by `patterns` (paths, directories read recursively, or glob patterns), in the order given
 * (each directory's and pattern's files sorted by name), each once. A path that does not exist, a pattern or
 * directory with no file, and an empty file are errors naming `what[i]`.
 */
export function expandInputs(patterns: unknown, spec: { format?: InputFormat } = {}, what = 'files'): InputFile[] {
  if (!Array.isArray(patterns) || patterns.length === 0 || !patterns.every((f) => typeof f === 'string' && f.length > 0))
    throw new Error(`${what}: files must be a non-empty list of paths, directories or glob patterns`);
  if (spec.format !== undefined && !INPUT_FORMATS.includes(spec.format))
    throw new Error(`format: must be one of ${INPUT_FORMATS.map((f) => `'${f}'`).join(', ')}, got ${JSON.stringify(spec.format)}`);
  const out: InputFile[] = [];
  const seen = new Set<string>();
  (patterns as string[]).forEach((p, i) => {
    let files: string[];
    if (/[*?[]/.test(p) && !fs.existsSync(p)) {
      files = glob(p);
      if (files.length === 0) throw new Error(`${what}[${i}]: the pattern ${p} matches no file`);
    } else {
      let stat: fs.Stats;
      try {
        stat = fs.statSync(p);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw new Error(`${what}[${i}]: no such file: ${p}`);
        throw new Error(`${what}[${i}]: cannot read ${p}: ${code ?? (e as Error).message}`);
      }
      if (stat.isDirectory()) {
        files = walk(p);
        if (files.length === 0) throw new Error(`${what}[${i}]: the directory ${p} holds no files`);
      } else files = [p];
    }
    for (const f of files) {
      const key = path.resolve(f);
      if (seen.has(key)) continue;
      seen.add(key);
      const stat = fs.statSync(f);
      if (stat.size === 0) throw new Error(`${what}[${i}]: ${f} is empty`);
      const { compression } = compressionOf(f);
      const format = spec.format ?? formatOf(f);
      if (format === 'parquet' && compression !== 'none')
        throw new Error(`${what}[${i}]: ${f}: a Parquet file compresses its own pages; give it uncompressed`);
      out.push({ path: f, format, compression, bytes: stat.size, mtimeMs: stat.mtimeMs });
    }
  });
  return out;
}
