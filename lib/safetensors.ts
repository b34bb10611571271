// The safetensors format (huggingface/safetensors: an 8-byte little-endian header length, a JSON header of
// { name: { dtype, shape, data_offsets } } and "__metadata__", then the raw little-endian tensors) read and
// written in TypeScript, for renaming a foreign checkpoint's tensors (lib/marian.ts). Float tensors only; the
// engine's own reader (native/io/safetensors.cc) loads what trainlarge trains and serves.
import * as fs from 'fs';
import { writeFileAtomic } from './io';

/** A float32 tensor: its shape and row-major values. */
export interface FloatTensor {
  shape: number[];
  data: Float32Array;
}

type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] };

const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** Every float tensor of a safetensors file as float32 (F16, BF16 and F64 converted); other dtypes are refused by name. */
export function readSafetensors(file: string): { tensors: Map<string, FloatTensor>; metadata: Record<string, string> } {
  const buf = fs.readFileSync(file);
  const what = `${file}: not a safetensors file`;
  if (buf.length < 8) throw new Error(`${what} (${buf.length} bytes)`);
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8) throw new Error(`${what} (its header says ${n} bytes, the file has ${buf.length - 8} after the length)`);
  let header: Record<string, Entry | Record<string, string>>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as typeof header;
  } catch (e) {
    throw new Error(`${what} (its header is not JSON: ${(e as Error).message})`);
  }
  const body = 8 + n;
  const tensors = new Map<string, FloatTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as Entry;
    const size = BYTES[e.dtype];
    if (size === undefined)
      throw new Error(`${file}: tensor '${name}' has dtype ${e.dtype}; only float tensors (F32, F16, BF16, F64) are read`);
    const count = e.shape.reduce((a, b) => a * b, 1);
    const [lo, hi] = e.data_offsets;
    if (hi - lo !== count * size || body + hi > buf.length) {
      throw new Error(`${file}: tensor '${name}' has offsets [${lo}, ${hi}] that do not hold ${e.dtype} ${JSON.stringify(e.shape)}`);
    }
    const raw = buf.subarray(body + lo, body + hi);
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) {
      if (e.dtype === 'F32') data[i] = raw.readFloatLE(4 * i);
      else if (e.dtype === 'F64') data[i] = raw.readDoubleLE(8 * i);
      else if (e.dtype === 'BF16') data[i] = bf16(raw.readUInt16LE(2 * i));
      else data[i] = f16(raw.readUInt16LE(2 * i));
    }
    tensors.set(name, { shape: e.shape, data });
  }
  return { tensors, metadata };
}

/** Writes float32 tensors, in the order given, as one safetensors file (atomically). */
export async function writeSafetensors(
  file: string,
  tensors: [string, FloatTensor][],
  metadata: Record<string, string> = {},
): Promise<void> {
  const header: Record<string, unknown> = Object.keys(metadata).length > 0 ? { __metadata__: metadata } : {};
  let at = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new RangeError(`writeSafetensors: '${name}' has ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [at, at + 4 * count] };
    at += 4 * count;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // the body starts 8-byte aligned, as the Rust writer pads it
  const head = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + head.length + at);
  out.writeBigUInt64LE(BigInt(head.length), 0);
  head.copy(out, 8);
  let pos = 8 + head.length;
  for (const [, t] of tensors) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, pos);
    pos += t.data.byteLength;
  }
  await writeFileAtomic(file, out);
}

function bf16(bits: number): number {
  const b = Buffer.alloc(4);
  b.writeUInt32LE((bits << 16) >>> 0, 0);
  return b.readFloatLE(0);
}

function f16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}
