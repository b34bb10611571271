// transformers' MarianMTModel beside trainlarge's translators, for test/marian.test.ts and test/opus-mt.test.ts:
// logits and generate through test/peer/hf_marian.py, and trainlarge's search on the same sources.
import * as fs from 'fs';
import * as path from 'path';
import { Transformer } from '../lib';
import { modelInternals } from '../lib/model';
import { editTensors, PythonPeer, tempDir } from './helpers';

/** test/peer/`script` CMD DIR IN.json OUT.json through `peer`: the JSON it wrote. */
export async function peerJson(
  peer: PythonPeer,
  script: string,
  cmd: string,
  dir: string,
  input: object,
): Promise<Record<string, unknown>> {
  const work = tempDir('marian-io');
  fs.writeFileSync(path.join(work, 'in.json'), JSON.stringify(input));
  await peer.run(script, cmd, dir, path.join(work, 'in.json'), path.join(work, 'out.json'));
  const out = JSON.parse(fs.readFileSync(path.join(work, 'out.json'), 'utf8')) as Record<string, unknown>;
  fs.rmSync(work, { recursive: true, force: true });
  return out;
}

export const padded = (seqs: number[][], pad: number) => {
  const T = Math.max(...seqs.map((s) => s.length));
  return {
    ids: seqs.map((s) => [...s, ...Array<number>(T - s.length).fill(pad)]),
    mask: seqs.map((s) => [...s.map(() => 1), ...Array<number>(T - s.length).fill(0)]),
  };
};

/** Max |ours - theirs| over the real target positions of (B, T, V) logits. */
function maxDiff(ours: Float32Array, theirs: number[], dims: number[], tgt: number[][]): number {
  const [B, T, V] = dims;
  let worst = 0;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < tgt[b].length; t++)
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(ours[(b * T + t) * V + v] - theirs[(b * T + t) * V + v]));
  return worst;
}

export async function compareLogits(peer: PythonPeer, model: Transformer, dir: string, src: number[][], tgt: number[][]): Promise<number> {
  const pad = model.config.padId;
  const s = padded(src, pad),
    t = padded(tgt, pad);
  const ref = (await peerJson(peer, 'hf_marian.py', 'logits', dir, { src: s.ids, src_mask: s.mask, tgt: t.ids })) as {
    logits: number[];
    dims: number[];
  };
  const ours = await model.predictTranslation(src, tgt);
  expect(ours.dims).toEqual(ref.dims);
  return maxDiff(ours.data, ref.logits, ref.dims, tgt);
}

export const CAP_MARGIN = 4;

/** trainlarge's search: the engine's ids (no detokenization), at most maxLen - 4 generated tokens before EOS. */
export async function ourSearch(model: Transformer, src: number[][], beam: number): Promise<number[][]> {
  const { ids, mask } = padded(src, model.config.padId);
  const r = await modelInternals(model).handle.translate(
    Int32Array.from(ids.flat()),
    src.length,
    ids[0].length,
    Uint8Array.from(mask.flat()),
    { beam, nbest: 1, lengthPenalty: 1, maxLenA: 0, maxLenB: model.config.maxLen - CAP_MARGIN },
    'fp32',
  );
  const out: number[][] = [];
  let at = 0;
  for (let i = 0; i < src.length; i++) {
    out.push(Array.from(r.tokens.subarray(at, at + r.lengths[i])));
    at += r.lengths[i];
  }
  return out;
}

/** trainlarge's search and transformers' generate on the same sources: equal token for token. */
export async function compareGenerate(
  peer: PythonPeer,
  model: Transformer,
  dir: string,
  src: number[][],
  beam: number,
): Promise<{ same: number; capped: number; mean: number }> {
  const cap = model.config.maxLen - CAP_MARGIN; // generated tokens before the forced EOS, the same on both sides
  const ours = await ourSearch(model, src, beam);
  const { ids, mask } = padded(src, model.config.padId);
  const hf = (await peerJson(peer, 'hf_marian.py', 'generate', dir, {
    src: ids,
    src_mask: mask,
    beams: beam,
    max_new_tokens: cap + 1,
  })) as { tokens: number[][] };
  const same = ours.filter((o, i) => JSON.stringify(o) === JSON.stringify(hf.tokens[i])).length;
  expect(ours).toEqual(hf.tokens);
  return { same, capped: ours.filter((o) => o.length >= cap).length, mean: ours.reduce((n, o) => n + o.length, 0) / ours.length };
}

/**
 * Raises EOS's logit bias (output_bias / final_logits_bias, edited in `file`) by bisection until most greedy
 * translations end on their own EOS before the length cap: a small or random model rarely chooses EOS,
 * and only hypotheses that end by themselves test the searches' conventions (early stopping, the length
 * normalisation counting EOS) rather than the cap. `load` reads the edited file; returns the model and the raise.
 */
export async function endingOnEos(
  file: string,
  bias: string,
  eos: number,
  load: () => Promise<Transformer>,
  src: number[][],
): Promise<{ model: Transformer; raise: number }> {
  let applied = 0;
  const capped = async (raise: number, keep: boolean): Promise<{ n: number; model?: Transformer }> => {
    const step = raise - applied;
    editTensors(file, { [bias]: (d) => (d[eos] += step) });
    applied = raise;
    const model = await load();
    const out = await ourSearch(model, src, 1);
    const n = out.filter((o) => o.length >= model.config.maxLen - CAP_MARGIN).length;
    if (keep) return { n, model };
    model.dispose();
    return { n };
  };
  // The smallest raise (to 1/8) at which fewer than half run to the cap: most end on EOS, as late as they can.
  let lo = 0,
    hi = 64;
  if ((await capped(lo, false)).n < src.length / 2) return { model: (await capped(lo, true)).model!, raise: lo };
  if ((await capped(hi, false)).n >= src.length / 2) throw new Error('endingOnEos: even +64 on EOS leaves most translations at the cap');
  while (hi - lo > 0.125) {
    const mid = (lo + hi) / 2;
    if ((await capped(mid, false)).n < src.length / 2) hi = mid;
    else lo = mid;
  }
  return { model: (await capped(hi, true)).model!, raise: hi };
}
