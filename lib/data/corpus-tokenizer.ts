// A prepare's tokenizer: the one given, the one an earlier prepare (or another job) trained on the same
// inputs, or one trained now on a deterministic reservoir sample of the training lines (seeded, one pass).
import * as fs from 'fs';
import * as path from 'path';
import { parseConfig } from '../config/parse';
import { readJson, writeJsonAtomic } from '../io';
import { START } from './stream';
import { Tokenizer, TokenizerOptions, TokenizerOptionsSchema } from './tokenizer';
import { withLock } from '../lock';
import { seededRandom } from '../random';
import { CorpusManifest, sha256, TOKENIZER_FILE, TOKENIZER_INFO } from './corpus-manifest';
import { DocSource } from './corpus-sources';
import { PassProgress, PrepareEvent } from './corpus-progress';

/** The lines of a bottom-k sample: a max-heap on the random key, so the line with the largest key goes first. */
export class LineHeap {
  private keys: number[] = [];
  private order: number[] = [];
  private texts: string[] = [];
  private lengths: number[] = [];
  chars = 0;
  get size(): number {
    return this.keys.length;
  }
  maxKey(): number {
    return this.keys[0];
  }
  push(key: number, order: number, text: string): void {
    this.keys.push(key);
    this.order.push(order);
    // A flat copy: a kept line must not hold on to the (possibly long) text it was cut from.
    this.texts.push(Buffer.from(text).toString());
    this.lengths.push(text.length);
    this.chars += text.length;
    let i = this.keys.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.keys[p] >= this.keys[i]) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): void {
    const last = this.keys.length - 1;
    this.chars -= this.lengths[0];
    this.swap(0, last);
    this.keys.pop();
    this.order.pop();
    this.texts.pop();
    this.lengths.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.keys.length && this.keys[l] > this.keys[m]) m = l;
      if (r < this.keys.length && this.keys[r] > this.keys[m]) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
  /** The kept lines in the order they were seen. */
  lines(): string[] {
    const idx = this.order.map((_, i) => i).sort((a, b) => this.order[a] - this.order[b]);
    return idx.map((i) => this.texts[i]);
  }
  private swap(a: number, b: number): void {
    [this.keys[a], this.keys[b]] = [this.keys[b], this.keys[a]];
    [this.order[a], this.order[b]] = [this.order[b], this.order[a]];
    [this.texts[a], this.texts[b]] = [this.texts[b], this.texts[a]];
    [this.lengths[a], this.lengths[b]] = [this.lengths[b], this.lengths[a]];
  }
}

/**
 * The tokenizer of a prepare, saved in `dir` once for every job: the one given; or the one an earlier prepare
 * (or another part) trained on the same inputs with the same options; or one trained now on a reservoir
 * sample of `maxSentences` lines of the training split, drawn in one pass with a seeded generator.
 */
export async function prepareTokenizer(
  dir: string,
  src: DocSource,
  opts: { tokenizer?: Tokenizer; tokenizerOptions?: TokenizerOptions },
  sampleChars: number,
  report: (e: PrepareEvent) => void,
): Promise<{ tokenizer: Tokenizer; info: CorpusManifest['tokenizer'] }> {
  const tokFile = path.join(dir, TOKENIZER_FILE);
  if (opts.tokenizer) {
    const given = opts.tokenizer;
    if (!(given instanceof Tokenizer)) throw new TypeError('tokenizer: expected a Tokenizer (Tokenizer.train, load, fromHF or fromDir)');
    const saved = fs.existsSync(path.join(dir, given.files[0])) ? await Tokenizer.fromDir(dir).catch(() => undefined) : undefined;
    if (saved?.sha256 !== given.sha256) {
      await given.saveTo(dir);
      // A SentencePiece model left by an earlier prepare would be found first by Tokenizer.fromDir(dir).
      if (given.kind !== 'sentencepiece') await fs.promises.rm(tokFile, { force: true });
    }
    return { tokenizer: given, info: { file: given.files[0], sha256: given.sha256, vocabSize: given.vocabSize } };
  }
  const options = parseConfig(TokenizerOptionsSchema, opts.tokenizerOptions ?? {}, 'tokenizerOptions');
  const trainedOn = sha256(`${src.key}\0${JSON.stringify(options)}\0${sampleChars}`);
  const infoFile = path.join(dir, TOKENIZER_INFO);
  const reuse = async (): Promise<{ tokenizer: Tokenizer; info: CorpusManifest['tokenizer'] } | undefined> => {
    if (!fs.existsSync(infoFile) || !fs.existsSync(tokFile)) return undefined;
    const info = await readJson<CorpusManifest['tokenizer']>(infoFile, 'tokenizer info').catch(() => undefined);
    if (info?.trainedOn !== trainedOn) return undefined;
    const tokenizer = Tokenizer.load(tokFile);
    return tokenizer.sha256 === info.sha256 ? { tokenizer, info } : undefined; // changed on disk: retrain
  };
  // Parts share one tokenizer: the first job trains it, the others wait for it here.
  return withLock(
    path.join(dir, '.tokenizer.lock'),
    async () => {
      const found = await reuse();
      if (found) {
        report({ phase: 'tokenizer', message: `reusing ${TOKENIZER_FILE} (same inputs and options)`, skipped: true });
        return found;
      }
      const progress = new PassProgress(src, [0, src.units], report, 'tokenizer', 'sampling lines for the tokenizer');
      // A uniform sample of the training lines, of at most maxSentences lines and sampleChars characters: each
      // line gets a seeded random key and the lines with the smallest keys are kept (a max-heap drops the rest).
      const heap = new LineHeap();
      const random = seededRandom(options.seed || 0x9e3779b9);
      let seen = 0;
      for await (const batch of src.read(START, progress.onRead)) {
        for (const d of batch) {
          if (src.splitOf(d) !== 'train') continue;
          if (!d.more) progress.documents++;
          for (const line of d.pair === undefined ? d.text.split('\n') : [d.text, d.pair]) {
            if (!line.trim()) continue;
            const key = random() + random() / 2 ** 32;
            seen++;
            if (heap.size >= options.maxSentences || heap.chars + line.length > sampleChars) {
              if (heap.size === 0 || key >= heap.maxKey()) continue;
              heap.push(key, seen, line);
              while (heap.size > options.maxSentences || heap.chars > sampleChars) heap.pop();
            } else heap.push(key, seen, line);
          }
        }
      }
      // In input order: a corpus smaller than the sample trains exactly as on all its lines.
      const sample = heap.lines();
      if (sample.length === 0) throw new Error('source: no training text to train a tokenizer on');
      const chars = heap.chars;
      report({
        phase: 'tokenizer',
        message: `training a ${options.model} tokenizer, ${options.vocabSize} pieces, on ${sample.length} of ${seen} lines`,
      });
      const sampled = sample.length;
      const tokenizer = await Tokenizer.train({ ...options, texts: sample });
      sample.length = 0;
      await tokenizer.save(tokFile);
      const info: CorpusManifest['tokenizer'] = {
        file: TOKENIZER_FILE,
        sha256: tokenizer.sha256,
        vocabSize: tokenizer.vocabSize,
        options,
        trainedOn,
        sample: { lines: sampled, seen, chars },
      };
      await writeJsonAtomic(infoFile, info);
      return { tokenizer, info };
    },
    { what: 'Corpus.prepare (tokenizer)' },
  );
}
