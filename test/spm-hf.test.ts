// trainlarge's SentencePiece tokenizers exported in Hugging Face's files (issue 30): Python (transformers,
// tokenizers and sentencepiece of the project environment, test/peer/spm_hf.py) must get trainlarge's ids
// from `AutoTokenizer.from_pretrained(dir)` on real sentences, for each model kind trainlarge trains, and
// trainlarge must read the files back to the same tokenizer.
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer, Transformer } from '../lib';
import { englishProseDocuments } from '../lib/data/builtin/sources';
import { parseSpmModel, spmToHfFiles } from '../lib/data/spm-hf';
import { classificationLayout } from '../lib/data/task';
import { idMismatches, PythonPeer, sentencesOf, tempDir, TOKENIZER_EDGE_CASES } from './helpers';

jest.setTimeout(300_000);

const SENTENCES = 6_000;
const TRAIN_DOCS = 300;
const KINDS = ['bpe', 'unigram'] as const;
const HF_FILES = ['special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'];

// Besides prose: the shared edge cases (byte fallback for scripts and emoji) and NFKC's odd spaces and ligatures.
const EDGE_CASES = [...TOKENIZER_EDGE_CASES, '\u00a0nbsp\u2003emspace ﬁ ligature Ｆｕｌｌｗｉｄｔｈ'];

let dir: string;
let texts: string[];
const toks: Partial<Record<(typeof KINDS)[number], Tokenizer>> = {};
let peer: PythonPeer;

/** transformers' ids (and the sentencepiece package's, without `special`) for `items` with the files in `hfDir`. */
async function pythonIds(
  hfDir: string,
  model: string,
  items: (string | [string, string])[],
  special = false,
): Promise<{ hf: number[][]; spm: number[][]; info: { class: string; mask: number; pad: number } }> {
  const input = path.join(dir, 'texts.json');
  const output = path.join(dir, 'ids.json');
  fs.writeFileSync(input, JSON.stringify(items));
  const info = await peer.json<{ class: string; mask: number; pad: number }>(
    'spm_hf.py',
    'encode',
    hfDir,
    model,
    input,
    output,
    ...(special ? ['--special'] : []),
  );
  return { ...(JSON.parse(fs.readFileSync(output, 'utf8')) as { hf: number[][]; spm: number[][] }), info };
}

/** How many of `ours` differ from `theirs`, and the first few (`items`: the texts by default). */
const mismatches = (ours: ArrayLike<number>[], theirs: number[][], items: unknown[] = texts) => idMismatches(ours, theirs, items);

beforeAll(async () => {
  peer = new PythonPeer();
  dir = tempDir('spm-hf');
  const prose = await englishProseDocuments();
  const train = prose.train.slice(0, TRAIN_DOCS).map((d) => d.text);
  for (const model of KINDS) toks[model] = await Tokenizer.train({ texts: train, vocabSize: 3000, model });
  // Held-out sentences: the validation documents', then the training documents' not trained on.
  texts = [...EDGE_CASES, ...sentencesOf([...prose.valid, ...prose.train.slice(TRAIN_DOCS)], SENTENCES)];
});

afterAll(() => {
  peer.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe.each(KINDS)("a SentencePiece %s tokenizer in Hugging Face's files", (kind) => {
  test(`AutoTokenizer gives trainlarge's ids on ${SENTENCES} held-out english-prose sentences`, async () => {
    expect(texts.length).toBeGreaterThan(SENTENCES);
    const tok = toks[kind]!;
    const out = path.join(dir, `${kind}-hf`);
    await tok.saveTo(out, { format: 'hf' });
    expect(fs.readdirSync(out).sort()).toEqual([...HF_FILES.slice(0, 2), 'tokenizer.model', HF_FILES[2]]);
    const { hf, spm, info } = await pythonIds(out, path.join(out, 'tokenizer.model'), texts);
    expect(info).toMatchObject({ class: 'TokenizersBackend', mask: tok.special.mask, pad: tok.special.pad });
    // tokenizers encodes word by word, as trainlarge's encode does (its word cache); SentencePiece itself, as
    // encodeUncached, runs over the whole text, where a unigram tie ('▁ 0 00' or '▁ 00 0', the same sum) can
    // fall the other way after other words (1 sentence in 6,000 here).
    const ours = texts.map((t) => tok.encode(t));
    expect(mismatches(ours, hf)).toEqual({ count: 0, first: [] });
    expect(
      mismatches(
        texts.map((t) => tok.encodeUncached(t)),
        spm,
      ),
    ).toEqual({ count: 0, first: [] });
    expect(mismatches(ours, spm).count).toBeLessThanOrEqual(kind === 'unigram' ? 3 : 0);
    // Byte fallback was exercised: the emoji and CJK have no pieces of their own.
    expect(tok.pieces(tok.encode('😀')).some((p) => /^<0x[0-9A-F]{2}>$/.test(p))).toBe(true);
  });

  test("<s> a </s> and <s> a </s></s> b </s> as trainlarge lays them out; <mask> in the text is the mask token, as transformers' converter makes it", async () => {
    const tok = toks[kind]!;
    const out = path.join(dir, `${kind}-hf`);
    const pairs: [string, string][] = [];
    for (let i = EDGE_CASES.length; i + 1 < EDGE_CASES.length + 400; i += 2) pairs.push([texts[i], texts[i + 1]]);
    const singles = texts.slice(0, 200);
    const items = [...singles, ...pairs];
    const { hf } = await pythonIds(out, path.join(out, 'tokenizer.model'), items, true);
    const ours = [
      ...singles.map((t) => classificationLayout(tok, tok.encode(t), undefined, 100_000)),
      ...pairs.map(([a, b]) => classificationLayout(tok, tok.encode(a), tok.encode(b), 100_000)),
    ];
    expect(mismatches(ours, hf, items)).toEqual({ count: 0, first: [] });
    // SentencePiece reads a control piece's text as plain text; transformers matches it as the special token.
    const masked = await pythonIds(out, path.join(out, 'tokenizer.model'), ['Hello <mask> world']);
    const [a, b] = ['Hello', 'world'].map((t) => Array.from(tok.encode(t)));
    expect(masked.hf[0]).toEqual([...a, tok.special.mask, ...b]);
  });

  test('tokenizer.json alone reads back into the same SentencePiece tokenizer (trainlarge -> HF -> trainlarge)', async () => {
    const tok = toks[kind]!;
    const out = path.join(dir, `${kind}-hf`);
    const alone = path.join(dir, `${kind}-json-only`);
    fs.mkdirSync(alone);
    for (const f of HF_FILES) fs.copyFileSync(path.join(out, f), path.join(alone, f));
    for (const back of [await Tokenizer.fromDir(alone), await Tokenizer.fromHF(alone)]) {
      expect(back.kind).toBe('sentencepiece');
      expect(back.vocabSize).toBe(tok.vocabSize);
      expect(back.special).toEqual(tok.special);
      expect(mismatches(await back.encodeBatch(texts), await tok.encodeBatch(texts).then((x) => x.map((a) => Array.from(a))))).toEqual({
        count: 0,
        first: [],
      });
      for (const id of [0, 4, 5, 300, tok.vocabSize - 1]) expect(back.piece(id)).toBe(tok.piece(id));
      expect(back.decode(back.encode(texts[20]))).toBe(tok.decode(tok.encode(texts[20])));
      // Its pieces, scores and types are the original's.
      const [m, n] = [await modelOf(tok), await modelOf(back)];
      expect(n.pieces).toEqual(m.pieces);
      expect(n.modelType).toBe(m.modelType);
      expect(n.byteFallback).toBe(true);
      expect(Buffer.from(n.normalizer.charsmap).equals(Buffer.from(m.normalizer.charsmap))).toBe(true);
      // Exported again, the same files.
      const again = path.join(dir, `${kind}-again`);
      await back.saveTo(again, { format: 'hf' });
      for (const f of HF_FILES) expect(fs.readFileSync(path.join(again, f)).equals(fs.readFileSync(path.join(out, f)))).toBe(true);
    }
    // The whole export directory: its tokenizer.model, the very file trainlarge saved.
    expect((await Tokenizer.fromDir(out)).sha256).toBe(tok.sha256);
  });
});

let saved = 0;
/** The fields of `tok`'s .model, as saveTo writes it. */
async function modelOf(tok: Tokenizer): Promise<ReturnType<typeof parseSpmModel>> {
  const d = path.join(dir, `saved-${saved++}`);
  await tok.saveTo(d);
  return parseSpmModel(fs.readFileSync(path.join(d, 'tokenizer.model')));
}

test("save({ format: 'hf' }) writes the tokenizer beside the weights, where AutoTokenizer finds it", async () => {
  const tok = toks.unigram!;
  const model = await Transformer.create({ vocabSize: tok.vocabSize, maxLen: 32, dModel: 32, layers: 1, heads: 2 }, { seed: 1 });
  const out = path.join(dir, 'model-hf');
  await model.save(out, { format: 'hf', tokenizer: tok });
  model.dispose();
  expect(fs.readdirSync(out).sort()).toEqual(
    ['config.json', 'model.safetensors', ...HF_FILES.slice(0, 2), 'tokenizer.model', HF_FILES[2]].sort(),
  );
  const sample = texts.slice(0, 500);
  const { hf } = await pythonIds(out, path.join(out, 'tokenizer.model'), sample);
  expect(
    mismatches(
      sample.map((t) => tok.encode(t)),
      hf,
    ),
  ).toEqual({ count: 0, first: [] });
});

test('a SentencePiece model transformers cannot convert says which and why', async () => {
  await toks.unigram!.saveTo(path.join(dir, 'unigram-own'));
  const bytes = fs.readFileSync(path.join(dir, 'unigram-own', 'tokenizer.model'));
  const special = toks.unigram!.special;
  // A second trainer_spec message merges into the first, as protobuf does: model_type (3) = 3, 'word'.
  const word = Buffer.concat([bytes, Buffer.from([0x12, 0x02, 0x18, 0x03])]);
  expect(() => spmToHfFiles(word, special)).toThrow(
    "this SentencePiece tokenizer cannot be written in Hugging Face's format: a SentencePiece 'word' model has no tokenizers counterpart (only 'bpe' and 'unigram' convert)",
  );
  const wordFile = path.join(dir, 'word.model');
  fs.writeFileSync(wordFile, word);
  const tok = Tokenizer.load(wordFile);
  await expect(tok.saveTo(path.join(dir, 'word-hf'), { format: 'hf' })).rejects.toThrow(/^Tokenizer.saveTo: format 'hf': .*'word' model/);
  expect(fs.existsSync(path.join(dir, 'word-hf'))).toBe(false);
  // treat_whitespace_as_suffix (24) on.
  const suffix = Buffer.concat([bytes, Buffer.from([0x12, 0x03, 0xc0, 0x01, 0x01])]);
  expect(() => spmToHfFiles(suffix, special)).toThrow(/treat_whitespace_as_suffix/);
});
