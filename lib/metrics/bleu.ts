// Corpus and sentence BLEU (Papineni et al., 2002) as sacreBLEU 2.6.0 computes them (metrics/bleu.py):
// the same tokenization, n-gram statistics, smoothing and floating-point steps, so the score, the
// statistics and the signature are sacreBLEU's for the same settings.
import { z } from 'zod';
import { parseConfig } from '../config/parse';
import { pyFixed2, readCorpus, readSentence, SACREBLEU_VERSION } from './inputs';
import { BLEU_TOKENIZERS, bleuTokenizer, pyRstrip, pySplit } from './tokenize13a';

const MAX_NGRAM_ORDER = 4;

/** Smoothing (Chen and Cherry, WMT 2014): 'exp' is NIST's (mteval-v13a), 'floor' method 1, 'add-k' method 2. */
export const SMOOTH_METHODS = ['exp', 'floor', 'add-k', 'none'] as const;
export type SmoothMethod = (typeof SMOOTH_METHODS)[number];

/** sacreBLEU's default smoothValue for the methods that take one. */
const SMOOTH_DEFAULTS: Partial<Record<SmoothMethod, number>> = { floor: 0.1, 'add-k': 1 };

function bleuSchema(effectiveOrder: boolean) {
  return z
    .object({
      /** Lowercase hypotheses and references first (signature case:lc); BLEU is case-sensitive by default. */
      lowercase: z.boolean().default(false),
      tokenize: z.enum(BLEU_TOKENIZERS).default('13a'),
      smooth: z.enum(SMOOTH_METHODS).default('exp'),
      /** The floor's epsilon ('floor', default 0.1) or k ('add-k', default 1). */
      smoothValue: z.number().nonnegative().optional(),
      /** Average only the n-gram orders the hypotheses have (sacreBLEU's effective_order). */
      effectiveOrder: z.boolean().default(effectiveOrder),
    })
    .strict()
    .superRefine((o, ctx) => {
      if (o.smoothValue !== undefined && SMOOTH_DEFAULTS[o.smooth] === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['smoothValue'],
          message: `only applies when smooth is 'floor' or 'add-k', got smooth '${o.smooth}'`,
        });
      }
    });
}

const CorpusBleuSchema = bleuSchema(false);
const SentenceBleuSchema = bleuSchema(true);

export type BleuOptions = z.input<typeof CorpusBleuSchema>;
type BleuSettings = z.output<typeof CorpusBleuSchema>;

export interface BleuScore {
  /** BLEU in [0, 100]. */
  score: number;
  /** Matched n-grams of orders 1..4 (clipped by the reference counts); with 'add-k', orders 2..4 include k, as sacreBLEU reports them. */
  counts: number[];
  /** Hypothesis n-grams of orders 1..4; with 'add-k', orders 2..4 include k. */
  totals: number[];
  /** Smoothed n-gram precisions in percent (0 for the orders the score leaves out). */
  precisions: number[];
  /** Brevity penalty. */
  bp: number;
  /** Hypothesis tokens. */
  sysLen: number;
  /** Reference tokens: per sentence, the reference length closest to the hypothesis (the shorter on a tie). */
  refLen: number;
  /** sacreBLEU's signature for these settings, e.g. 'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0'. */
  signature: string;
}

/** The n-gram counts of orders 1..4 in a tokenized line, keyed by the n-gram's tokens joined by one space. */
function ngramCounts(line: string): { counts: Map<string, number>; length: number } {
  const tokens = pySplit(line);
  const counts = new Map<string, number>();
  for (let n = 1; n <= MAX_NGRAM_ORDER; n++) {
    for (let i = 0; i + n <= tokens.length; i++) {
      const key = tokens.slice(i, i + n).join(' ');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return { counts, length: tokens.length };
}

/** sacreBLEU's statistics of one segment: [hypLen, refLen, correct 1..4, total 1..4]. */
function segmentStats(hyp: string, refs: string[]): number[] {
  // The references' counts merge by maximum: a hypothesis n-gram is clipped by the reference holding it most often.
  const refCounts = new Map<string, number>();
  const refLens: number[] = [];
  for (const ref of refs) {
    const { counts, length } = ngramCounts(ref);
    refLens.push(length);
    for (const [g, c] of counts) refCounts.set(g, Math.max(refCounts.get(g) ?? 0, c));
  }
  const { counts, length: hypLen } = ngramCounts(hyp);
  let closestDiff = -1;
  let refLen = -1;
  for (const len of refLens) {
    const diff = Math.abs(hypLen - len);
    if (closestDiff === -1 || diff < closestDiff) [closestDiff, refLen] = [diff, len];
    else if (diff === closestDiff && len < refLen) refLen = len;
  }
  const correct = new Array<number>(MAX_NGRAM_ORDER).fill(0);
  const total = new Array<number>(MAX_NGRAM_ORDER).fill(0);
  for (const [g, c] of counts) {
    const n = g.split(' ').length - 1;
    total[n] += c;
    const r = refCounts.get(g);
    if (r !== undefined) correct[n] += Math.min(c, r);
  }
  return [hypLen, refLen, ...correct, ...total];
}

/** sacreBLEU's my_log: log, with log(0) floored to -9999999999. */
function myLog(x: number): number {
  return x === 0 ? -9999999999 : Math.log(x);
}

/** sacreBLEU's BLEU.compute_bleu, step for step (the order of the floating-point operations included). */
function computeBleu(stats: number[], o: BleuSettings): Omit<BleuScore, 'signature'> {
  const [sysLen, refLen] = stats;
  const correct = stats.slice(2, 2 + MAX_NGRAM_ORDER);
  const total = stats.slice(2 + MAX_NGRAM_ORDER);
  const smoothValue = o.smoothValue ?? SMOOTH_DEFAULTS[o.smooth] ?? 0;
  let bp = 1.0;
  if (sysLen < refLen) bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0.0;
  const precisions = new Array<number>(MAX_NGRAM_ORDER).fill(0);
  // No match of any order: score 0 before any smoothing (sacreBLEU #141).
  if (correct.every((c) => c === 0)) return { score: 0, counts: correct, totals: total, precisions, bp, sysLen, refLen };
  let smoothMteval = 1;
  let effOrder = MAX_NGRAM_ORDER;
  for (let n = 1; n <= MAX_NGRAM_ORDER; n++) {
    if (o.smooth === 'add-k' && n > 1) {
      correct[n - 1] += smoothValue;
      total[n - 1] += smoothValue;
    }
    if (total[n - 1] === 0) break;
    if (o.effectiveOrder) effOrder = n;
    if (correct[n - 1] === 0) {
      if (o.smooth === 'exp') {
        smoothMteval *= 2;
        precisions[n - 1] = 100 / (smoothMteval * total[n - 1]);
      } else if (o.smooth === 'floor') {
        precisions[n - 1] = (100 * smoothValue) / total[n - 1];
      }
    } else {
      precisions[n - 1] = (100 * correct[n - 1]) / total[n - 1];
    }
  }
  let logSum = 0;
  for (const p of precisions.slice(0, effOrder)) logSum += myLog(p);
  const score = bp * Math.exp(logSum / effOrder);
  return { score, counts: correct, totals: total, precisions, bp, sysLen, refLen };
}

function signature(o: BleuSettings, nrefs: number): string {
  const smoothDefault = SMOOTH_DEFAULTS[o.smooth];
  const smooth = smoothDefault === undefined ? o.smooth : `${o.smooth}[${pyFixed2(o.smoothValue ?? smoothDefault)}]`;
  const parts = [`nrefs:${nrefs}`, `case:${o.lowercase ? 'lc' : 'mixed'}`, `eff:${o.effectiveOrder ? 'yes' : 'no'}`, `tok:${o.tokenize}`];
  return [...parts, `smooth:${smooth}`, `version:${SACREBLEU_VERSION}`].join('|');
}

function bleu(hyps: string[], streams: string[][], o: BleuSettings): BleuScore {
  const tokenize = bleuTokenizer(o.tokenize);
  // sacreBLEU's _preprocess_segment: lowercase, strip trailing whitespace, tokenize.
  const prepare = (s: string) => tokenize(pyRstrip(o.lowercase ? s.toLowerCase() : s));
  const sums = new Array<number>(2 + 2 * MAX_NGRAM_ORDER).fill(0);
  hyps.forEach((hyp, i) => {
    const stats = segmentStats(
      prepare(hyp),
      streams.map((s) => prepare(s[i])),
    );
    stats.forEach((v, j) => (sums[j] += v));
  });
  return { ...computeBleu(sums, o), signature: signature(o, streams.length) };
}

/**
 * Corpus BLEU, equal to sacreBLEU 2.6.0's `corpus_bleu` (BLEU().corpus_score) for the same settings:
 * 13a tokenization, case-sensitive, 'exp' smoothing and no effective order unless `options` say otherwise.
 *
 * `references` is one string per hypothesis, or (several references per hypothesis) one such array per
 * reference set, as sacreBLEU takes them: `references[k][i]` is the k-th reference of `hypotheses[i]`.
 * Throws a ConfigError naming the field for an empty corpus, a count mismatch, a non-string line or an
 * unknown option value.
 */
export function corpusBleu(
  hypotheses: readonly string[],
  references: readonly string[] | readonly (readonly string[])[],
  options: BleuOptions = {},
): BleuScore {
  const o = parseConfig(CorpusBleuSchema, options, 'corpusBleu options');
  const { hyps, streams } = readCorpus(hypotheses, references, 'corpusBleu');
  return bleu(hyps, streams, o);
}

/**
 * BLEU of one sentence against one or more references, equal to sacreBLEU 2.6.0's `sentence_bleu`:
 * effective order on by default, so a short hypothesis without 4-gram matches is not scored 0 for it.
 */
export function sentenceBleu(hypothesis: string, references: string | readonly string[], options: BleuOptions = {}): BleuScore {
  const o = parseConfig(SentenceBleuSchema, options, 'sentenceBleu options');
  const { hyp, refs } = readSentence(hypothesis, references, 'sentenceBleu');
  return bleu(
    [hyp],
    refs.map((r) => [r]),
    o,
  );
}
