import { z } from 'zod';

// The options of Tokenizer.train (lib/data/tokenizer.ts); bind/options.cc reads their output.

export const TokenizerOptionsSchema = z
  .object({
    vocabSize: z.number().int().min(16).max(1_000_000).default(8000),
    model: z.enum(['bpe', 'unigram']).default('bpe'),
    /** Share of characters the vocabulary must cover; the rest become byte pieces (byteFallback). */
    characterCoverage: z.number().gt(0).max(1).default(0.9995),
    byteFallback: z.boolean().default(true),
    /** Lines sampled for training (SentencePiece's input_sentence_size). */
    maxSentences: z.number().int().positive().default(2_000_000),
    threads: z.number().int().positive().default(2),
    seed: z.number().int().min(0).max(0xffffffff).default(1),
  })
  .strict();
export type TokenizerOptions = z.input<typeof TokenizerOptionsSchema>;
export type TokenizerSettings = z.output<typeof TokenizerOptionsSchema>;
