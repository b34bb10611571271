/**
 * The model sizes every benchmark names: one table, so "medium" is the same model in each section of
 * BENCHMARKS.md (a bench adds its own task, vocabulary and sequence length).
 */
export interface ModelSize {
  name: string;
  dModel: number;
  layers: number;
  heads: number;
}

export const SIZES = {
  tiny: { name: 'tiny', dModel: 64, layers: 2, heads: 2 },
  small: { name: 'small', dModel: 128, layers: 2, heads: 2 },
  medium: { name: 'medium', dModel: 256, layers: 4, heads: 4 },
  large: { name: 'large', dModel: 512, layers: 8, heads: 8 },
} as const satisfies Record<string, ModelSize>;

/** A size's shape alone (dModel, layers, heads), to spread into a model config. */
export function shapeOf(size: ModelSize): { dModel: number; layers: number; heads: number } {
  return { dModel: size.dModel, layers: size.layers, heads: size.heads };
}
