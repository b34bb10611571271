import { CompressionRow } from '../compress/study';

/** What the planner decides from: trained models and their measured compressed variants. */
export interface PlannerEvidence {
  /** Each pretrained + fine-tuned model: how long its pretraining took (seconds of training). */
  models: { label: string; parameters: number; trainSeconds: number }[];
  /** compressionStudy rows (the uncompressed model is the 'none' row). */
  compression: CompressionRow[];
}

export interface Recommendation {
  model: string;
  parameters: number;
  method: CompressionRow['method'];
  setting: number;
  bytes: number;
  expectedAccuracy: number;
  /** The measured row the choice rests on, and the best alternative per other model. */
  evidence: CompressionRow;
  alternatives: CompressionRow[];
  reason: string;
}

/**
 * Picks the model size and compression with the best measured accuracy whose file fits `memoryBytes`,
 * among models whose pretraining fits `trainSeconds`. The expectation is the measured accuracy of that
 * exact variant: the planner interpolates nothing it has not seen. Throws, saying what would fit, when
 * nothing does.
 */
export function recommend(evidence: PlannerEvidence, budget: { memoryBytes: number; trainSeconds: number }): Recommendation {
  const { memoryBytes, trainSeconds } = budget;
  if (!(memoryBytes > 0)) throw new RangeError(`memoryBytes: must be a positive number of bytes, got ${memoryBytes}`);
  if (!(trainSeconds > 0)) throw new RangeError(`trainSeconds: must be a positive number of seconds, got ${trainSeconds}`);
  if (evidence.models.length === 0 || evidence.compression.length === 0)
    throw new Error('recommend: the evidence holds no models or no compression results');
  const trainable = new Set(evidence.models.filter((m) => m.trainSeconds <= trainSeconds * (1 + 1e-9)).map((m) => m.label));
  if (trainable.size === 0) {
    const fastest = [...evidence.models].sort((a, b) => a.trainSeconds - b.trainSeconds)[0];
    throw new Error(
      `recommend: no model was trained within ${trainSeconds} s; the quickest evidence is ${fastest.label} at ` +
        `${fastest.trainSeconds.toFixed(0)} s (run a sweep with a smaller budget to plan for less)`,
    );
  }
  const rows = evidence.compression.filter((r) => trainable.has(r.model));
  const fits = rows.filter((r) => r.bytes <= memoryBytes);
  if (fits.length === 0) {
    const smallest = [...rows].sort((a, b) => a.bytes - b.bytes)[0];
    throw new Error(
      `recommend: nothing measured fits in ${memoryBytes} bytes; the smallest is ${smallest.model} ` +
        `${smallest.method} ${smallest.setting} at ${smallest.bytes} bytes`,
    );
  }
  // Best accuracy; ties go to the smaller file.
  const byQuality = [...fits].sort((a, b) => b.accuracy - a.accuracy || a.bytes - b.bytes);
  const best = byQuality[0];
  const alternatives = [...trainable]
    .filter((m) => m !== best.model)
    .map((m) => byQuality.find((r) => r.model === m))
    .filter((r): r is CompressionRow => r !== undefined);
  const parameters = evidence.models.find((m) => m.label === best.model)!.parameters;
  const alt = alternatives.map((r) => `${r.model} ${r.method} ${r.setting} (${r.accuracy.toFixed(3)}, ${r.bytes} B)`).join('; ');
  return {
    model: best.model,
    parameters,
    method: best.method,
    setting: best.setting,
    bytes: best.bytes,
    expectedAccuracy: best.accuracy,
    evidence: best,
    alternatives,
    reason:
      `${best.model} ${best.method === 'none' ? 'uncompressed' : `${best.method} ${best.setting}`} measured ${best.accuracy.toFixed(3)} ` +
      `at ${best.bytes} bytes (<= ${memoryBytes}); best of the other sizes: ${alt || 'none fits'}`,
  };
}
