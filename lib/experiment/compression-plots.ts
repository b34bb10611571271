// The compression experiment's plots: a score (accuracy, BLEU) against compressed bytes, one line per model
// and method, the Pareto front across all. Shared by the classifier and translator reports.
import { CompressionRow } from '../compress/study';
import { VegaLiteSpec } from './report';

export type PlottedRow = Pick<CompressionRow, 'model' | 'parameters' | 'method' | 'setting' | 'bytes'>;

/** How the legend names compression during fine-tuning. */
const DURING_NAMES: Record<string, string> = { gradual: 'gradual pruning (during fine-tuning)', qat: 'QAT (during fine-tuning)' };

/**
 * A score (accuracy, BLEU) against file megabytes: one line per model and method (colour: model; dash:
 * one-shot, during fine-tuning, or the structure), the Pareto front dashed black.
 */
export function scoreVsBytesSpec<F extends string, R extends PlottedRow & Record<F, number>>(
  name: string,
  rows: R[],
  pareto: R[],
  method: 'prune' | 'quantize' | 'structured',
  score: { field: F; title: string },
): VegaLiteSpec {
  const structured = method === 'structured';
  const f = score.field;
  // Compression during fine-tuning ('gradual' pruning, 'qat') is drawn as its own line beside the one-shot one.
  const during = method === 'prune' ? 'gradual' : method === 'quantize' ? 'qat' : undefined;
  const hasDuring = during !== undefined && rows.some((r) => r.method === during);
  // Each point carries its model (the line's colour) and its method (the line's dash), so the
  // legend names each once and every line is told apart: one-shot vs during fine-tuning, or one structure each.
  const values = rows
    .filter((r) => (structured ? r.method.startsWith('prune-') : r.method === method || r.method === during) || r.method === 'none')
    .flatMap((r) => {
      const model = `${r.model} (${(r.parameters / 1e6).toFixed(2)} M parameters)`;
      const point = { model, megabytes: r.bytes / 1e6, [f]: r[f], setting: r.method === 'none' ? 'fp32' : String(r.setting) };
      if (!structured) {
        if (!hasDuring) return [{ ...point, method: 'one-shot' }];
        // Both lines start at the uncompressed model.
        if (r.method === 'none') return ['one-shot', DURING_NAMES[during]].map((m) => ({ ...point, method: m }));
        return [{ ...point, method: r.method === during ? DURING_NAMES[during] : 'one-shot' }];
      }
      // Each structure's line starts at the uncompressed model.
      const kinds = r.method === 'none' ? [...new Set(rows.filter((x) => x.method.startsWith('prune-')).map((x) => x.method))] : [r.method];
      return kinds.map((k) => ({ ...point, method: `${k.slice('prune-'.length)} pruned` }));
    });
  // One-shot first, so its line is the solid one and during fine-tuning (or the second structure) is dashed.
  const methodOrder = [...new Set(values.map((v) => v.method))].sort((a, b) =>
    a === 'one-shot' ? -1 : b === 'one-shot' ? 1 : a < b ? -1 : 1,
  );
  const methods = methodOrder.length;
  const front = pareto.map((r) => ({ megabytes: r.bytes / 1e6, [f]: r[f] }));
  const what = { prune: 'magnitude pruning', quantize: 'k-bit quantization', structured: 'structured pruning: heads / FFN units' }[method];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: `${name}: ${score.title} vs compressed size (${what})`,
      subtitle: 'black dashed line: the Pareto front over every size and method (no variant is both smaller and better)',
    },
    width: 480,
    height: 300,
    background: 'white',
    layer: [
      {
        data: { values },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'megabytes', type: 'quantitative', title: 'model file (MB)', scale: { type: 'log', nice: false, padding: 12 } },
          y: { field: f, type: 'quantitative', title: score.title, scale: { zero: false } },
          color: { field: 'model', type: 'nominal', title: 'model', legend: { labelLimit: 0 } },
          ...(methods > 1
            ? {
                strokeDash: {
                  field: 'method',
                  type: 'nominal',
                  title: 'method',
                  scale: { domain: methodOrder },
                  legend: {
                    labelLimit: 0,
                    symbolType: 'stroke',
                    symbolSize: 300,
                    encode: { symbols: { update: { stroke: { value: 'black' }, strokeWidth: { value: 2 } } } },
                  },
                },
              }
            : {}),
          tooltip: [{ field: 'method' }, { field: 'setting' }],
        },
      },
      {
        data: { values: front },
        mark: { type: 'line', strokeDash: [4, 3], color: 'black' },
        encoding: { x: { field: 'megabytes', type: 'quantitative' }, y: { field: f, type: 'quantitative' } },
      },
    ],
  };
}
