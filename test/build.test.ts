// The build takes the libtorch it is told to and proves it: the addon's DT_NEEDED entries and runpath resolve
// to that libtorch's folder even with Debian's libtorch-dev installed (TorchConfig.cmake's find_library once
// linked Debian's 1.13 beside pip's 2.13 headers), a loader that would pick another copy fails the check, and
// unusable libtorches are refused with one sentence. Then the GPU check's carry-and-build path, dry-run here.
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { tempDir } from './helpers';

const ROOT = path.resolve(__dirname, '..');
const DEBIAN_LIB = '/usr/lib/x86_64-linux-gnu';
const DEBIAN_TORCH = fs.existsSync(DEBIAN_LIB) ? fs.readdirSync(DEBIAN_LIB).find((f) => /^libtorch_cpu\.so\.1\./.test(f)) : undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { locate, verifyLinked } = require('../scripts/torch.js');

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
  test("Debian's libtorch is installed beside (CI installs libtorch-dev for this test)", () => {
    if (!DEBIAN_TORCH && process.env.CI)
      throw new Error(`no ${DEBIAN_LIB}/libtorch_cpu.so.1.*: .ci/run installs libtorch-dev for this suite`);
    if (!DEBIAN_TORCH) console.warn("Debian's libtorch-dev is not installed: the next test then cannot show that it is passed over");
  });

  test('TORCH_DIR = the pip libtorch: the addon needs, resolves and loads that one', () => {
    const out = tempDir('build-pip');
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
  test('the carry-and-build path, dry-run on this CPU machine: packed Node, build, the checks that need no GPU', () => {
    const pack = spawnSync('bash', [path.join(ROOT, 'scripts/gpu-check'), '--pack'], { cwd: ROOT, encoding: 'utf8' });
    expect(`${pack.stdout}${pack.stderr}`).toMatch(/gpu-check: packed .* into \.gpu-check\//);
    const sizeMiB = Number(execFileSync('du', ['-sm', path.join(ROOT, '.gpu-check')], { encoding: 'utf8' }).split('\t')[0]);
    expect(sizeMiB).toBeLessThan(48); // the device machine takes 64 MiB with the checkout
    // What the device machine gets: the tracked files and .gpu-check/, no node_modules, no dist/, no .venv; only
    // the packed Node (PATH without this machine's), and the libtorch named by TORCH_DIR.
    const carried = tempDir('carried');
    for (const f of execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n')) {
      if (!fs.existsSync(path.join(ROOT, f))) continue;
      fs.mkdirSync(path.dirname(path.join(carried, f)), { recursive: true });
      fs.copyFileSync(path.join(ROOT, f), path.join(carried, f));
    }
    fs.cpSync(path.join(ROOT, '.gpu-check'), path.join(carried, '.gpu-check'), { recursive: true });
    const r = spawnSync('bash', ['scripts/gpu-check', '--dry-run'], {
      cwd: carried,
      encoding: 'utf8',
      env: {
        ...process.env,
        PATH: '/usr/bin:/bin',
        NODE_PATH: '',
        TORCH_DIR: pipTorch(),
        TRAINLARGE_PYTHON: path.join(ROOT, '.venv/bin/python'),
      },
    });
    const out = `${r.stdout}${r.stderr}`;
    if (r.status !== 0) console.log(out);
    expect(out).toMatch(/gpu-check: node v20\.20\.2 at .*build\/gpu-check\/bin\/node/);
    expect(out).toMatch(/building the addon with cmake against libtorch 2\.13\.0 .*\(from TORCH_DIR; CUDA: no\)/);
    expect(out).toMatch(/CUDA built: no, available: no/);
    expect(out).toMatch(/ok {3}train tiny MLM 40 steps on cpu, fp32/);
    expect(out).toMatch(/ok {3}resume on cpu continues exactly/);
    expect(out).toMatch(/ok {3}device 'cuda' is refused clearly/);
    // The data-parallel check's launch of this script as two ranks, on the CPU through Gloo.
    expect(out).toMatch(/ok {3}data-parallel on cpu: 2 ranks \(auto\) reach the logits of one process at twice the batch .*max abs diff/);
    expect(out).toMatch(/\| tiny \(d64, 2 layers\) \| fp32 \| 8 x 128 \| [\d.]+ \| \d+ \| [\d.]+ \| [\d.]+% of/);
    expect(out).toMatch(/gpu-check: 7 passed, 0 failed/);
    expect(r.status).toBe(0);
  });

  test('without a GPU and without --dry-run it says so and exits 0', () => {
    const r = spawnSync('bash', [path.join(ROOT, 'scripts/gpu-check')], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('gpu-check: no CUDA device visible');
    expect(r.status).toBe(0);
  });
});
