// chrF (Popović, 2015) and chrF++ (Popović, 2017) as sacreBLEU 2.6.0 computes them (metrics/chrf.py):
// character n-grams of orders 1..charOrder (whitespace removed), optionally word n-grams of orders
// 1..wordOrder, an F-beta score over precision and recall averaged across the orders that occur.
import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { readCorpus, readSentence, SACREBLEU_VERSION } from './inputs';
import { codePoints, pySplit } from './tokenize13a';

const ChrfSchema = z
  .object({
    /** Character n-gram orders 1..charOrder. */
    charOrder: z.number().int().positive().default(6),
    /** Word n-gram orders 1..wordOrder: 0 is chrF, 2 is chrF++. */
    wordOrder: z.number().int().nonnegative().default(0),
    /** Recall weighs beta times as much as precision. */
    beta: z.number().int().positive().default(2),
    lowercase: z.boolean().default(false),
    /** Keep whitespace inside character n-grams (sacreBLEU's whitespace; off: spaces are removed first). */
    whitespace: z.boolean().default(false),
    /** chrF++.py's epsilon smoothing (also Moses' and NLTK's) instead of sacreBLEU's default effective order. */
    epsSmoothing: z.boolean().default(false),
  })
  .strict();

export type ChrfOptions = z.input<typeof ChrfSchema>;
type ChrfSettings = z.output<typeof ChrfSchema>;

export interface ChrfScore {
  /** chrF in [0, 100]. */
  score: number;
  /** sacreBLEU's name for the variant: chrF{beta} followed by one '+' per word order ('chrF2', 'chrF2++'). */
  name: string;
  /** sacreBLEU's signature, e.g. 'nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0'. */
  signature: string;
}

// string.punctuation, which chrF++ splits off the start or end of a word.
const PUNCTUATION = new Set(codePoints('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'));

/** chrF++'s words: split on whitespace, then one punctuation mark off the end (else the start) of each word. */
function words(sentence: string): string[] {
  const out: string[] = [];
  for (const w of pySplit(sentence)) {
    const cs = codePoints(w);
    if (cs.length === 1) out.push(w);
    // sacreBLEU's rule as it is: '(hi)' becomes '(hi' and ')' (its issue #124).
    else if (PUNCTUATION.has(cs[cs.length - 1])) out.push(cs.slice(0, -1).join(''), cs[cs.length - 1]);
    else if (PUNCTUATION.has(cs[0])) out.push(cs[0], cs.slice(1).join(''));
    else out.push(w);
  }
  return out;
}

function count(grams: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const g of grams) m.set(g, (m.get(g) ?? 0) + 1);
  return m;
}

/** The n-gram counters of one sentence: character orders 1..charOrder, then word orders 1..wordOrder. */
function ngrams(sentence: string, o: ChrfSettings): Map<string, number>[] {
  const chars = codePoints(o.whitespace ? sentence : pySplit(sentence).join(''));
  const out: Map<string, number>[] = [];
  for (let n = 1; n <= o.charOrder; n++) {
    const grams: string[] = [];
    for (let i = 0; i + n <= chars.length; i++) grams.push(chars.slice(i, i + n).join(''));
    out.push(count(grams));
  }
  if (o.wordOrder > 0) {
    const ws = words(sentence);
    for (let n = 1; n <= o.wordOrder; n++) {
      const grams: string[] = [];
      for (let i = 0; i + n <= ws.length; i++) grams.push(ws.slice(i, i + n).join(' '));
      out.push(count(grams));
    }
  }
  return out;
}

/** [hypothesis n-grams, reference n-grams, matches] of one order; hypothesis n-grams count 0 where the reference has none. */
function matchStats(hyp: Map<string, number>, ref: Map<string, number>): number[] {
  let matches = 0;
  let hypCount = 0;
  for (const [g, c] of hyp) {
    hypCount += c;
    const r = ref.get(g);
    if (r !== undefined) matches += Math.min(c, r);
  }
  let refCount = 0;
  for (const c of ref.values()) refCount += c;
  return [ref.size > 0 ? hypCount : 0, refCount, matches];
}

/** sacreBLEU's CHRF._compute_f_score over flattened [hyp, ref, match] triples, one per order. */
function fScore(stats: number[], o: ChrfSettings): number {
  const eps = 1e-16;
  const order = o.charOrder + o.wordOrder;
  const factor = o.beta ** 2;
  let score = 0.0;
  let effectiveOrder = 0;
  let avgPrec = 0.0;
  let avgRec = 0.0;
  for (let i = 0; i < order; i++) {
    const [nHyp, nRef, nMatch] = stats.slice(3 * i, 3 * i + 3);
    const prec = nHyp > 0 ? nMatch / nHyp : eps;
    const rec = nRef > 0 ? nMatch / nRef : eps;
    const denom = factor * prec + rec;
    score += denom > 0 ? ((1 + factor) * prec * rec) / denom : eps;
    if (nHyp > 0 && nRef > 0) {
      avgPrec += prec;
      avgRec += rec;
      effectiveOrder += 1;
    }
  }
  if (o.epsSmoothing) return (100 * score) / order;
  if (effectiveOrder === 0) {
    avgPrec = avgRec = 0.0;
  } else {
    avgPrec /= effectiveOrder;
    avgRec /= effectiveOrder;
  }
  if (avgPrec + avgRec === 0) return 0.0;
  score = (1 + factor) * avgPrec * avgRec;
  score /= factor * avgPrec + avgRec;
  return 100 * score;
}

function chrf(hyps: string[], streams: string[][], o: ChrfSettings): ChrfScore {
  const prepare = (s: string) => (o.lowercase ? s.toLowerCase() : s);
  const sums = new Array<number>(3 * (o.charOrder + o.wordOrder)).fill(0);
  hyps.forEach((hyp, i) => {
    const hypGrams = ngrams(prepare(hyp), o);
    // Several references: the statistics of the one with the best sentence-level F score (the first on a tie).
    let best: number[] = [];
    let bestF = -1.0;
    for (const s of streams) {
      const refGrams = ngrams(prepare(s[i]), o);
      const stats = hypGrams.flatMap((h, k) => matchStats(h, refGrams[k]));
      const f = fScore(stats, o);
      if (f > bestF) [bestF, best] = [f, stats];
    }
    best.forEach((v, j) => (sums[j] += v));
  });
  const parts = [`nrefs:${streams.length}`, `case:${o.lowercase ? 'lc' : 'mixed'}`, `eff:${o.epsSmoothing ? 'no' : 'yes'}`];
  const signature = [
    ...parts,
    `nc:${o.charOrder}`,
    `nw:${o.wordOrder}`,
    `space:${o.whitespace ? 'yes' : 'no'}`,
    `version:${SACREBLEU_VERSION}`,
  ].join('|');
  return { score: fScore(sums, o), name: `chrF${o.beta}${'+'.repeat(o.wordOrder)}`, signature };
}

/**
 * Corpus chrF, equal to sacreBLEU 2.6.0's CHRF().corpus_score for the same settings: chrF2 (character
 * order 6, no word n-grams, beta 2, whitespace removed) by default; `{ wordOrder: 2 }` is chrF++.
 * `references` takes the shapes corpusBleu takes; errors are ConfigErrors naming the field.
 */
export function corpusChrf(
  hypotheses: readonly string[],
  references: readonly string[] | readonly (readonly string[])[],
  options: ChrfOptions = {},
): ChrfScore {
  const o = parseConfig(ChrfSchema, options, 'corpusChrf options');
  const { hyps, streams } = readCorpus(hypotheses, references, 'corpusChrf');
  return chrf(hyps, streams, o);
}

/** chrF of one sentence against one or more references, equal to sacreBLEU 2.6.0's `sentence_chrf`. */
export function sentenceChrf(hypothesis: string, references: string | readonly string[], options: ChrfOptions = {}): ChrfScore {
  const o = parseConfig(ChrfSchema, options, 'sentenceChrf options');
  const { hyp, refs } = readSentence(hypothesis, references, 'sentenceChrf');
  return chrf(
    [hyp],
    refs.map((r) => [r]),
    o,
  );
}
