import { execFileSync } from 'child_process';
import * as path from 'path';
import { Transformer } from '../lib';
import { PEER_PYTHON } from '../bench/report';

// The training benchmark's peers (bench/peer_train.py): the plain PyTorch model and transformers'
// RobertaForMaskedLM are the same size as trainlarge's model and train (2 steps, tiny sizes; nothing timed).
const PEER = path.join(__dirname, '..', 'bench', 'peer_train.py');
const model = {
  task: 'mlm' as const,
  vocabSize: 300,
  maxLen: 16,
  dModel: 32,
  layers: 2,
  heads: 2,
  ffn: 64,
  dropout: 0.1,
  attentionDropout: 0.1,
  norm: 'post' as const,
  layerNormEps: 1e-5,
  padId: 0,
};

interface PeerOut {
  losses: number[];
  parameters: number;
  steps: number;
  impl: string;
  attention: string | null;
}

function peer(extra: Record<string, unknown>): PeerOut {
  const arg = JSON.stringify({ model, batchSize: 2, threads: 1, steps: 2, warmup: 0, seed: 3, ...extra });
  return JSON.parse(execFileSync(PEER_PYTHON, [PEER, arg], { encoding: 'utf8' }).trim().split('\n').pop()!) as PeerOut;
}

describe('benchmark peers', () => {
  let engineParameters = 0;
  beforeAll(async () => {
    const m = await Transformer.create(model, { seed: 1 });
    engineParameters = m.parameterCount;
    m.dispose();
  });

  test('plain PyTorch: the engine model parameter count, 2 steps with finite loss', () => {
    const out = peer({ impl: 'torch' });
    expect(out.parameters).toBe(engineParameters);
    expect(out.steps).toBe(2);
    expect(out.losses).toHaveLength(2);
    for (const l of out.losses) expect(Number.isFinite(l)).toBe(true);
  });

  test('transformers RobertaForMaskedLM (sdpa): the same size but for 2 x dModel, 2 steps with finite loss', () => {
    const out = peer({ impl: 'hf' });
    expect(out.impl).toBe('hf');
    expect(out.attention).toBe('sdpa');
    // one token-type row and one more position row (RoBERTa's position ids start at padId + 1)
    expect(out.parameters).toBe(engineParameters + 2 * model.dModel);
    expect(out.steps).toBe(2);
    for (const l of out.losses) expect(Number.isFinite(l)).toBe(true);
    // The first loss is ln(vocab)-like at init; the head on the masked positions only gives the same losses.
    expect(out.losses[0]).toBeGreaterThan(Math.log(model.vocabSize) - 1);
    const masked = peer({ impl: 'hf', hfLoss: 'masked' });
    for (let i = 0; i < 2; i++) expect(masked.losses[i]).toBeCloseTo(out.losses[i], 3);
  });
});
