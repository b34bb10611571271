// The compression experiment's claim, on any study's rows: a compressed larger model beats a compressed
// smaller one of the same or larger file size. The classifier and translator checks both ask it.

/** Rows no other row beats on both bytes (fewer) and `score` (higher), by bytes: a study's Pareto front. */
export function scoreParetoFront<R extends { bytes: number }>(rows: R[], score: (r: R) => number): R[] {
  const sorted = [...rows].sort((a, b) => a.bytes - b.bytes || score(b) - score(a));
  const front: R[] = [];
  for (const r of sorted) if (front.length === 0 || score(r) > score(front[front.length - 1])) front.push(r);
  return front;
}

/**
 * Each compressed variant `r` of `small` against `best`, the best variant of `large` no larger in `key` (the
 * uncompressed one included); `won`: best scores strictly better. Variants no `large` one is as small as are left out.
 */
function headToHead<R extends { model: string; method: string }, K extends keyof R>(
  rows: R[],
  small: string,
  large: string,
  key: K,
  better: (a: R, b: R) => boolean,
): { r: R; best: R; won: boolean }[] {
  const out: { r: R; best: R; won: boolean }[] = [];
  for (const r of rows.filter((x) => x.model === small && x.method !== 'none')) {
    const rivals = rows.filter((x) => x.model === large && x[key] <= r[key]);
    if (rivals.length === 0) continue;
    const best = rivals.reduce((a, b) => (better(b, a) ? b : a));
    out.push({ r, best, won: better(best, r) });
  }
  return out;
}

/**
 * The claim's comparison on any study's rows: every compressed variant of the smallest of `sizes` against the
 * best variant of the largest (the uncompressed one included) whose file is no larger. The claim holds when
 * the larger model wins more than half of those comparisons. `better(a, b)`: a scores strictly better than
 * b; `show` formats a row's score; `worse` is the sign written between a loser's score and the winner's.
 */
export function largerBeatsSmaller<R extends { model: string; method: string; setting: number; bytes: number }>(
  rows: R[],
  sizes: { label: string; parameters: number }[],
  how: { better: (a: R, b: R) => boolean; show: (r: R) => string; worse: string },
): { holds: boolean | undefined; evidence: string } {
  if (sizes.length < 2) return { holds: undefined, evidence: 'needs two model sizes' };
  const bySize = [...sizes].sort((a, b) => a.parameters - b.parameters);
  const small = bySize[0].label,
    large = bySize[bySize.length - 1].label;
  const matches = headToHead(rows, small, large, 'bytes', how.better);
  const comparisons = matches.length;
  const wins = matches
    .filter((m) => m.won)
    .map(
      ({ r, best }) =>
        `${small} ${r.method} ${r.setting} ${how.show(r)} @ ${(r.bytes / 1e6).toFixed(2)} MB ${how.worse} ${large} ${best.method} ${best.setting} ${how.show(best)} @ ${(best.bytes / 1e6).toFixed(2)} MB`,
    );
  if (comparisons === 0) return { holds: undefined, evidence: `no ${large} variant is as small as any compressed ${small} variant` };
  return {
    holds: wins.length * 2 > comparisons,
    evidence: `${large} wins ${wins.length} of ${comparisons} equal-or-smaller-size comparisons${wins.length ? ': ' + wins.join('; ') : ''}`,
  };
}

/**
 * The claim for every pair of sizes, measured two ways: for each compressed variant of the smaller model, does
 * the larger model's best variant no larger in `key` (the whole file's bytes, or the Transformer layers' alone)
 * score better? One line per pair: "larger wins W of N by file bytes, W' of N' by layer bytes".
 */
export function pairwiseWins<R extends { model: string; method: string; bytes: number; layerBytes: number }>(
  rows: R[],
  sizes: { label: string; parameters: number }[],
  better: (a: R, b: R) => boolean,
): string[] {
  const bySize = [...sizes].sort((a, b) => a.parameters - b.parameters);
  const count = (small: string, large: string, key: 'bytes' | 'layerBytes') => {
    const matches = headToHead(rows, small, large, key, better);
    return `${matches.filter((m) => m.won).length} of ${matches.length}`;
  };
  const lines: string[] = [];
  for (let i = 0; i < bySize.length; i++)
    for (let j = i + 1; j < bySize.length; j++) {
      const [small, large] = [bySize[i].label, bySize[j].label];
      lines.push(
        `- ${large} over ${small}: wins ${count(small, large, 'bytes')} by file bytes, ${count(small, large, 'layerBytes')} by layer bytes`,
      );
    }
  return lines;
}
