// The jest environment of test/onnx.test.ts. Jest runs a suite in a realm of its own, whose typed-array
// constructors are not Node's; onnxruntime-node wraps the Float32Array its addon returns in an ort.Tensor
// that checks `data instanceof Float32Array` against the suite's realm, and refuses Node's. Here the suite
// shares Node's typed arrays (jest-environment-node already shares Uint8Array for the same reason).
'use strict';
const { TestEnvironment } = require('jest-environment-node');

const TYPED_ARRAYS = [
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
];

class OnnxEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of TYPED_ARRAYS) this.global[name] = globalThis[name];
  }
}

module.exports = OnnxEnvironment;
