// The engine builds and runs without Node: build/trainlarge_engine_test (native/tests/engine_test.cc, made
// by the cmake build) links only the engine library and libtorch, trains a small masked-LM on real text,
// compresses it and reloads the packed file.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadSpeeches } from '../lib';
import { tempDir } from './helpers';

const root = path.resolve(__dirname, '..');
const program = path.join(root, 'build', 'trainlarge_engine_test');
const stamp = JSON.parse(fs.readFileSync(path.join(root, 'build', 'trainlarge.json'), 'utf8'));
const cmake = stamp.builder === 'cmake';

(cmake ? describe : describe.skip)('the engine without Node', () => {
  test('links no Node-API symbol and no Node library', () => {
    const undefinedSymbols = execFileSync('nm', ['-D', '--undefined-only', program], { encoding: 'utf8' });
    expect(undefinedSymbols).toMatch(/_ZN\d*at\d/); // it calls into libtorch's ATen
    expect(undefinedSymbols).not.toMatch(/\bnapi_|\bnode_api|uv_/);
    const needed = execFileSync('readelf', ['-d', program], { encoding: 'utf8' });
    expect(needed).toMatch(/libtorch_cpu\.so/);
    expect(needed).not.toMatch(/libnode|trainlarge\.node/);
  });

  test('trains, compresses and reloads a model on real text', () => {
    const dir = tempDir('engine');
    const text = path.join(dir, 'speeches.txt');
    fs.writeFileSync(
      text,
      loadSpeeches()
        .slice(0, 8)
        .map((s) => s.text)
        .join('\n\n'),
    );
    const out = execFileSync(program, [text, path.join(dir, 'out')], { encoding: 'utf8', timeout: 120000 });
    const r = JSON.parse(out.trim().split('\n').pop()!);
    expect(r.tokens).toBeGreaterThan(100000);
    // The fused optimizer and dropout against their op-by-op definitions (the program checks and exits 1 otherwise).
    expect(r.adamwMaxDifference).toBeLessThan(1e-6);
    expect(Math.abs(r.dropoutKeep - 0.9)).toBeLessThan(0.005);
    expect(r.attentionPathsDifference).toBeLessThan(1e-4);
    // Byte-level MLM starts at ln(261) = 5.56 nats; 60 steps learn the letter frequencies and more.
    expect(r.validBefore).toBeGreaterThan(5.3);
    expect(r.validAfter).toBeLessThan(r.validBefore - 0.5);
    // 50% pruning + 4 bits keeps the model close to what it was (the paper's robustness), and the
    // packed file is far below the float32 weights.
    expect(r.validCompressed).toBeLessThan(r.validAfter + 0.3);
    expect(r.packedBytes).toBeLessThan(0.6 * r.denseBytes);
    expect(fs.statSync(path.join(dir, 'out', 'model.safetensors')).size).toBe(r.packedBytes);
    // Half the heads and FFN units removed: a smaller dense file, a model that still predicts text.
    expect(r.structuredBytes).toBeLessThan(0.8 * r.denseBytes);
    expect(r.validStructured).toBeLessThan(r.validBefore);
  });
});
