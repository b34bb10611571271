// Large generated corpora for the data-at-scale tests and the "Preparing a corpus" benchmark: paragraphs of
// real sentences (the State of the Union addresses and the Brown Corpus, the built-in english-prose text)
// drawn by a seeded generator, so every paragraph is new text made of real English, and the same seed and
// size give the same bytes. Real corpora of the paper's size cannot be downloaded here.
import * as fs from 'fs';
import { englishProseDocuments, seededRandom } from '../lib';

async function sentences(): Promise<string[]> {
  const { train, valid } = await englishProseDocuments();
  const out: string[] = [];
  for (const d of [...train, ...valid]) {
    for (const s of d.text.replace(/\s+/g, ' ').split(/(?<=[.!?])\s+(?=[A-Z"])/)) {
      const t = s.trim();
      if (t.length >= 20 && t.length <= 400) out.push(t);
    }
  }
  return out;
}

export type GeneratedLayout = 'blank-line' | 'jsonl' | 'tsv-pairs';

/**
 * Writes about `bytes` bytes of generated text to `file`, streamed: 'blank-line' paragraphs separated by empty
 * lines, 'jsonl' one {"text": paragraph} object per line, 'tsv-pairs' one sentence pair per line (two
 * different sentences of at most 90 characters: a stand-in for source and target that costs what a real pair costs). Returns the
 * documents (or pairs) written.
 */
export async function generateCorpus(file: string, bytes: number, layout: GeneratedLayout = 'blank-line', seed = 1): Promise<number> {
  const all = await sentences();
  // Pairs are sentence-sized, as in WMT (~25 words a side); paragraphs draw from every sentence.
  const pool = layout === 'tsv-pairs' ? all.filter((t) => t.length <= 90) : all;
  const random = seededRandom(seed);
  const pick = () => pool[Math.floor(random() * pool.length)];
  const out = fs.createWriteStream(file);
  let written = 0;
  let docs = 0;
  let chunk: string[] = [];
  let chunkBytes = 0;
  const flush = async () => {
    const data = chunk.join('');
    chunk = [];
    chunkBytes = 0;
    if (!out.write(data)) await new Promise<void>((r) => out.once('drain', () => r()));
  };
  while (written < bytes) {
    let rec: string;
    if (layout === 'tsv-pairs') rec = `${pick()}\t${pick()}\n`;
    else {
      const n = 2 + Math.floor(random() * 6);
      const para: string[] = [];
      for (let i = 0; i < n; i++) para.push(pick());
      const text = para.join(' ');
      rec = layout === 'jsonl' ? `${JSON.stringify({ id: docs, text })}\n` : `${text}\n\n`;
    }
    const b = Buffer.byteLength(rec);
    chunk.push(rec);
    chunkBytes += b;
    written += b;
    docs++;
    if (chunkBytes >= 1 << 20) await flush();
  }
  await flush();
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return docs;
}

if (require.main === module) {
  const [file, size, layout] = process.argv.slice(2);
  if (!file || !size) {
    console.error('usage: node dist/bench/corpus-gen.js FILE MEGABYTES [blank-line|jsonl|tsv-pairs]');
    process.exit(2);
  }
  generateCorpus(file, Number(size) * 1e6, (layout as GeneratedLayout) ?? 'blank-line').then(
    (n) => console.log(`${file}: ${n} documents`),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
