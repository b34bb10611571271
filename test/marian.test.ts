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
import { bibleTask, PythonPeer, tempDir, trainTranslator } from './helpers';
import { compareGenerate, compareLogits, endingOnEos, peerJson } from './marian-peer';

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

/** `n` test pairs as ids: source and target each encoded and ended with eos, at most 40 tokens. */
function pairs(n: number): { src: number[][]; tgt: number[][]; texts: string[] } {
  const tok = data.tokenizer;
  const test = data.test!;
  const end = (t: string) => [...Array.from(tok.encode(t)).slice(0, 39), tok.special.eos];
  const texts = test.source.slice(0, n);
  return { src: texts.map(end), tgt: test.target.slice(0, n).map(end), texts };
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
    const diff = await compareLogits(peer, model, dir, src, tgt);
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
      const g = await compareGenerate(peer, ending.model, dir, src, beam);
      console.log(
        `random MarianMTModel (EOS bias +${ending.raise}), ${beam === 1 ? 'greedy' : `beam ${beam}`}: ${g.same} of ${src.length} equal token for token (mean length ${g.mean.toFixed(1)}; ${g.capped} reached the length cap)`,
      );
      expect(g.capped).toBeLessThan(src.length / 2);
    }
    // The same translator exported by trainlarge: MarianMTModel's generate on trainlarge's files.
    const out = tempDir('marian-reexport');
    await ending.model.save(out, { format: 'hf', tokenizer: tok });
    for (const beam of [1, 4]) {
      const g = await compareGenerate(peer, ending.model, out, src, beam);
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
    const diff = await compareLogits(peer, mt, dir, src, tgt);
    console.log(`trainlarge -> MarianMTModel: max |logit diff| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
    const marianIds = (await peerJson(peer, 'hf_marian.py', 'tokenize', dir, { texts })) as { ids: number[][] };
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

  test('refusals name the problem: a translator that is not Marian, an unsupported architecture, a legacy pickle', async () => {
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
    await expect(Transformer.fromHF(dir)).rejects.toThrow(/pytorch_model.bin: not a zip archive: torch.save's legacy format/);
  }, 600000);
});
