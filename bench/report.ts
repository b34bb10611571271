import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { toInt8, TokenizerLike, Transformer } from '../lib';

export const ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

/**
 * The Python of the project's environment (scripts/python-env cpu, linked as .venv by scripts/setup): the
 * pip torch the default engine links, with numpy, transformers and sacrebleu. The tests' and benchmarks'
 * PyTorch peers run in it, so engine and peer share one torch.
 */
export const PEER_PYTHON = path.join(ROOT, '.venv', 'bin', 'python');

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Replaces (or appends) the section that starts with `## title` in BENCHMARKS.md. */
export function writeSection(section: string): void {
  const file = path.join(ROOT, 'BENCHMARKS.md');
  const heading = section.split('\n', 1)[0];
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n\n';
  const start = text.indexOf(heading + '\n');
  if (start >= 0) {
    const rest = text.slice(start + 1);
    const next = rest.search(/\n## /);
    const end = next >= 0 ? start + 1 + next + 1 : text.length;
    text = text.slice(0, start) + section + (end < text.length ? '\n' + text.slice(end) : '');
  } else {
    text = text.replace(/\s*$/, '\n\n') + section;
  }
  fs.writeFileSync(file, text);
  console.log(`wrote ${heading} to ${file}`);
}

/** The CPU's model name, as /proc/cpuinfo gives it. */
export function cpuName(): string {
  return (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1] ?? os.cpus()[0]?.model ?? 'unknown').trim();
}

/** Prints a benchmark's BENCHMARKS.md section and, when `write`, puts it in the file. */
export function publish(section: string, write: boolean): void {
  console.log('\n' + section);
  if (write) writeSection(section);
}

/** Runs a benchmark's main; a failure prints its stack and exits 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((e) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
  });
}

/**
 * Model FLOPs of one MLM training step (forward + backward = 3 x forward; a multiply-add is 2 FLOPs):
 *   6 * Nlayers * tokens                    Nlayers = layers * (4 d^2 + 2 d ffn)  (qkv, out-proj, fc1, fc2 weights)
 * + 12 * layers * T * d * tokens            attention scores q k^T and probs @ v (2 * 2 T d forward per token)
 * + 6 * (d^2 + d V) * maskProb * tokens     MLM head (dense + tied decoder) on the masked positions only
 * Embeddings, LayerNorm, softmax, GELU, the optimizer are not counted. ffn = 4 d.
 */
export function mlmStepFlops(
  s: { dModel: number; layers: number; vocab: number; maxLen: number; maskProb: number },
  tokens: number,
): number {
  const d = s.dModel;
  const ffn = 4 * d;
  const nLayers = s.layers * (4 * d * d + 2 * d * ffn);
  const attn = 12 * s.layers * s.maxLen * d;
  const head = 6 * (d * d + d * s.vocab) * s.maskProb;
  return tokens * (6 * nLayers + attn + head);
}

/** The value of one series in Prometheus text, as the service's /metrics writes it (0 when the series does not exist yet). */
export function readMetric(text: string, name: string, labels = ''): number {
  const prefix = `${name}${labels ? `{${labels}}` : ''} `;
  const found = text.split('\n').find((l) => l.startsWith(prefix));
  return found ? Number(found.slice(prefix.length)) : 0;
}

/** The ids-only tokenizer the training benches' random-token datasets use (special ids 0..4, no text). */
export function benchTokenizer(vocabSize: number): TokenizerLike {
  return {
    vocabSize,
    special: { pad: 0, cls: 1, eos: 2, unk: 3, mask: 4 },
    encode: () => {
      throw new Error('bench tokenizer: encode is not used');
    },
    decode: () => '',
  };
}

/** The engine toInt8's 'auto' picks in this libtorch (packing a tiny model): what NAME=DIR:int8 in the service runs on. */
export async function int8AutoEngine(): Promise<string> {
  const m = await Transformer.create({ task: 'classify', numLabels: 2, vocabSize: 16, maxLen: 8, dModel: 16, layers: 1, heads: 1 });
  const q = await toInt8(m);
  const name = q.compression.int8!.engine;
  [m, q].forEach((x) => x.dispose());
  return name;
}
