// The protobuf wire format, as far as the files trainlarge writes and reads need it, by hand (Node has no
// protobuf): a writer of varints, fixed32 floats and length-delimited fields (ONNX's model.onnx, lib/onnx/proto.ts;
// SentencePiece's .model, lib/data/spm-hf.ts), and a reader of one message's fields (a .model). Field numbers
// are the callers'.

/** A protobuf message as byte chunks (not yet joined). */
export interface Message {
  parts: Uint8Array[];
  length: number;
}

// Protobuf wire types.
const Wire = { Varint: 0, Bytes: 2, Fixed32: 5 } as const;
type Wire = (typeof Wire)[keyof typeof Wire];

/** An unsigned LEB128 varint; negative int64 values as their 64-bit two's complement (10 bytes). */
function varint(value: number | bigint): Uint8Array {
  let v = typeof value === 'bigint' ? BigInt.asUintN(64, value) : value >= 0 ? value : BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new RangeError(`protobuf: ${v} is not an integer protobuf can store exactly`);
    while (v > 0x7f) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
  } else {
    while (v > 0x7fn) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
  }
  return Uint8Array.from(out);
}

const utf8 = new TextEncoder();

/** Builds one message field by field, in the order written. */
export class Writer {
  private readonly parts: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  private tag(field: number, wire: Wire): void {
    this.push(varint(field * 8 + wire));
  }

  int(field: number, value: number | bigint): this {
    this.tag(field, Wire.Varint);
    this.push(varint(value));
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, Wire.Fixed32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, Wire.Bytes);
    this.push(varint(value.length));
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  message(field: number, m: Message): this {
    this.tag(field, Wire.Bytes);
    this.push(varint(m.length));
    for (const p of m.parts) this.push(p);
    return this;
  }

  /** A packed repeated int64 field. */
  packedInts(field: number, values: readonly number[]): this {
    const body = values.map((v) => varint(v));
    this.tag(field, Wire.Bytes);
    this.push(varint(body.reduce((n, b) => n + b.length, 0)));
    for (const b of body) this.push(b);
    return this;
  }

  done(): Message {
    return { parts: this.parts, length: this.length };
  }
}

/** One buffer holding the message's bytes: what a .onnx file or a SentencePiece .model is. */
export function serialize(m: Message): Buffer {
  return Buffer.concat(m.parts, m.length);
}

/** One field of a message as read: its number, wire type and value (fixed64 values are skipped). */
export type Field = { field: number; wire: number; varint?: bigint; bytes?: Uint8Array; fixed32?: number };

/** The fields of message `b` in the order they stand; malformed bytes are an error naming `where` and `what` `b` is. */
export function readFields(b: Uint8Array, where: string, what = 'protobuf'): Field[] {
  const out: Field[] = [];
  let i = 0;
  const bad = () => new Error(`${where}: malformed ${what}`);
  const varint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (i >= b.length || shift > 63n) throw bad();
      const c = b[i++];
      v |= BigInt(c & 0x7f) << shift;
      if (c < 0x80) return v;
    }
  };
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  while (i < b.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, wire, varint: varint() });
    else if (wire === 2) {
      const n = Number(varint());
      if (n > b.length - i) throw bad();
      out.push({ field, wire, bytes: b.subarray(i, i + n) });
      i += n;
    } else if (wire === 5) {
      if (i + 4 > b.length) throw bad();
      out.push({ field, wire, fixed32: view.getFloat32(i, true) });
      i += 4;
    } else if (wire === 1) {
      if (i + 8 > b.length) throw bad();
      i += 8;
    } else throw bad();
  }
  return out;
}
