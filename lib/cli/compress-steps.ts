// What compress does to a model, for the classifier and the translator flows alike: prune then quantize, and the
// part-by-part bytes report.
import { bytesByPart, compressedSize, CompressionTraining, prune, PruneOptions, quantize, QuantizeOptions } from '../compress/ops';
import { Transformer } from '../model';

/** Prunes then quantizes as asked (`training` gives gradual pruning and QAT their fine-tuning); every model it
 * replaces goes into `done` for the caller to dispose. */
export async function applyCompression(
  model: Transformer,
  o: { pruneOptions?: PruneOptions; quantizeOptions?: QuantizeOptions },
  training: (what: string) => CompressionTraining,
  done: Transformer[],
): Promise<Transformer> {
  if (o.pruneOptions) {
    done.push(model);
    model = await prune(model, {
      ...o.pruneOptions,
      ...(o.pruneOptions.schedule === 'gradual' ? { train: training('gradual pruning') } : {}),
    });
  }
  if (o.quantizeOptions) {
    done.push(model);
    model = await quantize(model, { ...o.quantizeOptions, ...(o.quantizeOptions.method === 'qat' ? { train: training('qat') } : {}) });
  }
  return model;
}

/** Bytes part by part, before and after, and what was compressed: the embeddings are most of a small model. */
export async function partBytes(beforeSize: Awaited<ReturnType<typeof compressedSize>>, model: Transformer) {
  const beforeParts = new Map(bytesByPart(beforeSize, { pruned: {}, quantized: {} }).map((p) => [p.part, p.bytes]));
  return bytesByPart(await compressedSize(model), model.compression).map((p) => ({ ...p, before: beforeParts.get(p.part) ?? 0 }));
}

export function printParts(parts: Awaited<ReturnType<typeof partBytes>>): void {
  for (const p of parts)
    console.log(
      `  ${p.part}: ${p.before.toLocaleString('en-US')} -> ${p.bytes.toLocaleString('en-US')} bytes, ` +
        `${p.compressed ? `compressed (${p.compressed})` : 'left as it was'}`,
    );
}
