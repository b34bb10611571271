import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  ByteTokenizer,
  Dataset,
  loadSpeeches,
  MlmDataset,
  ParallelDataset,
  ParallelTask,
  splitSpeeches,
  Trainer,
  Transformer,
} from '../lib';

export const tok = new ByteTokenizer();

/** Real English: State of the Union speeches as bytes, whole speeches held out for validation. */
export function speechData(maxLen: number, limit = 60): { train: MlmDataset; valid: MlmDataset; trainDocs: Int32Array[] } {
  const { train, valid } = splitSpeeches(loadSpeeches().slice(0, limit));
  const trainDocs = train.map((s) => tok.encode(s.text));
  return {
    train: MlmDataset.fromDocuments(trainDocs, tok, { maxLen }),
    valid: MlmDataset.fromDocuments(
      valid.map((s) => tok.encode(s.text)),
      tok,
      { maxLen },
    ),
    trainDocs,
  };
}

export function tempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `trainlarge-${name}-`));
}

export const small = { vocabSize: tok.vocabSize, maxLen: 64, dModel: 64, layers: 2, heads: 4 };

/** The first `count` State of the Union speeches as text files in `dir` (one a file), for file-based corpora. */
export function speechFiles(dir: string, count: number): string[] {
  return loadSpeeches()
    .slice(0, count)
    .map((s, i) => {
      const f = path.join(dir, `speech-${i}.txt`);
      fs.writeFileSync(f, s.text);
      return f;
    });
}

/** The Bible subset the translation tests share: 3000 pairs (English -> Spanish), a 1000-piece shared tokenizer, maxLen 64. */
export function bibleTask(): Promise<ParallelTask> {
  return Dataset.parallel({ source: 'bible-en-es', vocabSize: 1000, maxLen: 64, maxPairs: 3000, maxChars: 200 });
}

/** Trains a small translator as the translation tests do: inverse-sqrt from 3e-3 after 40 warmup steps, label smoothing 0.1, 1024-token batches. */
export async function trainTranslator(mt: Transformer, train: ParallelDataset, maxSteps: number): Promise<void> {
  const trainer = new Trainer(mt, {
    lr: 3e-3,
    schedule: 'inverse-sqrt',
    warmupSteps: 40,
    labelSmoothing: 0.1,
    batchTokens: 1024,
    maxSteps,
  });
  await trainer.fit(train);
  trainer.dispose();
}
