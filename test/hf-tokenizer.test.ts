// Hugging Face byte-level BPE tokenizers (Tokenizer.fromHF): Python (transformers + tokenizers of the project
// environment, test/peer/hf_bpe.py) trains one on english-prose and saves it; trainlarge must give the ids of
// transformers' AutoTokenizer on real sentences, lay out RoBERTa's sequences with the files' special ids,
// save files transformers loads back, and feed the data pipeline.
import * as fs from 'fs';
import * as path from 'path';
import { Corpus, Dataset, Tokenizer } from '../lib';
import { dataHandle } from '../lib/data/dataset';
import { englishProseDocuments } from '../lib/data/builtin/sources';
import { classificationLayout } from '../lib/data/task';
import { idMismatches, PythonPeer, sentencesOf, tempDir, TOKENIZER_EDGE_CASES } from './helpers';

jest.setTimeout(300_000);

const SENTENCES = 12_000;

let dir: string;
let hfDir: string; // tokenizer.json + tokenizer_config.json (transformers' save_pretrained)
let legacyDir: string; // vocab.json + merges.txt + tokenizer_config.json
let trained: { special: Record<string, number>; vocabSize: number };
let texts: string[];

let peer: PythonPeer;
const python = (args: string[]) => peer.json<Record<string, unknown>>('hf_bpe.py', ...args);

/** transformers' ids for `items` (texts; with special, texts or [text, pair]) with the tokenizer in `tokDir`. */
async function transformersIds(tokDir: string, items: (string | [string, string])[], special = false): Promise<number[][]> {
  const input = path.join(dir, 'texts.json');
  const output = path.join(dir, 'ids.json');
  fs.writeFileSync(input, JSON.stringify(items));
  await python(['encode', tokDir, input, output, ...(special ? ['--special'] : [])]);
  return JSON.parse(fs.readFileSync(output, 'utf8')) as number[][];
}

/** Indices where ours differs from theirs (and the first few, shown with their texts). */
const mismatches = (ours: ArrayLike<number>[], theirs: number[][]) => idMismatches(ours, theirs, texts);

// Text that byte-level BPE must get exactly right besides prose: the shared edge cases, odd spaces, and
// special tokens written in the text (transformers matches them as tokens).
const EDGE_CASES = [...TOKENIZER_EDGE_CASES, '\u00a0nbsp\u2003emspace', 'Hello <mask> world', '<s>in the text</s>', 'a<mask>b <pad> <unk>'];

beforeAll(async () => {
  peer = new PythonPeer();
  dir = tempDir('hf-tok');
  hfDir = path.join(dir, 'hf');
  legacyDir = path.join(dir, 'legacy');
  const prose = await englishProseDocuments();
  const trainFile = path.join(dir, 'train.json');
  fs.writeFileSync(trainFile, JSON.stringify(prose.train.map((d) => d.text)));
  trained = (await python(['train', trainFile, hfDir, '8000', legacyDir])) as typeof trained;
  // Real sentences: the validation documents' first, then the training documents'.
  texts = [...EDGE_CASES, ...sentencesOf([...prose.valid, ...prose.train], SENTENCES)];
});

afterAll(() => {
  peer.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('Tokenizer.fromHF', () => {
  test(`gives transformers' ids on ${SENTENCES} english-prose sentences (tokenizer.json)`, async () => {
    expect(texts.length).toBeGreaterThan(10_000);
    const tok = await Tokenizer.fromHF(hfDir);
    expect(tok).toBeInstanceOf(Tokenizer);
    expect(tok.kind).toBe('hf-bpe');
    expect(tok.vocabSize).toBe(trained.vocabSize);
    // RoBERTa's order (<s> 0, <pad> 1, </s> 2, <unk> 3): not trainlarge's SentencePiece ids.
    expect(tok.special).toEqual({
      cls: trained.special['<s>'],
      pad: trained.special['<pad>'],
      eos: trained.special['</s>'],
      unk: trained.special['<unk>'],
      mask: trained.special['<mask>'],
    });
    const theirs = await transformersIds(hfDir, texts);
    const ours = texts.map((t) => tok.encode(t));
    expect(mismatches(ours, theirs)).toEqual({ count: 0, first: [] });
    // encodeBatch / encodeFlat agree with encode.
    const batch = await tok.encodeBatch(texts.slice(0, 2000));
    expect(mismatches(batch, theirs.slice(0, 2000)).count).toBe(0);
    const flat = await tok.encodeFlat(texts.slice(0, 50));
    expect(Array.from(flat.ids)).toEqual(theirs.slice(0, 50).flat());
    // decode inverts encode on prose; pieces are the byte-level vocabulary entries.
    expect(tok.decode(tok.encode('The State of the Union is strong.'))).toBe('The State of the Union is strong.');
    expect(tok.pieces(tok.encode(' the'))).toEqual(['Ġthe']);
    expect(tok.pieceToId('<mask>')).toBe(tok.special.mask);
    expect(tok.pieceToId('no such piece')).toBe(tok.special.unk);
  });

  test('reads vocab.json + merges.txt (an older RoBERTa checkpoint) to the same ids as transformers', async () => {
    const tok = await Tokenizer.fromHF(legacyDir);
    const sample = texts.slice(0, 3000);
    const theirs = await transformersIds(legacyDir, sample);
    expect(
      mismatches(
        sample.map((t) => tok.encode(t)),
        theirs,
      ),
    ).toEqual({ count: 0, first: [] });
    const fromJson = await Tokenizer.fromHF(hfDir);
    expect(tok.special).toEqual(fromJson.special);
    expect(tok.vocabSize).toBe(fromJson.vocabSize);
  });

  test("RoBERTa's layouts <s> a </s> and <s> a </s></s> b </s> come out as transformers builds them", async () => {
    const tok = await Tokenizer.fromHF(hfDir);
    const pairs: [string, string][] = [];
    for (let i = EDGE_CASES.length; i + 1 < EDGE_CASES.length + 400; i += 2) pairs.push([texts[i], texts[i + 1]]);
    const singles = texts.slice(0, 200);
    const theirs = await transformersIds(hfDir, [...singles, ...pairs], true);
    const ours = [
      ...singles.map((t) => classificationLayout(tok, tok.encode(t), undefined, 100_000)),
      ...pairs.map(([a, b]) => classificationLayout(tok, tok.encode(a), tok.encode(b), 100_000)),
    ];
    expect(mismatches(ours, theirs).count).toBe(0);
  });

  test('saveTo writes files that Tokenizer.fromDir and transformers load to the same ids', async () => {
    for (const source of [hfDir, legacyDir]) {
      const tok = await Tokenizer.fromHF(source);
      const out = path.join(dir, `saved-${path.basename(source)}`);
      await tok.saveTo(out);
      expect(fs.readdirSync(out).sort()).toEqual(['tokenizer.json', 'tokenizer_config.json']);
      const back = await Tokenizer.fromDir(out);
      expect(back.kind).toBe('hf-bpe');
      expect(back.sha256).toBe(tok.sha256);
      expect(back.special).toEqual(tok.special);
      const sample = texts.slice(0, 1000);
      const theirs = await transformersIds(out, sample);
      expect(
        mismatches(
          sample.map((t) => back.encode(t)),
          theirs,
        ).count,
      ).toBe(0);
    }
  });

  test('special tokens come from the files: a missing one is an error naming it', async () => {
    const json = JSON.parse(fs.readFileSync(path.join(hfDir, 'tokenizer.json'), 'utf8')) as {
      added_tokens: { content: string; special: boolean }[];
    };
    // tokenizer.json alone: RoBERTa's names, as the file's special added tokens.
    const alone = path.join(dir, 'alone');
    fs.mkdirSync(alone);
    fs.copyFileSync(path.join(hfDir, 'tokenizer.json'), path.join(alone, 'tokenizer.json'));
    const tok = await Tokenizer.fromHF(alone);
    expect(tok.special).toEqual((await Tokenizer.fromHF(hfDir)).special);
    // saveTo writes a tokenizer_config.json naming them, so transformers knows them too.
    await tok.saveTo(path.join(dir, 'alone-saved'));
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'alone-saved', 'tokenizer_config.json'), 'utf8')) as Record<string, string>;
    expect([config.cls_token, config.eos_token, config.pad_token, config.unk_token, config.mask_token]).toEqual([
      '<s>',
      '</s>',
      '<pad>',
      '<unk>',
      '<mask>',
    ]);
    expect(await transformersIds(path.join(dir, 'alone-saved'), ['Hello <mask> world'], true)).toEqual([
      Array.from(classificationLayout(tok, tok.encode('Hello <mask> world'), undefined, 100)),
    ]);

    // No <mask> among the special tokens, no config naming one.
    const noMask = path.join(dir, 'no-mask');
    fs.mkdirSync(noMask);
    json.added_tokens = json.added_tokens.filter((a) => a.content !== '<mask>');
    fs.writeFileSync(path.join(noMask, 'tokenizer.json'), JSON.stringify(json));
    await expect(Tokenizer.fromHF(noMask)).rejects.toThrow(/no mask token \(mask_token in tokenizer_config.json/);
    // A config naming a token the vocabulary lacks.
    const badConfig = path.join(dir, 'bad-config');
    fs.mkdirSync(badConfig);
    fs.copyFileSync(path.join(hfDir, 'tokenizer.json'), path.join(badConfig, 'tokenizer.json'));
    const cfg = JSON.parse(fs.readFileSync(path.join(hfDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(badConfig, 'tokenizer_config.json'), JSON.stringify({ ...cfg, pad_token: '[PAD]' }));
    await expect(Tokenizer.fromHF(badConfig)).rejects.toThrow(/no pad token \('\[PAD\]' is not in the vocabulary\)/);
    // Not a tokenizer directory at all.
    await expect(Tokenizer.fromHF(path.join(dir, 'nowhere'))).rejects.toThrow(/no tokenizer.json, nor vocab.json \+ merges.txt/);
  });
});

describe('Tokenizer.fromDir and saveTo', () => {
  test('SentencePiece: tokenizer.model round-trips; an empty directory names the files looked for', async () => {
    const spm = await Tokenizer.train({ texts: texts.slice(EDGE_CASES.length, EDGE_CASES.length + 3000), vocabSize: 1000 });
    expect(spm.kind).toBe('sentencepiece');
    const out = path.join(dir, 'spm');
    await spm.saveTo(out);
    expect(fs.readdirSync(out)).toEqual(['tokenizer.model']);
    const back = await Tokenizer.fromDir(out);
    expect(back.kind).toBe('sentencepiece');
    expect(back.sha256).toBe(spm.sha256);
    expect(Array.from(back.encode(texts[20]))).toEqual(Array.from(spm.encode(texts[20])));
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    await expect(Tokenizer.fromDir(empty)).rejects.toThrow(
      /holds no tokenizer: looked for tokenizer.model, tokenizer.json, vocab.json \+ merges.txt/,
    );
  });
});

describe('the data pipeline with an HF tokenizer', () => {
  test("sentiment: Dataset.classification lays out <s> text </s> with the files' ids", async () => {
    const tok = await Tokenizer.fromHF(hfDir);
    const task = await Dataset.classification({ source: 'sentiment', tokenizer: tok, maxLen: 64 });
    expect(task.train.size).toBeGreaterThan(2000);
    const batch = dataHandle(task.train).trainBatch(0, 8, 1);
    const [b, t] = batch.dims;
    for (let r = 0; r < b; r++) {
      const row = Array.from(batch.ids.subarray(r * t, (r + 1) * t));
      expect(row[0]).toBe(tok.special.cls);
      const real = batch.mask ? row.filter((_, i) => batch.mask![r * t + i]) : row;
      expect(real[real.length - 1]).toBe(tok.special.eos);
      expect(row.slice(real.length).every((id) => id === tok.special.pad)).toBe(true);
      expect(tok.decode(real.slice(1, -1)).length).toBeGreaterThan(0);
    }
    task.dispose();
  });

  test('Corpus.prepare saves the HF files, Corpus.open reads them back, MLM blocks draw from the shards', async () => {
    const tok = await Tokenizer.fromHF(hfDir);
    const docs = path.join(dir, 'docs.txt');
    fs.writeFileSync(docs, texts.slice(EDGE_CASES.length, EDGE_CASES.length + 4000).join('\n'));
    const corpusDir = path.join(dir, 'corpus');
    const corpus = await Corpus.prepare({
      source: { name: 'hf', train: { files: [docs], split: 'line' } },
      dir: corpusDir,
      tokenizer: tok,
    });
    expect(corpus.manifest.tokenizer.file).toBe('tokenizer.json');
    expect(fs.existsSync(path.join(corpusDir, 'tokenizer_config.json'))).toBe(true);
    const opened = await Corpus.open(corpusDir);
    expect(opened.tokenizer.kind).toBe('hf-bpe');
    expect(opened.tokenizer.sha256).toBe(tok.sha256);
    expect((await Tokenizer.fromDir(corpusDir)).sha256).toBe(tok.sha256);
    // The shards hold the documents' ids, each followed by </s> (RoBERTa's FULL-SENTENCES stream).
    const [first] = opened.tokens('train');
    const firstLine = texts[EDGE_CASES.length];
    expect(Array.from(first).slice(0, tok.encode(firstLine).length + 1)).toEqual([...tok.encode(firstLine), tok.special.eos]);
    const mlm = opened.train({ maxLen: 64 });
    const batch = mlm.trainBatch(0, 4, 1);
    expect(batch.ids[0]).toBe(tok.special.cls);
    expect(batch.positions!.length).toBeGreaterThan(0);
    // Masked positions hold <mask>, a random token or the original, never a special token as target.
    const specials = new Set(Object.values(tok.special));
    expect(Array.from(batch.targets).some((id) => specials.has(id))).toBe(false);
    mlm.dispose();
  });
});
