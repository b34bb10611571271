// The addon's real surface against the TypeScript that declares it (lib/native.ts): every export, every
// method and accessor of its classes, and the test-only ops, by name, both ways. A binding registered
// twice in native/bind/ (the second silently replaces the first) is caught in the sources.
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { native } from '../lib/native';

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
function defined(ctor: unknown): { names: string[]; methods: string[] } {
  const proto = (ctor as { prototype: object }).prototype;
  const names = Object.getOwnPropertyNames(proto).filter((n) => n !== 'constructor');
  const methods = names.filter((n) => typeof Object.getOwnPropertyDescriptor(proto, n)?.value === 'function');
  return { names: names.sort(), methods };
}

// Classes the addon exports although TypeScript never constructs them: their instances come from
// createModel, loadModel, create*Data, trainTokenizer and loadTokenizer (ObjectWrap needs the class).
const CLASSES_NOT_DECLARED = ['Dataset', 'Model', 'Tokenizer'];

describe('the addon matches its TypeScript declaration (lib/native.ts)', () => {
  const addon = native() as unknown as Record<string, unknown>;

  test('every export is declared in NativeAddon, and every declared member is exported', () => {
    const exported = Object.keys(addon).filter((k) => !CLASSES_NOT_DECLARED.includes(k));
    const want = declared('NativeAddon');
    expect(exported.sort()).toEqual(want.names);
    for (const m of want.methods) expect([m, typeof addon[m]]).toEqual([m, 'function']);
    for (const c of CLASSES_NOT_DECLARED) expect([c, typeof addon[c]]).toEqual([c, 'function']);
  });

  test.each([
    ['Model', 'NativeModel'],
    ['Dataset', 'NativeDataset'],
    ['Trainer', 'NativeTrainer'],
    ['Tokenizer', 'NativeTokenizer'],
  ])('class %s has exactly the methods and accessors of %s', (cls, iface) => {
    const have = defined(addon[cls]);
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
