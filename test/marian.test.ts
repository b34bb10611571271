// transformers' MarianMT both ways (lib/marian.ts): a random MarianMTModel made by transformers
// (test/peer/hf_marian.py, no network) loads with Transformer.fromHF and gives its logits on real sentences
// (the Bible's en-es test split, trainlarge's tokenizer); with EOS's logit bias raised until most sentences
// end on their own, trainlarge's greedy and beam-4 search give transformers' generate token for token, on
// transformers' files and on trainlarge's export of the same model. A trainlarge translator with Marian's
// architecture options, trained briefly, exports with save({ format: 'hf' }): MarianMTModel's logits,
// MarianTokenizer's ids, and back with the same logits. Translators that are not Marian are refused by name.
import * as fs from 'fs';
import * as path from 'path';
import { ParallelTask, Transformer } from '../lib';
import { parseModelConfig } from '../lib/config/model';
import { modelInternals } from '../lib/model';
import { bibleTask, editTensors, PythonPeer, tempDir, trainTranslator } from './helpers';

/** Marian's architecture (MarianMTModel): the options a trainlarge translator needs to be one. */
const MARIAN = {
  positions: 'sinusoidal',
  activation: 'swish',
  scaleEmbeddings: true,
  embeddingNorm: false,
  finalLogitsBias: true,
} as const;
const SIZE = { task: 'translate', encoderLayers: 2, decoderLayers: 2, dModel: 64, heads: 4, ffn: 128, maxLen: 64 } as const;

let peer: PythonPeer;
let data: ParallelTask;
beforeAll(async () => {
  peer = new PythonPeer();
  data = await bibleTask();
}, 600000);
afterAll(() => {
  peer.close();
  data?.dispose();
});

async function py(cmd: string, dir: string, input: object): Promise<Record<string, unknown>> {
  const work = tempDir('marian-io');
  fs.writeFileSync(path.join(work, 'in.json'), JSON.stringify(input));
  await peer.run('hf_marian.py', cmd, dir, path.join(work, 'in.json'), path.join(work, 'out.json'));
  return JSON.parse(fs.readFileSync(path.join(work, 'out.json'), 'utf8')) as Record<string, unknown>;
}

/** `n` test pairs as ids: source and target each encoded and ended with eos, at most 40 tokens. */
function pairs(n: number): { src: number[][]; tgt: number[][]; texts: string[] } {
  const tok = data.tokenizer;
  const test = data.test!;
  const end = (t: string) => [...Array.from(tok.encode(t)).slice(0, 39), tok.special.eos];
  const texts = test.source.slice(0, n);
  return { src: texts.map(end), tgt: test.target.slice(0, n).map(end), texts };
}

const padded = (seqs: number[][], pad: number) => {
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

async function compareLogits(model: Transformer, dir: string, src: number[][], tgt: number[][]): Promise<number> {
  const pad = model.config.padId;
  const s = padded(src, pad),
    t = padded(tgt, pad);
  const ref = (await py('logits', dir, { src: s.ids, src_mask: s.mask, tgt: t.ids })) as { logits: number[]; dims: number[] };
  const ours = await model.predictTranslation(src, tgt);
  expect(ours.dims).toEqual(ref.dims);
  return maxDiff(ours.data, ref.logits, ref.dims, tgt);
}

const CAP_MARGIN = 4;

/** trainlarge's search: the engine's ids (no detokenization), at most maxLen - 4 generated tokens before EOS. */
async function ourSearch(model: Transformer, src: number[][], beam: number): Promise<number[][]> {
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
async function compareGenerate(
  model: Transformer,
  dir: string,
  src: number[][],
  beam: number,
): Promise<{ same: number; capped: number; mean: number }> {
  const cap = model.config.maxLen - CAP_MARGIN; // generated tokens before the forced EOS, the same on both sides
  const ours = await ourSearch(model, src, beam);
  const { ids, mask } = padded(src, model.config.padId);
  const hf = (await py('generate', dir, { src: ids, src_mask: mask, beams: beam, max_new_tokens: cap + 1 })) as { tokens: number[][] };
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
async function endingOnEos(
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

describe('MarianMT', () => {
  test('a random transformers MarianMTModel loads with fromHF: its logits on real sentences, generate equal to translate both ways (greedy, beam 4)', async () => {
    const tok = data.tokenizer;
    const dir = tempDir('marian-random');
    await peer.run(
      'hf_marian.py',
      'make',
      dir,
      JSON.stringify({
        vocab: tok.vocabSize,
        d: 64,
        enc: 2,
        dec: 2,
        heads: 4,
        ffn: 128,
        max_positions: 64,
        pad: tok.special.pad,
        eos: tok.special.eos,
        seed: 1,
      }),
    );
    await tok.saveTo(dir); // the ids the model was made for
    const model = await Transformer.fromHF(dir);
    expect(model.config).toMatchObject({
      ...SIZE,
      ...MARIAN,
      norm: 'post',
      tieEmbeddings: 'all',
      padId: tok.special.pad,
      bosId: tok.special.pad,
      eosId: tok.special.eos,
    });
    expect(model.tokenizer?.sha256).toBe(tok.sha256);
    const { src, tgt } = pairs(24);
    const diff = await compareLogits(model, dir, src, tgt);
    console.log(`random MarianMTModel -> fromHF: max |logit diff| ${diff.toExponential(2)} over 24 en-es test pairs`);
    expect(diff).toBeLessThan(1e-4);
    model.dispose();
    // generate: with EOS's final_logits_bias raised until most greedy translations end on their own.
    const ending = await endingOnEos(
      path.join(dir, 'model.safetensors'),
      'final_logits_bias',
      tok.special.eos,
      () => Transformer.fromHF(dir),
      src,
    );
    for (const beam of [1, 4]) {
      const g = await compareGenerate(ending.model, dir, src, beam);
      console.log(
        `random MarianMTModel (EOS bias +${ending.raise}), ${beam === 1 ? 'greedy' : `beam ${beam}`}: ${g.same} of ${src.length} equal token for token (mean length ${g.mean.toFixed(1)}; ${g.capped} reached the length cap)`,
      );
      expect(g.capped).toBeLessThan(src.length / 2);
    }
    // The same translator exported by trainlarge: MarianMTModel's generate on trainlarge's files.
    const out = tempDir('marian-reexport');
    await ending.model.save(out, { format: 'hf', tokenizer: tok });
    for (const beam of [1, 4]) {
      const g = await compareGenerate(ending.model, out, src, beam);
      console.log(
        `exported by trainlarge, ${beam === 1 ? 'greedy' : `beam ${beam}`}: ${g.same} of ${src.length} equal token for token (mean length ${g.mean.toFixed(1)}; ${g.capped} reached the length cap)`,
      );
    }
    ending.model.dispose();
  }, 900000);

  test('a trained translator exports as MarianMT: same logits, MarianTokenizer ids, and back with the same logits', async () => {
    const tok = data.tokenizer;
    const mt0 = await Transformer.create(
      { ...SIZE, ...MARIAN, vocabSize: tok.vocabSize, padId: tok.special.pad, bosId: tok.special.pad, eosId: tok.special.eos },
      { seed: 3 },
    );
    await trainTranslator(mt0, data.train, 100);
    const { src, tgt, texts } = pairs(24);
    const mt = mt0;
    const dir = tempDir('marian-export');
    await mt.save(dir, { format: 'hf', tokenizer: tok });
    const diff = await compareLogits(mt, dir, src, tgt);
    console.log(`trainlarge -> MarianMTModel: max |logit diff| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
    const marianIds = (await py('tokenize', dir, { texts })) as { ids: number[][] };
    expect(marianIds.ids).toEqual(texts.map((t) => [...Array.from(tok.encode(t)), tok.special.eos]));
    const back = await Transformer.fromHF(dir);
    expect(back.config).toEqual(mt.config);
    const a = await mt.predictTranslation(src, tgt);
    const b = await back.predictTranslation(src, tgt);
    let worst = 0;
    a.data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b.data[i]))));
    console.log(`trainlarge -> HF -> trainlarge: max |logit diff| ${worst.toExponential(2)}`);
    expect(worst).toBe(0);
    mt.dispose();
    back.dispose();
  }, 1500000);

  test('the architecture options: defaults leave configs as they were, translate models only, saved and loaded with the model', async () => {
    const plain = parseModelConfig({ ...SIZE, vocabSize: 100 });
    for (const k of Object.keys(MARIAN)) expect(plain).not.toHaveProperty(k);
    expect(parseModelConfig({ ...SIZE, vocabSize: 100, positions: 'learned', activation: 'gelu', embeddingNorm: true })).toEqual(plain);
    expect(() => parseModelConfig({ task: 'mlm', vocabSize: 100, positions: 'sinusoidal' })).toThrow(
      /positions: only applies when task is 'translate'/,
    );
    expect(() => parseModelConfig({ ...SIZE, vocabSize: 100, norm: 'pre', embeddingNorm: false })).toThrow(
      /embeddingNorm: only applies when norm is 'post'/,
    );
    const mt = await Transformer.create({ ...SIZE, ...MARIAN, activation: 'relu', vocabSize: 100 }, { seed: 2 });
    const dir = tempDir('marian-options');
    await mt.save(dir);
    const back = await Transformer.load(dir);
    expect(back.config).toEqual(mt.config);
    const src = [[5, 6, 7, 2]],
      tgt = [[8, 9, 2]];
    expect((await back.predictTranslation(src, tgt)).data).toEqual((await mt.predictTranslation(src, tgt)).data);
    // No position tensors with sinusoids, and the logits' bias saved as output_bias.
    await expect(mt.weight('positions.weight')).rejects.toThrow();
    expect((await mt.weight('output_bias')).dims).toEqual([100]);
    mt.dispose();
    back.dispose();
  });

  test('refusals name the problem: a translator that is not Marian, an unsupported architecture, a pickle', async () => {
    const tok = data.tokenizer;
    const plain = await Transformer.create({ ...SIZE, vocabSize: tok.vocabSize }, { seed: 1 });
    const dir = tempDir('marian-refuse');
    await expect(plain.save(dir, { format: 'hf' })).rejects.toThrow(
      /not a MarianMTModel: learned positions .*positions 'sinusoidal'.*embeddingNorm false/,
    );
    expect(fs.readdirSync(dir)).toEqual([]);
    plain.dispose();
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['T5ForConditionalGeneration'] }));
    await expect(Transformer.fromHF(dir)).rejects.toThrow(
      /architecture 'T5ForConditionalGeneration' is not supported; expected one of .*MarianMTModel/,
    );
    fs.writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({
        architectures: ['MarianMTModel'],
        vocab_size: 100,
        max_position_embeddings: 64,
        d_model: 16,
        encoder_layers: 1,
        decoder_layers: 1,
        encoder_attention_heads: 2,
        decoder_attention_heads: 2,
        encoder_ffn_dim: 32,
        decoder_ffn_dim: 32,
        pad_token_id: 99,
        eos_token_id: 0,
      }),
    );
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), '');
    await expect(Transformer.fromHF(dir)).rejects.toThrow(/no model.safetensors \(pytorch_model.bin is a pickle/);
  }, 600000);
});
