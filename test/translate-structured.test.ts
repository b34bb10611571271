// Structured pruning of translators on real data (bible-en-es pairs): heads of every attention module
// (encoder self-, decoder self- and cross-attention) and FFN units of every layer removed. The smaller model
// computes what the original computes with those units' weights zeroed: the same teacher-forced loss and the
// same beam-search translations.
import * as fs from 'fs';
import * as path from 'path';
import { corpusBleu, ParallelTask, prune, Transformer } from '../lib';
import { bibleTask, SMALL_TRANSLATOR, editTensors, tempDir, trainTranslator } from './helpers';

jest.setTimeout(180_000);

const MODEL = SMALL_TRANSLATOR;
const BEAM = 2;

let data: ParallelTask;
let mt: Transformer;
let sources: string[];
let references: string[];
let base: { loss: number; bleu: number };

beforeAll(async () => {
  data = await bibleTask();
  mt = await Transformer.create({ ...MODEL, vocabSize: data.tokenizer.vocabSize }, { seed: 1 });
  // Trained a little (the helper's 40 warmup steps), so heads and units differ in importance; equivalence needs no good translator.
  await trainTranslator(mt, data.train, 40);
  sources = data.test!.source.slice(0, 8);
  references = data.test!.target.slice(0, 8);
  const hyps = await mt.translate(sources, { beam: BEAM });
  base = { loss: (await mt.evaluate(data.valid!, { metric: 'loss', maxSamples: 100 })).loss, bleu: corpusBleu(hyps, references).score };
});

afterAll(() => {
  mt?.dispose();
  data?.dispose();
});

// Structured pruning of translators: heads of every attention module (encoder self-, decoder self- and
// cross-attention) and FFN units of every layer removed; the smaller model computes what the original
// computes with those units zeroed.
const D = MODEL.dModel,
  H = MODEL.heads,
  HS = D / H,
  F = MODEL.ffn;

/** Indices, ascending, of the `keep` largest scores (ties: the lower index), as the engine picks them. */
function keptUnits(scores: number[], keep: number): number[] {
  const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  return order.slice(0, keep).sort((a, b) => a - b);
}

/** Rows of head h in a (groups, H, HS, D) matrix. */
const headRows = (groups: number, h: number): number[] =>
  Array.from({ length: groups }, (_, c) => Array.from({ length: HS }, (_, i) => (c * H + h) * HS + i)).flat();

/** An attention module: its prefix and its input matrices with their row groups (qkv: 3; cross-attention's q: 1 and kv: 2). */
function attentionModules(): { at: string; inputs: [string, number][] }[] {
  const out: { at: string; inputs: [string, number][] }[] = [];
  for (let l = 0; l < MODEL.encoderLayers; l++) out.push({ at: `layers.${l}.attn.`, inputs: [['qkv', 3]] });
  for (let l = 0; l < MODEL.decoderLayers; l++) {
    out.push({ at: `decoder.layers.${l}.self_attn.`, inputs: [['qkv', 3]] });
    out.push({
      at: `decoder.layers.${l}.cross_attn.`,
      inputs: [
        ['q', 1],
        ['kv', 2],
      ],
    });
  }
  return out;
}
const ffnModules = (): string[] => [
  ...Array.from({ length: MODEL.encoderLayers }, (_, l) => `layers.${l}.ffn.`),
  ...Array.from({ length: MODEL.decoderLayers }, (_, l) => `decoder.layers.${l}.ffn.`),
];

/** This test's own choice of the kept heads (per attention module) and FFN units (per layer): largest L2 norm of their weights. */
async function oracleKept(m: Transformer, keepHeads: number, keepUnits: number): Promise<Record<string, number[]>> {
  const kept: Record<string, number[]> = {};
  for (const { at, inputs } of attentionModules()) {
    const norms = new Array<number>(H).fill(0);
    for (const [name, groups] of inputs) {
      const w = (await m.weight(`${at}${name}.weight`)).data;
      for (let h = 0; h < H; h++) for (const r of headRows(groups, h)) for (let d = 0; d < D; d++) norms[h] += w[r * D + d] ** 2;
    }
    const proj = (await m.weight(`${at}proj.weight`)).data;
    for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) for (let i = 0; i < HS; i++) norms[h] += proj[d * H * HS + h * HS + i] ** 2;
    kept[at] = keptUnits(norms, keepHeads);
  }
  for (const at of ffnModules()) {
    const [fc1, fc2] = [(await m.weight(`${at}fc1.weight`)).data, (await m.weight(`${at}fc2.weight`)).data];
    kept[at] = keptUnits(
      Array.from({ length: F }, (_, j) => {
        let n = 0;
        for (let d = 0; d < D; d++) n += fc1[j * D + d] ** 2 + fc2[d * F + j] ** 2;
        return n;
      }),
      keepUnits,
    );
  }
  return kept;
}

/** mt saved with the removed heads' and units' weights and biases set to zero: what structured pruning claims to compute. */
async function zeroedCopy(out: string, kept: Record<string, number[]>): Promise<Transformer> {
  await mt.save(out, { tokenizer: data.tokenizer });
  const edits: Record<string, (w: Float32Array) => void> = {};
  for (const { at, inputs } of attentionModules()) {
    const gone = Array.from({ length: H }, (_, h) => h).filter((h) => !kept[at].includes(h));
    for (const [name, groups] of inputs) {
      const rows = gone.flatMap((h) => headRows(groups, h));
      edits[`${at}${name}.weight`] = (w) => rows.forEach((r) => w.fill(0, r * D, (r + 1) * D));
      edits[`${at}${name}.bias`] = (b) => rows.forEach((r) => (b[r] = 0));
    }
    edits[`${at}proj.weight`] = (w) => {
      for (let d = 0; d < D; d++) for (const h of gone) w.fill(0, d * H * HS + h * HS, d * H * HS + (h + 1) * HS);
    };
  }
  for (const at of ffnModules()) {
    const gone = Array.from({ length: F }, (_, j) => j).filter((j) => !kept[at].includes(j));
    edits[`${at}fc1.weight`] = (w) => gone.forEach((j) => w.fill(0, j * D, (j + 1) * D));
    edits[`${at}fc1.bias`] = (b) => gone.forEach((j) => (b[j] = 0));
    edits[`${at}fc2.weight`] = (w) => {
      for (let d = 0; d < D; d++) for (const j of gone) w[d * F + j] = 0;
    };
  }
  editTensors(path.join(out, 'model.safetensors'), edits);
  return Transformer.load(out);
}

describe('structured pruning of translators', () => {
  test.each([
    ['heads', 2, F],
    ['ffn', H, F / 2],
    ['heads+ffn', 2, F / 2],
  ] as const)(
    "structure '%s' at 0.5 shrinks the encoder's and the decoder's matrices; the translator equals the original with those units zeroed",
    async (structure, heads, ffn) => {
      const dir = tempDir('mt-structured');
      const pruned = await prune(mt, { structure, sparsity: 0.5 });
      expect(pruned.config).toEqual({ ...mt.config, heads, ffn, ...(heads < H ? { headDim: HS } : {}) });
      const dims = async (n: string) => (await pruned.weight(n)).dims;
      expect(await dims('layers.1.attn.qkv.weight')).toEqual([3 * heads * HS, D]);
      expect(await dims('decoder.layers.1.self_attn.qkv.weight')).toEqual([3 * heads * HS, D]);
      expect(await dims('decoder.layers.1.cross_attn.q.weight')).toEqual([heads * HS, D]);
      expect(await dims('decoder.layers.1.cross_attn.kv.weight')).toEqual([2 * heads * HS, D]);
      expect(await dims('decoder.layers.1.cross_attn.kv.bias')).toEqual([2 * heads * HS]);
      expect(await dims('decoder.layers.1.cross_attn.proj.weight')).toEqual([D, heads * HS]);
      expect(await dims('decoder.layers.0.ffn.fc1.weight')).toEqual([ffn, D]);
      expect(await dims('decoder.layers.0.ffn.fc2.weight')).toEqual([D, ffn]);
      expect(pruned.parameterCount).toBeLessThan(mt.parameterCount);

      // The kept heads and units are the ones this test picks from the weights, copied exactly (a cross-attention kv here).
      const kept = await oracleKept(mt, heads, ffn);
      const at = 'decoder.layers.1.cross_attn.';
      const [kv, prunedKv] = [await mt.weight(`${at}kv.weight`), await pruned.weight(`${at}kv.weight`)];
      kept[at].forEach((h, k) =>
        [0, 1].forEach((c) =>
          expect(prunedKv.data.subarray((c * heads + k) * HS * D, (c * heads + k + 1) * HS * D)).toEqual(
            kv.data.subarray((c * H + h) * HS * D, (c * H + h + 1) * HS * D),
          ),
        ),
      );

      // Teacher-forced loss and beam search on real pairs: the pruned translator is the zeroed original.
      const zeroed = await zeroedCopy(path.join(dir, 'zeroed'), kept);
      const [lp, lz] = [
        await pruned.evaluate(data.valid!, { metric: 'loss', maxSamples: 100 }),
        await zeroed.evaluate(data.valid!, { metric: 'loss', maxSamples: 100 }),
      ];
      expect(Math.abs(lp.loss - lz.loss)).toBeLessThan(1e-5);
      expect(Math.abs(lp.loss - base.loss)).toBeGreaterThan(1e-4); // removing them did change the model
      const hyps = await pruned.translate(sources, { beam: BEAM });
      expect(hyps).toEqual(await zeroed.translate(sources, { beam: BEAM }));
      console.log(
        `structured '${structure}' 0.5: parameters ${mt.parameterCount} -> ${pruned.parameterCount}, valid loss ${base.loss.toFixed(3)} -> ` +
          `${lp.loss.toFixed(3)} (zeroed original ${lz.loss.toFixed(3)}), BLEU ${base.bleu.toFixed(2)} -> ${corpusBleu(hyps, references).score.toFixed(2)}`,
      );

      // A normal model: saved, loaded back, it translates the same.
      await pruned.save(path.join(dir, 'pruned'), { tokenizer: data.tokenizer });
      const back = await Transformer.load(path.join(dir, 'pruned'));
      expect(back.config).toEqual(pruned.config);
      expect(await back.translate(sources, { beam: BEAM })).toEqual(hyps);
      for (const m of [pruned, zeroed, back]) m.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  );
});
