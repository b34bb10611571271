// The addon's real surface against the TypeScript that declares it (lib/native.ts): every export, every
// method and accessor of its classes, and the test-only ops, by name, both ways; an enum-like string outside
// its lib/config/ union refused by the addon itself. A binding registered twice in native/bind/ (the second
// silently replaces the first) is caught in the sources.
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { parseModelConfig } from '../lib/config/model';
import { TokenizerOptionsSchema } from '../lib/config/tokenizer';
import { NativeAddon, NativeDataset, NativeModel, NativeTokenizer, native } from '../lib/native';

const NATIVE_TS = path.join(__dirname, '..', 'lib', 'native.ts');
const BIND = path.join(__dirname, '..', 'native', 'bind');

/** Member names of an interface of lib/native.ts, and which of them are methods. */
function declared(name: string): { names: string[]; methods: string[] } {
  const source = ts.createSourceFile(NATIVE_TS, fs.readFileSync(NATIVE_TS, 'utf8'), ts.ScriptTarget.ES2022, true);
  const decl = source.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name);
  if (!decl) throw new Error(`lib/native.ts declares no interface ${name}`);
  const names: string[] = [];
  const methods: string[] = [];
  for (const m of decl.members) {
    if (!m.name || !ts.isIdentifier(m.name)) continue;
    names.push(m.name.text);
    if (ts.isMethodSignature(m)) methods.push(m.name.text);
  }
  return { names: names.sort(), methods };
}

/** What a JS class of the addon defines on its prototype: methods and accessors. */
function defined(proto: object): { names: string[]; methods: string[] } {
  const names = Object.getOwnPropertyNames(proto).filter((n) => n !== 'constructor');
  const methods = names.filter((n) => typeof Object.getOwnPropertyDescriptor(proto, n)?.value === 'function');
  return { names: names.sort(), methods };
}

// A small instance of each class the addon makes only through its factories (Model, Dataset, Tokenizer: it does
// not export those classes, which TypeScript never constructs), for their prototypes.
const config = parseModelConfig({ vocabSize: 32, maxLen: 8, dModel: 16, layers: 1, heads: 2 });
let model: NativeModel;
let dataset: NativeDataset;
let tokenizer: NativeTokenizer;

beforeAll(async () => {
  const addon = native();
  model = await addon.createModel(config, 1, 'cpu');
  dataset = addon.createMlmData(
    Int32Array.from({ length: 64 }, (_, i) => 5 + (i % 27)),
    {
      maxLen: 8,
      maskProb: 0.15,
      maskTokenProb: 0.8,
      randomTokenProb: 0.1,
      maskId: 4,
      clsId: 1,
      vocabSize: 32,
      specialIds: [0, 1, 2, 3, 4],
    },
  );
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', 'iota', 'kappa'];
  const lines = Array.from({ length: 200 }, (_, i) => words.map((w, j) => words[(i * 7 + j * 3) % words.length] + w).join(' '));
  tokenizer = await addon.trainTokenizer(lines, TokenizerOptionsSchema.parse({ vocabSize: 60, byteFallback: false }));
});

afterAll(() => {
  model.dispose();
  dataset.dispose();
});

describe('the addon matches its TypeScript declaration (lib/native.ts)', () => {
  const addon = native() as unknown as Record<string, unknown>;

  test('every export is declared in NativeAddon, and every declared member is exported', () => {
    const want = declared('NativeAddon');
    expect(Object.keys(addon).sort()).toEqual(want.names);
    for (const m of want.methods) expect([m, typeof addon[m]]).toEqual([m, 'function']);
  });

  test.each([
    ['Model', 'NativeModel', () => Object.getPrototypeOf(model) as object],
    ['Dataset', 'NativeDataset', () => Object.getPrototypeOf(dataset) as object],
    ['Trainer', 'NativeTrainer', () => (addon.Trainer as { prototype: object }).prototype],
    ['Tokenizer', 'NativeTokenizer', () => Object.getPrototypeOf(tokenizer) as object],
  ])('class %s has exactly the methods and accessors of %s', (_cls, iface, proto) => {
    const have = defined(proto());
    const want = declared(iface);
    expect(have.names).toEqual(want.names);
    expect(have.methods.sort()).toEqual(want.methods.sort());
  });

  test('the test-only ops sit under `testing` and match NativeTestingOps', () => {
    const testing = addon.testing as Record<string, unknown>;
    const want = declared('NativeTestingOps');
    expect(Object.keys(testing).sort()).toEqual(want.names);
    for (const m of want.methods) expect(typeof testing[m]).toBe('function');
  });

  test('an enum-like string outside its lib/config/ union is refused by the addon, naming the field and the allowed names', async () => {
    // The casts stand for a caller that skipped the schemas (the addon can be called directly). A refusal
    // is a thrown error or a rejected promise, whichever the call gives.
    const a = addon as unknown as NativeAddon;
    const refused = (call: () => unknown) => expect(Promise.resolve().then(call)).rejects;
    const ids = new Int32Array([1, 5, 6, 2]);
    await refused(() => model.predict(ids, 1, 4, null, 'fp64' as never)).toThrow(
      /^precision: must be one of 'fp32', 'bf16', 'fp16', got 'fp64'$/,
    );
    await refused(() => model.evaluate(dataset, { batchSize: 2, maxSamples: 2, seed: 1, precision: 'half' as never })).toThrow(
      /^evaluate options\.precision: must be one of 'fp32', 'bf16', 'fp16', got 'half'$/,
    );
    await refused(() => model.toInt8('mkl' as never)).toThrow(
      /^engine: must be one of 'auto', 'x86', 'onednn', 'fbgemm', 'qnnpack', got 'mkl'$/,
    );
    const prune = { structure: 'unstructured', sparsity: 0.5, schedule: 'oneshot', initialSparsity: 0, startStep: 0, every: 1 } as const;
    await refused(() => model.prune({ ...prune, scope: 'row' as never, targets: ['ffn'] })).toThrow(
      /^prune options\.scope: must be one of 'layer', 'global', got 'row'$/,
    );
    await refused(() => a.testing.magnitudeMasks([new Float32Array(4)], [[2, 2]], 0.5, 'row' as never)).toThrow(
      /^scope: must be one of 'layer', 'global', got 'row'$/,
    );
    const group = { rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: 29500, timeoutSeconds: 1 };
    await refused(() => a.distShare({ ...group, backend: 'mpi' as never }, 'x')).toThrow(
      /^distributed\.backend: must be one of 'auto', 'gloo', 'nccl', got 'mpi'$/,
    );
    await refused(() => a.createModel(config, 1, 'tpu')).toThrow(/^device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got 'tpu'$/);
  });

  test('no binding registers a name twice (the second would silently replace the first)', () => {
    for (const file of fs.readdirSync(BIND).filter((f) => f.endsWith('.cc'))) {
      const text = fs.readFileSync(path.join(BIND, file), 'utf8');
      const names = [...text.matchAll(/Instance(?:Method|Accessor)<[^>]*>\("(\w+)"\)|\.Set\("(\w+)",\s*Napi::Function::New/g)].map(
        (m) => m[1] ?? m[2],
      );
      const twice = names.filter((n, i) => names.indexOf(n) !== i);
      expect([file, twice]).toEqual([file, []]);
    }
  });
});
