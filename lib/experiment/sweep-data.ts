// Where a size sweep's data comes from: the prepared corpus of an mlm sweep, or the parallel corpus of a
// translate sweep with the one tokenizer every run (and a later compression of them) encodes with.
import * as path from 'path';
import { Corpus, CORPUS_SOURCES } from '../data/corpus';
import { TrainingData } from '../data/dataset';
import { Dataset } from '../data/task';
import { ParallelTask } from '../data/translation';
import { Tokenizer } from '../data/tokenizer';
import { Spec } from './sweep-spec';

export type Disposable = TrainingData & { dispose(): void };

/**
 * The sweep's training and validation data. mlm: the prepared corpus. translate: the parallel corpus with one
 * SentencePiece vocabulary for both sides, trained on the first run and kept in DIR/tokenizer so a resumed
 * sweep (and every size) encodes with the very same ids.
 */
export async function sweepData(s: Spec, dir: string): Promise<{ train: Disposable; valid: Disposable; vocabSize: number }> {
  if (s.task === 'mlm') {
    const name = s.corpus as string;
    const corpus = Object.prototype.hasOwnProperty.call(CORPUS_SOURCES, name)
      ? await Corpus.prepare({ source: name as keyof typeof CORPUS_SOURCES, dir: path.join('data', name) })
      : await Corpus.open(name);
    return { train: corpus.train({ maxLen: s.maxLen }), valid: corpus.valid({ maxLen: s.maxLen }), vocabSize: corpus.tokenizer.vocabSize };
  }
  const saved = await Tokenizer.find(sweepTokenizerDir(dir));
  const task = await sweepParallelTask(s, saved);
  if (!task.valid) {
    task.dispose();
    throw new Error(`sweep: corpus: ${task.name} has no valid split; a translate sweep evaluates on one (give valid files)`);
  }
  if (!saved) await task.tokenizer.saveTo(sweepTokenizerDir(dir));
  task.test?.dispose();
  return { train: task.train, valid: task.valid, vocabSize: task.tokenizer.vocabSize };
}

/** Where a translate sweep keeps the one tokenizer all its runs encode with. */
export function sweepTokenizerDir(dir: string): string {
  return path.join(dir, 'tokenizer');
}

/**
 * A translate sweep's parallel corpus as its runs saw it (the same corpus, filters and maxLen), encoded with
 * `tokenizer` (the sweep's saved one) or, when none is given, a shared one trained as the spec says.
 */
export async function sweepParallelTask(s: Spec, tokenizer?: Tokenizer): Promise<ParallelTask> {
  if (s.task !== 'translate') throw new TypeError(`sweep '${s.name}' is a '${s.task}' sweep, not a translate sweep`);
  const d = s.data!;
  return Dataset.parallel({
    source: s.corpus,
    maxLen: s.maxLen,
    ...(tokenizer ? { tokenizer } : { vocabSize: d.vocabSize }),
    ...(d.maxPairs !== undefined ? { maxPairs: d.maxPairs } : {}),
    ...(d.minChars !== undefined ? { minChars: d.minChars } : {}),
    ...(d.maxChars !== undefined ? { maxChars: d.maxChars } : {}),
    ...(d.reverse !== undefined ? { reverse: d.reverse } : {}),
  });
}
