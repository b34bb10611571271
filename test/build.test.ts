// The build takes the libtorch it is told to and proves it: the addon's DT_NEEDED entries and runpath resolve
// to that libtorch's folder even with Debian's libtorch-dev installed (TorchConfig.cmake's find_library once
// linked Debian's 1.13 beside pip's 2.13 headers), a loader that would pick another copy fails the check, and
// unusable libtorches are refused with one sentence; the compiler's dependency files say where every header came
// from. Then the GPU check's carry-and-build path, dry-run here as the bare GPU machine would run it: only the
// tracked files and the pack, a build that fails on any header from outside libtorch, the tree, the pack and the
// C/C++ library, and the checks that the build or the machine cannot run skipped with their reasons.
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { tempDir } from './helpers';

const ROOT = path.resolve(__dirname, '..');
const DEBIAN_LIB = '/usr/lib/x86_64-linux-gnu';
const DEBIAN_TORCH = fs.existsSync(DEBIAN_LIB) ? fs.readdirSync(DEBIAN_LIB).find((f) => /^libtorch_cpu\.so\.1\./.test(f)) : undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { locate, verifyLinked } = require('../scripts/torch.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { checkHeaders } = require('../scripts/headers.js');

jest.setTimeout(900_000);

const pipTorch = () =>
  execFileSync(path.join(ROOT, '.venv/bin/python'), ['-c', 'import torch; print(torch.utils.cmake_prefix_path)'], {
    encoding: 'utf8',
  }).trim();

function build(env: Record<string, string>, out: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/build.js'), '--out', out], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('the build links the libtorch it was given', () => {
  let pipOut = ''; // the next test's build, whose dependency files a later test reads
  test("Debian's libtorch is installed beside (CI installs libtorch-dev for this test)", () => {
    if (!DEBIAN_TORCH && process.env.CI)
      throw new Error(`no ${DEBIAN_LIB}/libtorch_cpu.so.1.*: .ci/run installs libtorch-dev for this suite`);
    if (!DEBIAN_TORCH) console.warn("Debian's libtorch-dev is not installed: the next test then cannot show that it is passed over");
  });

  test('TORCH_DIR = the pip libtorch: the addon needs, resolves and loads that one', () => {
    const out = (pipOut = tempDir('build-pip'));
    const torchDir = pipTorch();
    const r = build({ TORCH_DIR: torchDir }, out);
    expect(r.output).toMatch(/building the addon with cmake against libtorch 2\.13\.0/);
    expect(r.status).toBe(0);
    const t = locate();
    expect(t.version).toBe('2.13.0');
    const addon = path.join(out, 'trainlarge.node');
    const linked = verifyLinked(addon, t);
    expect(linked.needed).toEqual(expect.arrayContaining(['libtorch.so', 'libtorch_cpu.so', 'libc10.so']));
    // pip's libtorch runs its pool on OpenMP: our at::parallel_for kernels join it through libtorch's own libgomp.
    expect(t.openmp).toBe(true);
    expect(linked.needed).toContain('libgomp.so.1');
    expect(linked.files).toContain(path.join(fs.realpathSync(t.libDir), 'libgomp.so.1'));
    expect(linked.runpath).toBe(t.libDir);
    for (const f of linked.files) expect(path.dirname(f)).toBe(fs.realpathSync(t.libDir));
    const line = r.output.split('\n').find((l) => l.includes('it links'))!;
    expect(line).toContain(path.join(fs.realpathSync(t.libDir), 'libtorch_cpu.so'));
    expect(line).toMatch(/libtorch 2\.13\.0, CUDA built: no/);
    const info = JSON.parse(
      execFileSync(process.execPath, ['-e', `process.stdout.write(JSON.stringify(require(${JSON.stringify(addon)}).engineInfo()))`], {
        encoding: 'utf8',
      }),
    );
    expect(info.torchVersion).toMatch(/^2\.13\.0/);
    if (DEBIAN_TORCH) expect(linked.files.some((f: string) => f.startsWith(DEBIAN_LIB))).toBe(false);
  });

  test('a loader that would take another libtorch fails the check with one sentence', () => {
    if (!DEBIAN_TORCH) return;
    // LD_LIBRARY_PATH wins over the runpath: point it at a folder whose libtorch_cpu.so is Debian's 1.13.
    const decoy = tempDir('decoy');
    for (const lib of ['libtorch.so', 'libtorch_cpu.so', 'libc10.so']) {
      const real = fs.readdirSync(DEBIAN_LIB).find((f) => f.startsWith(`${lib}.1.`))!;
      fs.symlinkSync(path.join(DEBIAN_LIB, real), path.join(decoy, lib));
    }
    const t = locate();
    const addon = path.join(ROOT, 'build', 'trainlarge.node');
    expect(() => verifyLinked(addon, t, { ...process.env, LD_LIBRARY_PATH: decoy })).toThrow(
      /was built against libtorch 2\.13\.0 at .* but the loader resolves libtorch(_cpu)?\.so to \/usr\/lib\/x86_64-linux-gnu\/libtorch.*another libtorch/,
    );
  });

  test("the default build's headers: nlohmann/json from native/third_party, only Debian's gloo from the system", () => {
    // The Makefiles build of the test above (its dependency files, one per object); the gpu-check dry run below reads Ninja's.
    const stamp = JSON.parse(fs.readFileSync(path.join(pipOut, 'trainlarge.json'), 'utf8'));
    expect(stamp.generator).toBe('Unix Makefiles');
    const t = locate();
    const r = checkHeaders(stamp.workDir, [ROOT, ...t.includeDirs, path.join(ROOT, 'node_modules')]);
    expect(r.objects).toBeGreaterThanOrEqual(4); // engine, addon (and the engine's test program), in unity units
    expect(r.headers).toBeGreaterThan(1000);
    const outside = r.outside.map((o: { header: string }) => o.header);
    expect(outside.filter((h: string) => !h.startsWith('/usr/include/gloo/'))).toEqual([]);
    if (t.gloo === '/usr/include') expect(outside).toContain('/usr/include/gloo/algorithm.h');
  });

  test('unusable libtorches are refused with a sentence that says what to do', () => {
    const bad = build({ TORCH_DIR: '/nonexistent/libtorch' }, tempDir('build-bad'));
    expect(bad.status).toBe(1);
    expect(bad.output).toMatch(/TORCH_DIR=\/nonexistent\/libtorch holds no TorchConfig\.cmake/);
    const which = build({ TRAINLARGE_TORCH: 'rocm' }, tempDir('build-bad'));
    expect(which.output).toMatch(/TRAINLARGE_TORCH must be 'cpu' or 'cuda', got 'rocm'/);
    if (DEBIAN_TORCH) {
      const old = build({ TORCH_DIR: `${DEBIAN_LIB}/cmake/Torch` }, tempDir('build-old'));
      expect(old.status).toBe(1);
      expect(old.output).toMatch(/libtorch 1\.13\.\d+ at \/usr is too old: trainlarge needs libtorch 2\.4 or newer/);
    }
  });
});

describe('npm run gpu-check', () => {
  // What the device machine gets: the tracked files and .gpu-check/, no node_modules, no dist/, no .venv; only the
  // packed Node (PATH without this machine's), and the libtorch named by TORCH_DIR. One carried copy for the tests
  // below, in order (each builds on the last one's build folder).
  let carried = '';
  const dryRun = (...args: string[]) => {
    const r = spawnSync('bash', ['scripts/gpu-check', '--dry-run', ...args], {
      cwd: carried,
      encoding: 'utf8',
      env: {
        ...process.env,
        PATH: '/usr/bin:/bin',
        NODE_PATH: '',
        TORCH_DIR: pipTorch(),
        TRAINLARGE_PYTHON: path.join(ROOT, '.venv/bin/python'),
        OUT: '',
      },
    });
    const out = `${r.stdout}${r.stderr}`;
    return { status: r.status, out };
  };
  const results = () => path.join(carried, 'build', 'gpu-check', 'results');

  test('the carry-and-build path, dry-run on this CPU machine: preflight, packed Node, build, the checks that need no GPU', () => {
    const pack = spawnSync('bash', [path.join(ROOT, 'scripts/gpu-check'), '--pack'], { cwd: ROOT, encoding: 'utf8' });
    expect(`${pack.stdout}${pack.stderr}`).toMatch(/gpu-check: packed .* into \.gpu-check\//);
    // gloo's headers travel in the pack (a GPU machine has no libgloo-dev).
    expect(fs.existsSync(path.join(ROOT, '.gpu-check', 'include', 'gloo', 'algorithm.h'))).toBe(true);
    carried = tempDir('carried');
    for (const f of execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
      .trim()
      .split('\n')) {
      // (a deleted file, or a folder: a nested repository or a link to one travels without its files)
      if (!fs.existsSync(path.join(ROOT, f)) || fs.statSync(path.join(ROOT, f)).isDirectory()) continue;
      fs.mkdirSync(path.dirname(path.join(carried, f)), { recursive: true });
      fs.copyFileSync(path.join(ROOT, f), path.join(carried, f));
    }
    fs.cpSync(path.join(ROOT, '.gpu-check'), path.join(carried, '.gpu-check'), { recursive: true });
    // The device machine takes 64 MiB: the working tree and the pack together.
    const carriedBytes = Number(execFileSync('du', ['-sb', carried], { encoding: 'utf8' }).split('\t')[0]);
    expect(carriedBytes).toBeLessThan(64 * 2 ** 20);
    const { status, out } = dryRun();
    if (status !== 0) console.log(out);
    // The preflight: every piece on one screen before compiling.
    expect(out).toMatch(/gpu-check preflight \(dry run\):\n {2}libtorch {4}2\.13\.0 .*\(from TORCH_DIR\); CUDA build: no; C\+\+20/);
    expect(out).toMatch(/ {2}TF32 {8}fp32 matmuls run in fp32 here/);
    expect(out).toMatch(/ {2}compiler {4}.*-std=c\+\+20: yes/);
    expect(out).toMatch(/ {2}cmake {7}cmake version 3\.\d+\.\d+; generator Ninja/);
    expect(out).toMatch(/nlohmann\/json 3\.11\.2 \(native\/third_party\)/);
    expect(out).toMatch(/gloo: \.gpu-check\/include\/gloo \(data-parallel built\)/);
    expect(out).toMatch(/gpu-check preflight: ok/);
    expect(out).toMatch(/\n {2}node {8}v20\.20\.2 at .*build\/gpu-check\/bin\/node\n/);
    expect(out).toMatch(/building the addon with cmake against libtorch 2\.13\.0 .*\(from TORCH_DIR; CUDA: no\); generator: Ninja/);
    // Every header of the engine and the addon from libtorch, the tree, the pack or the C/C++ library.
    expect(out).toMatch(/trainlarge: headers checked: the \d+ header\(s\) of \d+ object\(s\) come from libtorch, this tree/);
    expect(out).toMatch(/CUDA built: no, available: no; distributed backends: gloo/);
    expect(out).toMatch(/gpu-check: GEMM peak \(TFLOP\/s; 100 multiplies of 512², perf_counter \(CPU\)\): fp32 [\d.]+ on the CPU/);
    expect(out).toMatch(/ok {3}train tiny MLM 40 steps on cpu, fp32/);
    expect(out).toMatch(/skip train tiny MLM 40 steps on cpu, bf16: needs a GPU/);
    expect(out).toMatch(/skip CPU and GPU logits agree .*: needs a GPU/);
    expect(out).toMatch(/ok {3}a checkpoint saved on cpu loads on the CPU/);
    expect(out).toMatch(/ok {3}resume on cpu continues exactly/);
    expect(out).toMatch(/skip throughput xl \(d1024, 12 layers, T 512\) bf16: needs a GPU/);
    expect(out).toMatch(/ok {3}predict, fillMask, prune, quantize \(QAT\) on cpu/);
    expect(out).toMatch(/ok {3}device 'cuda' is refused clearly/);
    // The data-parallel check's launch of this script as two ranks, on the CPU through Gloo (the pack's headers).
    expect(out).toMatch(/ok {3}data-parallel on cpu: 2 ranks \(auto\) reach the logits of one process at twice the batch .*max abs diff/);
    expect(out).toMatch(
      /\| tiny \(d64, 2 layers\) \| fp32 \| 8 x 128 \| [\d.]+ \| [\d.]+ \| \d+ \| [\d.]+ \| [\d.]+% of [\d.]+ \| n\/a \|/,
    );
    expect(out).toMatch(/gpu-check: 7 passed, 0 failed, 4 skipped/);
    expect(out).toMatch(/gpu-check: seconds: preflight [\d.]+, build [\d.]+, GEMM peak [\d.]+, checks [\d.]+ \(budget 900\); total [\d.]+/);
    expect(status).toBe(0);
    // Everything also as JSON, written as it came (a run cut off still reports).
    const summary = JSON.parse(fs.readFileSync(path.join(results(), 'summary.json'), 'utf8'));
    expect([summary.passed, summary.failed, summary.skipped]).toEqual([7, 0, 4]);
    for (const f of ['preflight.json', 'build.json', 'peak.json', 'timing.json', 'table.md'])
      expect(fs.existsSync(path.join(results(), f))).toBe(true);
    expect(fs.readdirSync(path.join(results(), 'checks')).filter((f) => f.endsWith('.json'))).toHaveLength(11);
  });

  test('a header from outside libtorch, the tree and the pack fails the build, named', () => {
    expect(carried).not.toBe('');
    // A Debian-only header (libsentencepiece-dev's, at /usr/include's top level) in an engine source.
    const file = path.join(carried, 'native', 'io', 'atomic_file.cc');
    const source = fs.readFileSync(file, 'utf8');
    expect(fs.existsSync('/usr/include/sentencepiece_processor.h')).toBe(true);
    fs.writeFileSync(file, `#include <sentencepiece_processor.h>\n${source}`);
    try {
      const { status, out } = dryRun('--build-only');
      expect(out).toMatch(/trainlarge build: \d+ header\(s\) resolved outside libtorch, this tree, the Node-API packages/);
      expect(out).toMatch(/ {2}\/usr\/include\/sentencepiece_processor\.h {2}\(/);
      expect(out).toMatch(/gpu-check: the build failed after/);
      expect(status).toBe(1);
      expect(JSON.parse(fs.readFileSync(path.join(results(), 'build.json'), 'utf8')).build.status).toBe('failed');
    } finally {
      fs.writeFileSync(file, source);
    }
  });

  test('a pack without gloo: the build has no data-parallel training and the check is skipped, with its reason', () => {
    expect(carried).not.toBe('');
    fs.rmSync(path.join(carried, '.gpu-check', 'include', 'gloo'), { recursive: true });
    const { status, out } = dryRun('--only', 'data-parallel|cuda-refused');
    if (status !== 0) console.log(out);
    expect(out).toMatch(/gloo: NONE .*the build has no data-parallel training and its check is skipped/);
    expect(out).toMatch(/trainlarge: headers checked/);
    expect(out).toMatch(/distributed backends: none/);
    expect(out).toMatch(
      /skip data-parallel on cpu: 2 ranks \(auto\) reach the logits of one process at twice the batch: this build has no gloo, so no data-parallel training: its headers were not found/,
    );
    expect(out).toMatch(/gpu-check: 1 passed, 0 failed, 1 skipped/);
    expect(status).toBe(0);
  });

  test('without a GPU and without --dry-run it says so and exits 0', () => {
    const r = spawnSync('bash', [path.join(ROOT, 'scripts/gpu-check')], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('gpu-check: no CUDA device visible');
    expect(r.status).toBe(0);
  });
});
