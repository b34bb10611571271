// Public opus-mt directories (Helsinki-NLP/opus-mt-*): made here by transformers and sentencepiece
// (test/peer/hf_opusmt.py, no network) as the Hub's are: two SentencePiece models trained on the Bible's English and
// Spanish, one vocab.json that numbers the pieces of both in an order of its own (a few source pieces left out),
// tokenizer_config.json and special_tokens_map.json as the Hub's, a random MarianMTModel saved as model.safetensors
// and, in a second directory, as pytorch_model.bin (torch.save's state dict). Transformer.fromHF imports them: the
// 'marian' Tokenizer gives MarianTokenizer's ids on every real sentence of the corpus (sources and targets) and its
// decoded strings; the model gives MarianMTModel's logits, the .bin the same weights as the .safetensors, trainlarge's
// greedy and beam-4 search transformers' generate token for token; save({ format: 'hf' }) writes it back for
// MarianTokenizer and MarianMTModel. finetune --from-hf --task translate, compress --bits 4 and translate run on it.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ParallelTask, Tokenizer, Transformer } from '../lib';
import { bibleTask, PythonPeer, tempDir } from './helpers';
import { compareGenerate, compareLogits, endingOnEos, peerJson } from './marian-peer';

const CLI = path.resolve(__dirname, '..', 'dist', 'lib', 'cli.js');
const SIZE = { d: 64, enc: 2, dec: 2, heads: 4, ffn: 128, max_positions: 64 };

let peer: PythonPeer;
let data: ParallelTask;
let root: string;
let dir: string; // model.safetensors
let binDir: string; // pytorch_model.bin only
let made: { vocab: number; dropped: string[] };

/** The sentences MarianTokenizer and trainlarge must agree on: every pair of the corpus, and the edge cases. */
const EDGES = [
  '',
  '   ',
  'In the beginning </s> God created <unk> the heaven <pad>.',
  '>>es<< In the beginning God created the heaven and the earth.',
  '>>xx<<Unknown code, no space.',
  '>> not a code',
  'naïve café ☃ 日本語 — “quotes” ½ ﬁ',
  'tabs\tand  double  spaces\nand a newline',
  'JESUS WEPT!!! 12345 67.89',
];

beforeAll(async () => {
  peer = new PythonPeer();
  data = await bibleTask();
  root = tempDir('opus-mt');
  const text = (side: 'source' | 'target') => {
    const f = path.join(root, `${side}.txt`);
    fs.writeFileSync(f, data.pairs.train[side].join('\n') + '\n');
    return f;
  };
  dir = path.join(root, 'opus-mt-en-es');
  binDir = path.join(root, 'opus-mt-en-es-bin');
  const spec = { source: text('source'), target: text('target'), source_vocab: 800, target_vocab: 900, drop: 3 };
  const out = await peer.run(
    'hf_opusmt.py',
    'make',
    dir,
    JSON.stringify({ ...spec, ...SIZE, codes: ['>>es<<', '>>en<<'], seed: 1, bin: binDir }),
  );
  made = JSON.parse(out) as typeof made;
}, 600000);

afterAll(() => {
  peer?.close();
  data?.dispose();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

/** `n` test pairs as the model's ids: source and target each encoded by the Marian tokenizer and ended with eos, at most 40 tokens. */
function pairs(tok: Tokenizer, n: number): { src: number[][]; tgt: number[][]; texts: string[] } {
  const end = (ids: Int32Array) => [...Array.from(ids).slice(0, 39), tok.special.eos];
  const texts = data.pairs.test.source.slice(0, n);
  return { src: texts.map((t) => end(tok.encode(t))), tgt: data.pairs.test.target.slice(0, n).map((t) => end(tok.encodeTarget(t))), texts };
}

describe('opus-mt', () => {
  test("the Marian tokenizer gives MarianTokenizer's ids on every sentence of the corpus, both sides, and decodes its strings", async () => {
    const tok = await Tokenizer.fromDir(dir);
    expect(tok.kind).toBe('marian');
    expect(tok.vocabSize).toBe(made.vocab);
    expect(tok.special).toMatchObject({ eos: 0, unk: 1, pad: made.vocab - 1 });
    const all = (side: 'source' | 'target') => [...data.pairs.train[side], ...data.pairs.valid[side], ...data.pairs.test[side], ...EDGES];
    const sources = all('source'),
      targets = all('target');
    const ref = (await peerJson(peer, 'hf_opusmt.py', 'tokenize', dir, { sources, targets })) as {
      sources: number[][];
      targets: number[][];
    };
    const eos = tok.special.eos;
    const ours = { sources: sources.map((t) => [...tok.encode(t), eos]), targets: targets.map((t) => [...tok.encodeTarget(t), eos]) };
    const same = (a: number[][], b: number[][]) => a.filter((x, i) => JSON.stringify(x) === JSON.stringify(b[i])).length;
    const unk = ref.sources.filter((ids) => ids.includes(tok.special.unk)).length;
    console.log(
      `MarianTokenizer ids: ${same(ours.sources, ref.sources)} of ${sources.length} sources and ${same(ours.targets, ref.targets)} of ` +
        `${targets.length} targets equal (${unk} sources hold <unk>; ${made.dropped.length} source pieces not in vocab.json)`,
    );
    expect(ours.sources).toEqual(ref.sources);
    expect(ours.targets).toEqual(ref.targets);
    expect(unk).toBeGreaterThan(0);
    // encodeBatch and encodeTargetBatch are encode's and encodeTarget's.
    expect((await tok.encodeBatch(sources.slice(0, 50))).map((a) => Array.from(a))).toEqual(
      ref.sources.slice(0, 50).map((a) => a.slice(0, -1)),
    );
    expect((await tok.encodeTargetBatch(targets.slice(0, 50))).map((a) => Array.from(a))).toEqual(
      ref.targets.slice(0, 50).map((a) => a.slice(0, -1)),
    );
    // Decoding: the targets' ids, the sources' (pieces of the other model, language codes, unk), and ids in vocab.json's order.
    const lists = [...ref.targets, ...ref.sources, Array.from({ length: 60 }, (_, i) => (i * 37) % made.vocab)];
    const decoded = (await peerJson(peer, 'hf_opusmt.py', 'tokenize', dir, { decode: lists })) as { decoded: string[] };
    const mine = lists.map((ids) => tok.decode(ids));
    console.log(`MarianTokenizer decode: ${mine.filter((s, i) => s === decoded.decoded[i]).length} of ${lists.length} strings equal`);
    expect(mine).toEqual(decoded.decoded);
  }, 600000);

  test("fromHF imports it from model.safetensors and from pytorch_model.bin: MarianMTModel's logits, generate token for token, and back", async () => {
    const model = await Transformer.fromHF(dir);
    expect(model.config).toMatchObject({
      task: 'translate',
      vocabSize: made.vocab,
      padId: made.vocab - 1,
      bosId: made.vocab - 1,
      eosId: 0,
    });
    const tok = model.tokenizer!;
    expect(tok.kind).toBe('marian');
    const { src, tgt, texts } = pairs(tok, 16);
    const diff = await compareLogits(peer, model, dir, src, tgt);
    console.log(`opus-mt (model.safetensors) -> fromHF: max |logit diff| ${diff.toExponential(2)} over 16 en-es test pairs`);
    expect(diff).toBeLessThan(1e-4);
    // pytorch_model.bin, read by libtorch: the same weights.
    const fromBin = await Transformer.fromHF(binDir);
    expect(fromBin.config).toEqual(model.config);
    expect(fromBin.tokenizer?.sha256).toBe(tok.sha256);
    const a = await model.predictTranslation(src, tgt);
    const b = await fromBin.predictTranslation(src, tgt);
    let worst = 0;
    a.data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b.data[i]))));
    console.log(`opus-mt pytorch_model.bin vs model.safetensors: max |logit diff| ${worst}`);
    expect(worst).toBe(0);
    fromBin.dispose();
    model.dispose();

    // Greedy on the model as made: most translations run to the length cap, token for token all the way.
    const raw = await Transformer.fromHF(dir);
    const g0 = await compareGenerate(peer, raw, dir, src, 1);
    console.log(
      `opus-mt (no EOS bias), greedy: ${g0.same} of ${src.length} equal token for token (mean length ${g0.mean.toFixed(1)}; ${g0.capped} reached the length cap)`,
    );
    raw.dispose();
    const ending = await endingOnEos(path.join(dir, 'model.safetensors'), 'final_logits_bias', 0, () => Transformer.fromHF(dir), src);
    for (const beam of [1, 4]) {
      const g = await compareGenerate(peer, ending.model, dir, src, beam);
      console.log(
        `opus-mt (EOS bias +${ending.raise}), ${beam === 1 ? 'greedy' : `beam ${beam}`}: ${g.same} of ${src.length} equal token for token (mean length ${g.mean.toFixed(1)}; ${g.capped} reached the length cap)`,
      );
      expect(g.capped).toBeLessThan(src.length / 2);
    }
    expect((await ending.model.translate(texts.slice(0, 4), { beam: 1 })).every((t) => typeof t === 'string')).toBe(true);

    // Back to transformers: MarianTokenizer and MarianMTModel load trainlarge's export with the same ids and logits.
    const out = path.join(root, 'export');
    await ending.model.save(out, { format: 'hf', tokenizer: ending.model.tokenizer });
    for (const f of ['source.spm', 'target.spm', 'vocab.json', 'tokenizer_config.json'])
      expect(fs.readFileSync(path.join(out, f))).toEqual(fs.readFileSync(path.join(dir, f)));
    const back = await compareLogits(peer, ending.model, out, src, tgt);
    console.log(`opus-mt -> trainlarge -> save hf -> MarianMTModel: max |logit diff| ${back.toExponential(2)}`);
    expect(back).toBeLessThan(1e-4);
    const ids = (await peerJson(peer, 'hf_opusmt.py', 'tokenize', out, { sources: texts, targets: [] })) as { sources: number[][] };
    expect(ids.sources).toEqual(texts.map((t) => [...tok.encode(t), tok.special.eos]));
    const again = await Transformer.fromHF(out);
    expect(again.tokenizer?.sha256).toBe(tok.sha256);
    const c = await again.predictTranslation(src, tgt);
    const d = await ending.model.predictTranslation(src, tgt);
    expect(Array.from(c.data)).toEqual(Array.from(d.data));
    again.dispose();
    ending.model.dispose();
  }, 900000);

  test('refusals name the field: separate vocabularies, a legacy pickle, a sharded checkpoint', async () => {
    const copy = (name: string, skip: string[] = []) => {
      const to = path.join(root, name);
      fs.mkdirSync(to);
      for (const f of fs.readdirSync(binDir)) if (!skip.includes(f)) fs.copyFileSync(path.join(binDir, f), path.join(to, f));
      return to;
    };
    const separate = copy('separate');
    fs.writeFileSync(path.join(separate, 'tokenizer_config.json'), JSON.stringify({ separate_vocabs: true }));
    await expect(Transformer.fromHF(separate)).rejects.toThrow(/separate_vocabs is true .*target_vocab.json.*one vocabulary/);
    const legacy = copy('legacy', ['pytorch_model.bin']);
    fs.writeFileSync(path.join(legacy, 'pytorch_model.bin'), Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46]));
    await expect(Transformer.fromHF(legacy)).rejects.toThrow(/not a zip archive: torch.save's legacy format \(PyTorch before 1.6\)/);
    const sharded = copy('sharded', ['pytorch_model.bin']);
    fs.writeFileSync(path.join(sharded, 'pytorch_model.bin.index.json'), '{}');
    await expect(Transformer.fromHF(sharded)).rejects.toThrow(/sharded over several files is not supported/);
    const tok = await Tokenizer.fromDir(dir);
    await expect(tok.save(path.join(root, 'one.model'))).rejects.toThrow(/a Marian tokenizer is 5 files .*use saveTo\(dir\)/);
  }, 120000);

  test('trainlarge finetune --from-hf DIR --task translate, then compress --bits 4 and translate, run on it', () => {
    const tsv = (name: string, split: 'train' | 'valid' | 'test', n: number) => {
      const f = path.join(root, 'pairs', name);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      const p = data.pairs[split];
      fs.writeFileSync(
        f,
        p.source
          .slice(0, n)
          .map((s, i) => `${s}\t${p.target[i]}`)
          .join('\n') + '\n',
      );
      return f;
    };
    const cli = (args: string[], input?: string) => {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
      if (r.status !== 0) throw new Error(`trainlarge ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
      return r.stdout;
    };
    const ft = path.join(root, 'runs', 'ft');
    const tuned = JSON.parse(
      cli([
        'finetune',
        '--from-hf',
        dir,
        '--task',
        'translate',
        '--train',
        tsv('train.tsv', 'train', 300),
        '--valid',
        tsv('valid.tsv', 'valid', 8),
        '--test',
        tsv('test.tsv', 'test', 8),
        '--dir',
        ft,
        '--steps',
        '20',
        '--batch-tokens',
        '512',
        '--lr',
        '2e-3',
        '--eval-every',
        '20',
        '--json',
      ]),
    ) as { firstLoss: number; lastLoss: number; steps: number; bleu: number };
    console.log(
      `finetune --from-hf opus-mt --task translate: ${tuned.steps} steps, loss ${tuned.firstLoss.toFixed(3)} -> ${tuned.lastLoss.toFixed(3)}`,
    );
    expect(tuned.steps).toBe(20);
    expect(tuned.lastLoss).toBeLessThan(tuned.firstLoss);
    for (const f of ['source.spm', 'target.spm', 'vocab.json', 'task.json']) expect(fs.existsSync(path.join(ft, f))).toBe(true);
    const q4 = path.join(root, 'runs', 'ft-q4');
    const packed = JSON.parse(cli(['compress', '--model', ft, '--bits', '4', '--dir', q4, '--json'])) as {
      before: { bytes: number; bleu: number };
      after: { bytes: number; bleu: number; fileBytes: number };
    };
    console.log(
      `compress --bits 4: ${packed.before.bytes} -> ${packed.after.bytes} bytes, BLEU ${packed.before.bleu.toFixed(2)} -> ${packed.after.bleu.toFixed(2)}`,
    );
    expect(packed.after.bytes).toBeLessThan(packed.before.bytes / 2);
    const sources = data.pairs.test.source.slice(0, 5);
    const lines = cli(['translate', q4, '--beam', '2'], sources.join('\n') + '\n').split('\n');
    expect(lines).toHaveLength(sources.length + 1);
    expect(lines[sources.length]).toBe('');
  }, 600000);
});
