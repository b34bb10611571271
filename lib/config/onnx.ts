import { z } from 'zod';

// The options of exportOnnx (lib/onnx/export.ts).

/** A tokenizer that writes its files into a directory (trainlarge's Tokenizer). */
export interface OnnxTokenizer {
  readonly special: { cls: number; eos: number };
  saveTo(dir: string, options?: { format?: 'trainlarge' | 'hf' }): Promise<void>;
}

export const OnnxExportOptionsSchema = z
  .object({
    /**
     * Quantize the attention and feed-forward Linear layers (those toInt8 runs on int8 kernels) dynamically, in
     * the form ONNX Runtime accelerates: int8 weights per output channel, activations quantized per call
     * (DynamicQuantizeLinear + MatMulInteger, fused by ONNX Runtime into DynamicQuantizeMatMul).
     */
    int8: z.boolean().default(false),
    /** Written beside model.onnx in transformers' format (tokenizer.json); default: the model's own tokenizer. */
    tokenizer: z.custom<OnnxTokenizer>((t) => typeof (t as OnnxTokenizer | null)?.saveTo === 'function', 'expected a Tokenizer').optional(),
    /** Class names, in label order (classification): written into config.json as id2label. */
    labels: z.array(z.string()).optional(),
  })
  .strict();
export type OnnxExportOptions = z.input<typeof OnnxExportOptionsSchema>;
