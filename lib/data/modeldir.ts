// The tokenizer a model directory carries beside its weights, so the directory is self-contained: training
// (the CLI, the quickstart) writes it there and loading (the CLI, the service) finds it there.
// The two functions are the only places that know where it lives in the directory.
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer } from './tokenizer';

const TOKENIZER_FILE = 'tokenizer.model';

/** The tokenizer saved in a model directory; an error naming the directory when it holds none. */
export async function tokenizerIn(dir: string): Promise<Tokenizer> {
  const file = path.join(dir, TOKENIZER_FILE);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} does not exist: ${dir} holds no tokenizer (save the one the model was trained with beside it)`);
  }
  return Tokenizer.load(file);
}

/** Writes the tokenizer into a model directory (created if needed), where tokenizerIn finds it. */
export async function saveTokenizer(tok: Tokenizer, dir: string): Promise<void> {
  await fs.promises.mkdir(dir, { recursive: true });
  await tok.save(path.join(dir, TOKENIZER_FILE));
}
