import { ChildProcess, ChildProcessWithoutNullStreams, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import { PEER_PYTHON } from '../bench/report';
import {
  ByteTokenizer,
  Dataset,
  loadSpeeches,
  MlmDataset,
  ParallelDataset,
  ParallelTask,
  splitSpeeches,
  Trainer,
  Transformer,
} from '../lib';

export const tok = new ByteTokenizer();

/** Real English: State of the Union speeches as bytes, whole speeches held out for validation. */
export function speechData(maxLen: number, limit = 60): { train: MlmDataset; valid: MlmDataset; trainDocs: Int32Array[] } {
  const { train, valid } = splitSpeeches(loadSpeeches().slice(0, limit));
  const trainDocs = train.map((s) => tok.encode(s.text));
  return {
    train: MlmDataset.fromDocuments(trainDocs, tok, { maxLen }),
    valid: MlmDataset.fromDocuments(
      valid.map((s) => tok.encode(s.text)),
      tok,
      { maxLen },
    ),
    trainDocs,
  };
}

/** fn()'s value with `env` set in process.env, which is restored as it was afterwards (what fn reads synchronously sees it). */
export function withEnv<T>(env: Record<string, string>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/**
 * A JS expression for a child script (`node -e`): the child's own peak resident memory in MB. Linux's VmHWM
 * belongs to the address space made at exec. getrusage's ru_maxrss (`process.resourceUsage().maxRSS`) does not:
 * the kernel carries into it the peak of the forked copy of the parent, so a child of a 1.4 GB jest process
 * "peaks" at 1.4 GB whatever it does.
 */
export const OWN_PEAK_RSS_MB = "(Number(/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024)";

export function tempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `trainlarge-${name}-`));
}

export const small = { vocabSize: tok.vocabSize, maxLen: 64, dModel: 64, layers: 2, heads: 4 };

/** The first `count` State of the Union speeches as text files in `dir` (one a file), for file-based corpora. */
export function speechFiles(dir: string, count: number): string[] {
  return loadSpeeches()
    .slice(0, count)
    .map((s, i) => {
      const f = path.join(dir, `speech-${i}.txt`);
      fs.writeFileSync(f, s.text);
      return f;
    });
}

/** The Bible subset the translation tests share: 3000 pairs (English -> Spanish), a 1000-piece shared tokenizer, maxLen 64. */
export function bibleTask(): Promise<ParallelTask> {
  return Dataset.parallel({ source: 'bible-en-es', vocabSize: 1000, maxLen: 64, maxPairs: 3000, maxChars: 200 });
}

/**
 * The tiny translation sweep the sweep and compression tests run (each adds its sizes, data and budget): Bible
 * pairs, 512-token batches, lr 3e-3, label smoothing 0.1.
 */
export const TINY_MT_SWEEP = {
  name: 'tiny-mt',
  task: 'translate',
  corpus: 'bible-en-es',
  batchTokens: 512,
  lr: 0.003,
  labelSmoothing: 0.1,
} as const;

/** The small translator the compression tests prune and quantize. tieEmbeddings 'decoder': the encoder's
 * tokens.weight and the decoder's decoder.tokens.weight are two matrices. */
export const SMALL_TRANSLATOR = {
  task: 'translate',
  encoderLayers: 2,
  decoderLayers: 2,
  dModel: 64,
  heads: 4,
  ffn: 256,
  maxLen: 64,
  tieEmbeddings: 'decoder',
} as const;

/** Trains a small translator as the translation tests do: inverse-sqrt from 3e-3 after 40 warmup steps, label smoothing 0.1, 1024-token batches. */
export async function trainTranslator(mt: Transformer, train: ParallelDataset, maxSteps: number): Promise<void> {
  const trainer = new Trainer(mt, {
    lr: 3e-3,
    schedule: 'inverse-sqrt',
    warmupSteps: 40,
    labelSmoothing: 0.1,
    batchTokens: 1024,
    maxSteps,
  });
  await trainer.fit(train);
  trainer.dispose();
}

/** Rewrites float32 tensors of a plain safetensors file in place: edit(data, dims) per named tensor. */
export function editTensors(file: string, edits: Record<string, (data: Float32Array, dims: number[]) => void>): void {
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: number[] }
  >;
  for (const [name, edit] of Object.entries(edits)) {
    const t = header[name];
    if (!t) throw new Error(`editTensors: ${file} has no tensor ${name}`);
    if (t.dtype !== 'F32') throw new Error(`editTensors: ${name} is ${t.dtype}, not F32`);
    const [from, to] = t.data_offsets.map((o) => 8 + n + o);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + from, bytes.byteOffset + to));
    edit(data, t.shape);
    Buffer.from(data.buffer).copy(bytes, from);
  }
  fs.writeFileSync(file, bytes);
}

/**
 * The test peers (test/peer/*.py) run in one long-lived Python (test/peer/pyworker.py): torch and
 * transformers load once per suite instead of once per call. `run(script, ...args)` runs test/peer/SCRIPT as
 * its command line would and resolves with what it printed, or rejects with its traceback; calls run one
 * after another. `close()` in afterAll.
 */
export class PythonPeer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly replies: ((line: string) => void)[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private stderr = '';

  constructor(python = PEER_PYTHON) {
    this.child = spawn(python, [path.join(__dirname, 'peer', 'pyworker.py')], { stdio: 'pipe' });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => this.replies.shift()?.(line));
    this.child.on('exit', (code) => {
      for (const reply of this.replies.splice(0)) reply(JSON.stringify({ error: `python exited ${code}: ${this.stderr}`, out: '' }));
    });
  }

  run(script: string, ...args: string[]): Promise<string> {
    const call = this.queue.then(
      () =>
        new Promise<string>((resolve, reject) => {
          this.replies.push((line) => {
            const r = JSON.parse(line) as { out: string; error?: string };
            if (r.error !== undefined) reject(new Error(`${script} ${args.join(' ')}: ${r.error}\n${this.stderr}`));
            else resolve(r.out);
          });
          this.child.stdin.write(JSON.stringify({ script: path.join(__dirname, 'peer', script), args }) + '\n');
        }),
    );
    this.queue = call.catch(() => undefined);
    return call;
  }

  /** The script's last printed line, parsed as JSON (the peers end with one). */
  async json<T>(script: string, ...args: string[]): Promise<T> {
    return JSON.parse((await this.run(script, ...args)).trim().split('\n').pop()!) as T;
  }

  close(): void {
    this.child.stdin.end();
  }
}

/** A service started as a child process, once it has printed its address. */
export interface StartedService {
  child: ChildProcess;
  address: string;
  /** What it has printed so far on stdout and stderr. */
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

/**
 * `node SCRIPT ARGS...` (the CLI's `serve`, or examples/service/main.js) as a child; resolves once it prints the
 * address it listens on, rejects with its stderr if it exits before.
 */
export function startService(script: string, args: string[]): Promise<StartedService> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /"address":"([^"]+)"/.exec(out);
      if (m) resolve({ child, address: m[1], out: () => out, err: () => err, exited });
    });
    child.on('exit', () => reject(new Error(`${path.basename(script)} ${args[0] ?? ''} exited early: ${err}`)));
  });
}

/**
 * Text every tokenizer comparison runs besides prose: empty and whitespace-only texts, whitespace runs,
 * control characters, non-Latin scripts and emoji, contractions, numbers, a combining mark.
 */
export const TOKENIZER_EDGE_CASES: readonly string[] = [
  '',
  ' ',
  '  leading and trailing  ',
  'tabs\tand\nnewlines\r\n here',
  'naïve café — “quotes” … ½ 𝔘nicode 😀👍🏽 中文 日本語 한국어',
  "don't won't I'll we've they're it's",
  '   multiple     spaces   ',
  'numbers 1234567 3.14159 1,000,000',
  'e\u0301 combining',
];

/** The first `count` sentences of `docs`, paragraph by paragraph (cut after . ! ? before a capital or a quote). */
export function sentencesOf(docs: readonly { text: string }[], count: number): string[] {
  const out: string[] = [];
  for (const d of docs)
    for (const para of d.text.split('\n'))
      for (const s of para.split(/(?<=[.!?])\s+(?=[A-Z"'])/)) {
        if (out.length >= count) return out;
        if (s.trim()) out.push(s);
      }
  return out;
}

/**
 * How many of `ours` differ from `theirs` (id lists, item by item), and the first few, each shown with its item
 * (`items[i]`: the text or pair it encodes).
 */
export function idMismatches(ours: ArrayLike<number>[], theirs: number[][], items: readonly unknown[]): { count: number; first: string[] } {
  const bad: number[] = [];
  theirs.forEach((t, i) => {
    const o = Array.from(ours[i]);
    if (o.length !== t.length || o.some((x, j) => x !== t[j])) bad.push(i);
  });
  return {
    count: bad.length,
    first: bad
      .slice(0, 3)
      .map((i) => `${JSON.stringify(items[i])}: ${JSON.stringify(Array.from(ours[i]))} vs ${JSON.stringify(theirs[i])}`),
  };
}

/** The labels of every legend of a rendered vega SVG, in order (vega writes them in role-legend-label groups). */
export function legendLabels(svg: string): string[] {
  const out: string[] = [];
  for (const group of svg.match(/class="mark-text role-legend-label"[^>]*>([\s\S]*?)<\/g>/g) ?? [])
    for (const m of group.matchAll(/<text[^>]*>([^<]*)<\/text>/g)) out.push(m[1].replace(/&amp;/g, '&'));
  return out;
}
