import * as fs from 'fs';
import * as path from 'path';
import { Transformer } from '../lib';
import { PythonPeer, small, tempDir } from './helpers';

// The project environment's pip torch (the same libtorch the engine links) runs the reference
// implementation, test/peer/trainlarge_peer.py, in one Python for the suite.
let peer: PythonPeer;
beforeAll(() => (peer = new PythonPeer()));
afterAll(() => peer.close());

async function torchLogits(dir: string, ids: number[][], mask: number[][] | null): Promise<{ data: Float32Array; dims: number[] }> {
  const input = path.join(dir, 'input.json');
  const output = path.join(dir, 'torch_logits.bin');
  fs.writeFileSync(input, JSON.stringify({ ids, mask }));
  const { dims } = await peer.json<{ dims: number[] }>('logits.py', dir, input, output);
  const buf = fs.readFileSync(output);
  return { data: new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4), dims };
}

describe('logits match PyTorch (the torch of the project environment) on the saved safetensors', () => {
  const cases = [
    { name: 'post_ln_mlm', config: { ...small } },
    { name: 'pre_ln_mlm', config: { ...small, norm: 'pre' as const } },
    { name: 'post_ln_classify', config: { ...small, task: 'classify' as const, numLabels: 3 } },
    // The shape head pruning leaves (prune structure 'heads+ffn'): 2 heads of width 16 under dModel 64, a narrower ffn.
    { name: 'pruned_heads_classify', config: { ...small, task: 'classify' as const, numLabels: 3, heads: 2, headDim: 16, ffn: 96 } },
  ];
  test.each(cases)('$name', async ({ config }) => {
    const model = await Transformer.create(config, { seed: 21 });
    const dir = tempDir('parity');
    await model.save(dir);
    const ids = [
      [1, 40, 77, 120, 4, 200, 33, 9, 10, 11],
      [1, 88, 4, 150, 16, 0, 0, 0, 0, 0],
    ];
    const mask = ids.map((row, b) => row.map((_, i) => (b === 1 && i >= 5 ? 0 : 1)));
    const ours = await model.predict(ids.map((r, b) => (b === 1 ? r.slice(0, 5) : r)));
    const theirs = await torchLogits(dir, ids, mask);
    expect(ours.dims).toEqual(theirs.dims);
    let maxDiff = 0;
    const B = ours.dims[0];
    const perRow = ours.data.length / B;
    const T = ids[0].length;
    for (let b = 0; b < B; b++) {
      // Compare real positions only (padding positions' logits are not defined by either side's contract).
      const valid = model.config.task === 'classify' ? perRow : (b === 1 ? 5 : T) * (perRow / T);
      for (let i = 0; i < valid; i++) maxDiff = Math.max(maxDiff, Math.abs(ours.data[b * perRow + i] - theirs.data[b * perRow + i]));
    }
    expect(maxDiff).toBeLessThan(1e-4);
    model.dispose();
  });
});
