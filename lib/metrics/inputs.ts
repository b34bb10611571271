// Argument checks shared by BLEU and chrF: the hypotheses and references a caller passes, read into
// sacreBLEU's shape (reference streams parallel to the hypotheses), with a ConfigError naming each bad field.
import { ConfigError } from '../config/parse';

/** The version of sacreBLEU whose results and signatures lib/metrics reproduces (signature field `version`). */
export const SACREBLEU_VERSION = '2.6.0';

/** Issues listed in one error; a corpus with thousands of bad lines names the first few and counts the rest. */
const MAX_ISSUES = 5;

type Issue = { path: string; message: string };

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

class Issues {
  readonly list: Issue[] = [];
  private dropped = 0;
  add(path: string, message: string): void {
    if (this.list.length < MAX_ISSUES) this.list.push({ path, message });
    else this.dropped++;
  }
  throwIfAny(what: string): void {
    if (this.list.length === 0) return;
    const list = this.dropped ? [...this.list, { path: '', message: `and ${this.dropped} more` }] : this.list;
    throw new ConfigError(what, list);
  }
}

function checkStrings(values: readonly unknown[], path: string, issues: Issues): void {
  values.forEach((v, i) => {
    if (typeof v !== 'string') issues.add(`${path}[${i}]`, `must be a string, got ${kind(v)}`);
  });
}

/**
 * Checks a corpus and returns it as sacreBLEU reads it: `streams[k][i]` is the k-th reference of
 * hypothesis i. `references` is one string per hypothesis (one reference each), or one such array per
 * reference set. sacreBLEU zips streams of unequal length (dropping the tail silently); here that is an error,
 * as is an empty corpus (sacreBLEU fails on one with an IndexError).
 */
export function readCorpus(hypotheses: unknown, references: unknown, what: string): { hyps: string[]; streams: string[][] } {
  const issues = new Issues();
  if (!Array.isArray(hypotheses)) {
    issues.add('hypotheses', `must be an array of strings, got ${kind(hypotheses)}`);
  } else {
    if (hypotheses.length === 0)
      issues.add('hypotheses', 'must hold at least one sentence (BLEU and chrF of an empty corpus are undefined)');
    checkStrings(hypotheses, 'hypotheses', issues);
  }
  const n = Array.isArray(hypotheses) ? hypotheses.length : undefined;
  let streams: unknown[][] = [];
  if (!Array.isArray(references)) {
    issues.add(
      'references',
      `must be string[] (one reference per hypothesis) or string[][] (one array per reference set), got ${kind(references)}`,
    );
  } else if (references.length > 0 && references.every((r) => Array.isArray(r))) {
    streams = references as unknown[][];
    streams.forEach((s, k) => {
      if (n !== undefined && s.length !== n) issues.add(`references[${k}]`, `has ${s.length} sentences, hypotheses has ${n}`);
      checkStrings(s, `references[${k}]`, issues);
    });
  } else if (references.some((r) => Array.isArray(r))) {
    issues.add(
      'references',
      'must be string[] (one reference per hypothesis) or string[][] (one array per reference set), got a mix of both',
    );
  } else {
    streams = [references];
    if (n !== undefined && references.length !== n) issues.add('references', `has ${references.length} sentences, hypotheses has ${n}`);
    checkStrings(references, 'references', issues);
  }
  issues.throwIfAny(what);
  return { hyps: hypotheses as string[], streams: streams as string[][] };
}

/** Checks one hypothesis and its references (one string, or an array of at least one) for the sentence-level metrics. */
export function readSentence(hypothesis: unknown, references: unknown, what: string): { hyp: string; refs: string[] } {
  const issues = new Issues();
  if (typeof hypothesis !== 'string') issues.add('hypothesis', `must be a string, got ${kind(hypothesis)}`);
  let refs: unknown[] = [];
  if (typeof references === 'string') refs = [references];
  else if (!Array.isArray(references)) issues.add('references', `must be a string or an array of strings, got ${kind(references)}`);
  else if (references.length === 0) issues.add('references', 'must hold at least one reference');
  else refs = references;
  checkStrings(refs, 'references', issues);
  issues.throwIfAny(what);
  return { hyp: hypothesis as string, refs: refs as string[] };
}

/** Python's format(x, '.2f'): JavaScript's toFixed(2) except that an exact tie rounds to even (0.125 -> '0.12'). */
export function pyFixed2(x: number): string {
  // A double lies exactly halfway between two hundredths only when it is an odd multiple of 1/8.
  const eighths = x * 8;
  if (Number.isInteger(eighths) && Math.abs(eighths) % 2 === 1) {
    const lower = Math.floor(Math.abs(x) * 100);
    const even = lower % 2 === 0 ? lower : lower + 1;
    return `${x < 0 ? '-' : ''}${(even / 100).toFixed(2)}`;
  }
  return x.toFixed(2);
}
