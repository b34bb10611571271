// Translation with a 'translate' model: the sources encoded, sorted by length and padded into batches for the
// engine's beam search (greedy with beam 1; native/models/seq2seq.cc), and the translations of a parallel split
// scored by BLEU and chrF (lib/metrics, sacreBLEU's). Transformer.translate and evaluate call these.
import { ModelConfig } from './config/model';
import { Precision } from './config/train';
import { ParallelDataset } from './data/dataset';
import { TokenizerLike } from './data/tokens';
import { corpusBleu } from './metrics/bleu';
import { corpusChrf } from './metrics/chrf';
import { NativeModel } from './native';

/** One translation with its score (Transformer.translate with `scores: true`). */
export interface Translation {
  text: string;
  /** sum of the tokens' log-probabilities (eos included) / length^lengthPenalty. */
  score: number;
  /** The nbest hypotheses, best first (the first is this one). */
  nbest: { text: string; score: number }[];
}

/** Transformer.evaluate on translation data with metric 'bleu' or 'chrf': sacreBLEU's corpus scores of the translations. */
export interface TranslationScore {
  metric: 'bleu' | 'chrf';
  /** The requested metric's score and sacreBLEU signature. */
  score: number;
  signature: string;
  /** Both scores, with their signatures and BLEU's statistics, as sacreBLEU reports them. */
  bleu: number;
  bleuSignature: string;
  bleuDetail: ReturnType<typeof corpusBleu>;
  chrf: number;
  chrfSignature: string;
  /** The translations scored, in the split's order. */
  hypotheses: string[];
  references: string[];
  seconds: number;
}

/** A process group's share of a translation evaluation: rank r translates sources r, r + worldSize, ... */
export interface TranslationShard {
  rank: number;
  worldSize: number;
  /** Every rank's hypotheses, in rank order (lib/train/dist.ts gatherOnRanks). */
  gather(hypotheses: string[]): Promise<string[][]>;
}

/** What translation needs of a model (a Transformer gives its own). */
export interface Translator {
  readonly config: ModelConfig;
  readonly handle: NativeModel;
  readonly tokenizer?: TokenizerLike;
  /** Runs native jobs on the model one at a time, in call order. */
  run<T>(job: () => Promise<T>): Promise<T>;
}

/** The search's settings (TranslateOptionsSchema's and TranslationEvalSchema's, parsed). */
export interface TranslationSearch {
  beam: number;
  nbest: number;
  lengthPenalty: number;
  maxLenA: number;
  maxLenB: number;
  batchSize: number;
  precision: Precision;
}

/**
 * The texts translated: each source encoded with `tokenizer` (default: the model's), truncated to maxLen - 1
 * tokens and ended with eos; `where` names the caller in errors.
 */
export async function searchTranslations(
  model: Translator,
  texts: string[],
  o: TranslationSearch,
  tokenizer: TokenizerLike | undefined,
  where: string,
): Promise<Translation[]> {
  if (model.config.task !== 'translate') throw new TypeError(`${where}: needs a 'translate' model, this one is '${model.config.task}'`);
  const tok = tokenizer ?? model.tokenizer;
  if (!tok) throw new TypeError(`${where}: the model has no tokenizer; pass { tokenizer } or save the model with one`);
  if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string'))
    throw new TypeError(`${where}: texts: expected an array of strings`);
  const { maxLen, eosId, padId, vocabSize } = model.config as ModelConfig & { eosId: number };
  if (tok.special.eos !== eosId)
    throw new RangeError(`${where}: the tokenizer's eos (${tok.special.eos}) is not the model's eosId (${eosId})`);
  if (tok.vocabSize > vocabSize)
    throw new RangeError(`${where}: the tokenizer's vocabulary (${tok.vocabSize}) is larger than vocabSize (${vocabSize})`);
  const sources = texts.map((t) => {
    const ids = tok.encode(t);
    const kept = ids.length > maxLen - 1 ? ids.subarray(0, maxLen - 1) : ids;
    const s = new Int32Array(kept.length + 1);
    s.set(kept);
    s[kept.length] = eosId;
    return s;
  });
  // Sorted by length so one search call holds sentences of about one length (little padding); results go back in order.
  const order = sources.map((_, i) => i).sort((a, b) => sources[a].length - sources[b].length || a - b);
  const out = new Array<Translation>(texts.length);
  const search = { beam: o.beam, nbest: o.nbest, lengthPenalty: o.lengthPenalty, maxLenA: o.maxLenA, maxLenB: o.maxLenB };
  for (let first = 0; first < order.length; first += o.batchSize) {
    const rows = order.slice(first, first + o.batchSize);
    const length = Math.max(...rows.map((i) => sources[i].length));
    const ids = new Int32Array(rows.length * length).fill(padId);
    const mask = new Uint8Array(rows.length * length);
    rows.forEach((i, b) => {
      ids.set(sources[i], b * length);
      mask.fill(1, b * length, b * length + sources[i].length);
    });
    const r = await model.run(() => model.handle.translate(ids, rows.length, length, mask, search, o.precision));
    let at = 0;
    rows.forEach((i, b) => {
      const nbest: { text: string; score: number }[] = [];
      for (let j = 0; j < r.nbest; j++) {
        const row = b * r.nbest + j;
        const n = r.lengths[row];
        if (Number.isFinite(r.scores[row])) nbest.push({ text: tok.decode(r.tokens.subarray(at, at + n)), score: r.scores[row] });
        at += n;
      }
      out[i] = { text: nbest[0]?.text ?? '', score: nbest[0]?.score ?? -Infinity, nbest };
    });
  }
  return out;
}

/**
 * Transformer.evaluate's BLEU/chrF path: the split's sources (the first maxSamples) translated and scored
 * against its targets with corpusBleu and corpusChrf. With `shard` each rank translates its share of the
 * sources and every rank scores all.
 */
export async function scoreTranslations(
  model: Translator,
  data: ParallelDataset,
  o: TranslationSearch & { metric: 'bleu' | 'chrf'; maxSamples?: number },
  shard?: TranslationShard,
): Promise<TranslationScore> {
  if (data.source.length === 0) throw new TypeError('evaluate: the data holds no texts (made from token ids); BLEU needs texts');
  const start = Date.now();
  const n = Math.min(o.maxSamples ?? data.source.length, data.source.length);
  const references = data.target.slice(0, n);
  const sources = data.source.slice(0, n);
  const translate = async (texts: string[]) =>
    (await searchTranslations(model, texts, { ...o, nbest: 1 }, data.tokenizer, 'evaluate')).map((h) => h.text);
  let hypotheses: string[];
  if (shard && shard.worldSize > 1) {
    const W = shard.worldSize;
    const all = await shard.gather(await translate(sources.filter((_, i) => i % W === shard.rank)));
    hypotheses = sources.map((_, i) => all[i % W][Math.floor(i / W)]);
  } else {
    hypotheses = await translate(sources);
  }
  const bleu = corpusBleu(hypotheses, references);
  const chrf = corpusChrf(hypotheses, references);
  return {
    metric: o.metric,
    score: o.metric === 'bleu' ? bleu.score : chrf.score,
    signature: o.metric === 'bleu' ? bleu.signature : chrf.signature,
    bleu: bleu.score,
    bleuSignature: bleu.signature,
    bleuDetail: bleu,
    chrf: chrf.score,
    chrfSignature: chrf.signature,
    hypotheses,
    references,
    seconds: (Date.now() - start) / 1000,
  };
}
