import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ByteTokenizer, loadSpeeches, MlmDataset, splitSpeeches } from '../lib';

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
