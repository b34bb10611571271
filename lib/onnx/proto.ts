// The part of ONNX's protobuf (onnx/onnx.proto, IR version 8) an exported encoder needs, written by hand with
// lib/protobuf.ts's writer: one function per message, the field numbers as onnx.proto numbers them. Writing
// only, never reading: the file is checked by the runtime that loads it (test/onnx.test.ts runs every export in
// onnxruntime-node). A message is a list of byte chunks with their total length, so the weights' bytes are
// copied once, into the file's buffer.
import { Message, Writer } from '../protobuf';

/** TensorProto.DataType values. */
export const DataType = { float: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9 } as const;
export type DataTypeName = keyof typeof DataType;

/** The bytes of a typed array as they are in memory (little-endian on every platform Node runs on). */
function rawBytes(data: Float32Array | Int8Array | Uint8Array | BigInt64Array | Int32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** TensorProto: an initializer or a constant, its data as raw_data. */
export function tensorProto(
  name: string,
  type: DataTypeName,
  dims: readonly number[],
  data: Float32Array | Int8Array | Uint8Array | BigInt64Array | Int32Array,
): Message {
  const w = new Writer();
  if (dims.length > 0) w.packedInts(1, dims); // dims
  w.int(2, DataType[type]); // data_type
  w.string(8, name); // name
  w.bytes(9, rawBytes(data)); // raw_data
  return w.done();
}

/** An attribute value: a number is an INT unless given as { float }, a string a STRING, number[] INTS. */
export type AttributeValue = number | { float: number } | string | number[] | { tensor: Message };

/** AttributeProto. */
function attributeProto(name: string, value: AttributeValue): Message {
  const w = new Writer().string(1, name);
  if (typeof value === 'number')
    w.int(3, value).int(20, 2); // i, type INT
  else if (typeof value === 'string')
    w.string(4, value).int(20, 3); // s, type STRING
  else if (Array.isArray(value))
    w.packedInts(8, value).int(20, 7); // ints, type INTS
  else if ('float' in value)
    w.float(2, value.float).int(20, 1); // f, type FLOAT
  else w.message(5, value.tensor).int(20, 4); // t, type TENSOR
  return w.done();
}

/** NodeProto: one operator call. An empty input name is an omitted optional input. */
export function nodeProto(
  op: string,
  inputs: readonly string[],
  outputs: readonly string[],
  name: string,
  attributes: Record<string, AttributeValue> = {},
  domain = '',
): Message {
  const w = new Writer();
  for (const i of inputs) w.string(1, i);
  for (const o of outputs) w.string(2, o);
  w.string(3, name).string(4, op);
  for (const [k, v] of Object.entries(attributes)) w.message(5, attributeProto(k, v));
  if (domain) w.string(7, domain);
  return w.done();
}

/** A dimension: a fixed size, or a name (dim_param) for a dynamic axis. */
export type Dim = number | string;

/** ValueInfoProto of a tensor: a graph input or output with its element type and shape. */
export function valueInfoProto(name: string, type: DataTypeName, shape: readonly Dim[]): Message {
  const dims = new Writer();
  for (const d of shape) dims.message(1, typeof d === 'number' ? new Writer().int(1, d).done() : new Writer().string(2, d).done());
  const tensorType = new Writer().int(1, DataType[type]).message(2, dims.done()).done();
  const typeProto = new Writer().message(1, tensorType).done();
  return new Writer().string(1, name).message(2, typeProto).done();
}

/** GraphProto. */
export function graphProto(g: {
  name: string;
  nodes: Message[];
  initializers: Message[];
  inputs: Message[];
  outputs: Message[];
  doc?: string;
}): Message {
  const w = new Writer();
  for (const n of g.nodes) w.message(1, n);
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, t);
  if (g.doc) w.string(10, g.doc);
  for (const i of g.inputs) w.message(11, i);
  for (const o of g.outputs) w.message(12, o);
  return w.done();
}

/** ModelProto: IR version 8 (what ONNX 1.12 writes for opset 17), one default-domain opset, metadata. */
export function modelProto(m: {
  graph: Message;
  opset: number;
  producer: string;
  producerVersion: string;
  doc?: string;
  metadata?: Record<string, string>;
}): Message {
  const w = new Writer().int(1, 8).string(2, m.producer).string(3, m.producerVersion);
  if (m.doc) w.string(6, m.doc);
  w.message(7, m.graph);
  w.message(8, new Writer().string(1, '').int(2, m.opset).done());
  for (const [k, v] of Object.entries(m.metadata ?? {})) w.message(14, new Writer().string(1, k).string(2, v).done());
  return w.done();
}
