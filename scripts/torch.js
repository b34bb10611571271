#!/usr/bin/env node
// The one libtorch locator, used by CMakeLists.txt, binding.gyp, scripts/build.js and scripts/gpu-check.
// Which libtorch, in this order:
//   1. $TORCH_DIR: a libtorch folder (the archive, or a pip torch's site-packages/torch), or any folder
//      holding TorchConfig.cmake (torch.utils.cmake_prefix_path);
//   2. the project's Python environment made by scripts/setup: .venv-cuda when TRAINLARGE_TORCH=cuda,
//      else .venv (torch 2.13.0+cpu);
//   3. the torch of the Python on PATH ($TRAINLARGE_PYTHON, else python3), as in a project that depends
//      on trainlarge and has a pip torch installed.
// Nothing is taken from the system's library folders unless TORCH_DIR names them, and the build links the
// chosen folder's library files by full path (see CMakeLists.txt for why).
// Prints one fact per call so build files can splice it in:
//   node scripts/torch.js info | prefix | include-dirs | lib-dir | libs | defines | ldflags | cflags | isystem
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
/** The oldest libtorch the sources are written for (the autocast and SDPA APIs of 2.x). */
const MIN_VERSION = [2, 4];

/** Every place a TorchConfig.cmake may sit below a folder (a libtorch archive, a pip torch, a cmake dir). */
function cmakeDirsBelow(dir) {
  return ['', 'Torch', 'share/cmake/Torch', 'lib/cmake/Torch', 'cmake/Torch'].map((p) => path.join(dir, p));
}

/** site-packages/torch of a Python environment folder, or null. */
function torchInEnv(env) {
  const lib = path.join(env, 'lib');
  if (!fs.existsSync(lib)) return null;
  for (const py of fs
    .readdirSync(lib)
    .filter((d) => d.startsWith('python'))
    .sort()
    .reverse()) {
    const t = path.join(lib, py, 'site-packages', 'torch');
    if (fs.existsSync(path.join(t, 'share/cmake/Torch/TorchConfig.cmake'))) return t;
  }
  return null;
}

function variant() {
  const v = process.env.TRAINLARGE_TORCH || 'cpu';
  if (v !== 'cpu' && v !== 'cuda') {
    throw new Error(`trainlarge: TRAINLARGE_TORCH must be 'cpu' or 'cuda', got '${v}'`);
  }
  return v;
}

function findCmakeDir() {
  if (process.env.TORCH_DIR) {
    const dirs = cmakeDirsBelow(path.resolve(process.env.TORCH_DIR));
    const found = dirs.find((d) => fs.existsSync(path.join(d, 'TorchConfig.cmake')));
    if (found) return { cmakeDir: fs.realpathSync(found), source: 'TORCH_DIR' };
    throw new Error(`trainlarge: TORCH_DIR=${process.env.TORCH_DIR} holds no TorchConfig.cmake (looked in ${dirs.join(', ')})`);
  }
  const v = variant();
  const link = path.join(root, v === 'cuda' ? '.venv-cuda' : '.venv');
  const t = torchInEnv(link);
  // The environment's real folder (its name carries the pins' hash), so a new environment means a rebuild.
  if (t) return { cmakeDir: fs.realpathSync(path.join(t, 'share/cmake/Torch')), source: `${path.basename(link)} (TRAINLARGE_TORCH=${v})` };
  const py = process.env.TRAINLARGE_PYTHON || 'python3';
  try {
    const dir = execFileSync(py, ['-c', 'import os, torch; print(os.path.dirname(torch.__file__))'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 60_000,
    }).trim();
    const cmakeDir = path.join(dir, 'share/cmake/Torch');
    if (fs.existsSync(path.join(cmakeDir, 'TorchConfig.cmake'))) return { cmakeDir: fs.realpathSync(cmakeDir), source: `${py}'s torch` };
  } catch {
    // no such Python, or no torch in it
  }
  const setup = v === 'cuda' ? 'TRAINLARGE_TORCH=cuda bash scripts/setup' : 'bash scripts/setup';
  // scripts/build.js tells this error by its code: it then makes pip's torch in the cached environment.
  throw Object.assign(
    new Error(
      `trainlarge: no libtorch found (no ${path.basename(link)} in ${root}, no torch in ${py}): set TORCH_DIR to a ` +
        `libtorch folder or a pip torch's folder (python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'), or, in a ` +
        `trainlarge checkout, run '${setup}'`,
    ),
    { code: 'TRAINLARGE_NO_TORCH' },
  );
}

function parseVersion(text) {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(text || '');
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/** The version the headers declare (torch/version.h or, from 2.10, torch/headeronly/version.h). */
function headerVersion(includeDir) {
  for (const f of ['torch/headeronly/version.h', 'torch/csrc/api/include/torch/version.h']) {
    const file = path.join(includeDir, f);
    if (!fs.existsSync(file)) continue;
    const text = fs.readFileSync(file, 'utf8');
    const part = (name) => (new RegExp(`#define TORCH_VERSION_${name} (\\d+)`).exec(text) || [])[1];
    if (part('MAJOR') !== undefined) return `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
  }
  return 'unknown';
}

function locate() {
  const { cmakeDir, source } = findCmakeDir();
  const text = fs.readFileSync(path.join(cmakeDir, 'TorchConfig.cmake'), 'utf8');
  // libtorch archives and pip wheels: <prefix>/share/cmake/Torch; Debian: <prefix>/lib/<triplet>/cmake/Torch
  // with headers in /usr/include and libraries in /usr/lib/<triplet>.
  let prefix = path.resolve(cmakeDir, '../../..');
  let libDir = path.join(prefix, 'lib');
  if (!fs.existsSync(path.join(prefix, 'include/torch'))) {
    libDir = path.resolve(cmakeDir, '../..');
    prefix = path.resolve(libDir, '../..');
  }
  const includeDirs = [path.join(prefix, 'include'), path.join(prefix, 'include/torch/csrc/api/include')];
  for (const d of includeDirs) {
    if (!fs.existsSync(d)) throw new Error(`trainlarge: libtorch at ${prefix} has no ${d}`);
  }
  const fileOf = (name) => {
    // The unversioned name (pip, archive) or the versioned one (Debian: libtorch.so.1.13 with a -dev link).
    const plain = path.join(libDir, `lib${name}.so`);
    if (fs.existsSync(plain)) return plain;
    const versioned = fs.existsSync(libDir) && fs.readdirSync(libDir).find((f) => f.startsWith(`lib${name}.so.`));
    return versioned ? path.join(libDir, versioned) : null;
  };
  if (!fileOf('torch') || !fileOf('torch_cpu')) throw new Error(`trainlarge: no libtorch.so / libtorch_cpu.so in ${libDir}`);
  const cuda = Boolean(fileOf('torch_cuda'));
  const libs = ['torch', 'torch_cpu', 'c10', ...(cuda ? ['torch_cuda', 'c10_cuda'] : [])].filter(fileOf);
  const abiMatch = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(text);
  const stdMatch = /CXX_STANDARD (\d+)/.exec(text);
  const versionFile = path.join(cmakeDir, 'TorchConfigVersion.cmake');
  const versionMatch = fs.existsSync(versionFile) ? /PACKAGE_VERSION "([^"]+)"/.exec(fs.readFileSync(versionFile, 'utf8')) : null;
  const version = versionMatch ? versionMatch[1] : headerVersion(includeDirs[0]);
  const headers = headerVersion(includeDirs[0]);
  const v = parseVersion(version);
  if (v && (v[0] < MIN_VERSION[0] || (v[0] === MIN_VERSION[0] && v[1] < MIN_VERSION[1]))) {
    throw new Error(
      `trainlarge: libtorch ${version} at ${prefix} is too old: trainlarge needs libtorch ` +
        `${MIN_VERSION.join('.')} or newer (bash scripts/setup installs 2.13; or set TORCH_DIR to a newer one)`,
    );
  }
  const hv = parseVersion(headers);
  if (v && hv && v.join('.') !== hv.join('.')) {
    throw new Error(
      `trainlarge: libtorch at ${prefix} is inconsistent: TorchConfigVersion.cmake says ${version}, ` + `its headers say ${headers}`,
    );
  }
  // libtorch's intra-op pool is OpenMP's (pip, Debian): at::parallel_for is a header template whose
  // `#pragma omp parallel` only splits the work when our own code is compiled with -fopenmp (without it,
  // the fused dropout ran on one core while the others waited). Linked with -fopenmp, the addon needs
  // libgomp.so.1, which the runpath resolves to the copy libtorch loads: one OpenMP runtime, one pool.
  const config = path.join(includeDirs[0], 'ATen', 'Config.h');
  const openmp = fs.existsSync(config) && /#define AT_PARALLEL_OPENMP 1/.test(fs.readFileSync(config, 'utf8'));
  return {
    cmakeDir,
    source,
    prefix,
    includeDirs,
    libDir,
    libs,
    libFiles: libs.map(fileOf),
    cuda,
    cxx11abi: abiMatch ? Number(abiMatch[1]) : 1,
    cxxStandard: stdMatch ? Number(stdMatch[1]) : 17,
    version,
    system: libDir.startsWith('/usr/lib'),
    gloo: glooHeaders(),
    nccl: cuda ? ncclHeaders(prefix, includeDirs[0]) : false,
    openmp,
  };
}

/**
 * The folders of the headers ProcessGroupNCCL.hpp needs (nccl.h and the CUDA toolkit's), when a CUDA
 * libtorch ships that header; false otherwise (the addon then carries CUDA tensors through Gloo). pip's
 * torch: the nvidia wheels beside it (site-packages/nvidia/<pkg>/include). Else NCCL_INCLUDE and
 * CUDA_HOME (default /usr/local/cuda). TRAINLARGE_NCCL=0 turns it off.
 */
function ncclHeaders(prefix, include) {
  if (process.env.TRAINLARGE_NCCL === '0') return false;
  if (!fs.existsSync(path.join(include, 'torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp'))) return false;
  const wheels = path.join(path.dirname(prefix), 'nvidia');
  const candidates = [
    ...(process.env.NCCL_INCLUDE ? [process.env.NCCL_INCLUDE] : []),
    ...(process.env.CUDA_HOME ? [path.join(process.env.CUDA_HOME, 'include')] : []),
    ...(fs.existsSync(wheels)
      ? fs
          .readdirSync(wheels)
          .sort()
          .map((d) => path.join(wheels, d, 'include'))
      : []),
    '/usr/local/cuda/include',
    '/usr/include',
  ].filter((d) => fs.existsSync(d));
  const where = (header) => candidates.find((d) => fs.existsSync(path.join(d, header)));
  if (!where('nccl.h') || !where('cuda_runtime_api.h')) return false;
  return candidates.filter((d) => d !== '/usr/include');
}

/**
 * libtorch ships c10d's headers but not the gloo headers ProcessGroupGloo.hpp includes. Debian's
 * libgloo-dev provides them: ProcessGroupGloo's members hold gloo types only behind pointers and
 * containers of pointers, so its layout does not depend on the gloo version (LIBTORCH.md: checked against
 * the size libtorch 2.13 allocates). Without them the addon builds without data-parallel training.
 * GLOO_INCLUDE names another folder; TRAINLARGE_GLOO=0 turns it off.
 */
function glooHeaders() {
  if (process.env.TRAINLARGE_GLOO === '0') return false;
  const dir = process.env.GLOO_INCLUDE || '/usr/include';
  return fs.existsSync(path.join(dir, 'gloo', 'algorithm.h')) ? dir : false;
}

/**
 * What the built addon really resolves to: the DT_NEEDED entries and runpath (readelf), and where the
 * loader finds each libtorch/c10 library (ldd). Throws one sentence when any of them lies outside the
 * chosen libtorch's folder or is missing. `env`: the environment the loader will see (LD_LIBRARY_PATH).
 */
function verifyLinked(addon, t, env = process.env) {
  const dyn = execFileSync('readelf', ['-d', addon], { encoding: 'utf8' });
  const needed = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const runpath = (/\((?:RUNPATH|RPATH)\)\s+Library (?:runpath|rpath): \[([^\]]+)\]/.exec(dyn) || [])[1] || '';
  // libtorch's libraries, and the OpenMP runtime where libtorch bundles its own (pip): a second libgomp
  // would be a second thread pool.
  const isTorch = (lib) =>
    /^lib(torch|torch_cpu|torch_cuda|c10|c10_cuda)\.so/.test(lib) ||
    (lib.startsWith('libgomp.so') && fs.existsSync(path.join(t.libDir, lib)));
  const missing = t.libs.filter((l) => !needed.some((n) => n.startsWith(`lib${l}.so`)));
  if (missing.length) {
    throw new Error(
      `trainlarge: ${addon} does not list ${missing.map((l) => `lib${l}.so`).join(', ')} among its ` +
        `DT_NEEDED libraries (${needed.join(', ')}): it was linked without them`,
    );
  }
  const ldd = execFileSync('ldd', [addon], { encoding: 'utf8', env });
  const resolved = {};
  for (const m of ldd.matchAll(/^\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$/gm)) resolved[m[1]] = m[2].trim();
  const want = fs.realpathSync(t.libDir);
  const files = [];
  for (const lib of needed.filter(isTorch)) {
    const where = resolved[lib];
    if (!where || where === 'not found') {
      throw new Error(`trainlarge: ${addon} needs ${lib}, which the loader cannot find (runpath: ${runpath || 'none'})`);
    }
    const real = fs.realpathSync(where);
    if (path.dirname(real) !== want) {
      throw new Error(
        `trainlarge: ${addon} was built against libtorch ${t.version} at ${t.prefix}, but the loader ` +
          `resolves ${lib} to ${real}, another libtorch; unset LD_LIBRARY_PATH or point TORCH_DIR at that one`,
      );
    }
    files.push(real);
  }
  return { needed, runpath, files };
}

function main() {
  const what = process.argv[2] || 'info';
  const t = locate();
  const defines = [`_GLIBCXX_USE_CXX11_ABI=${t.cxx11abi}`, `TRAINLARGE_CUDA=${t.cuda ? 1 : 0}`];
  if (t.gloo) defines.push('USE_C10D_GLOO', 'TRAINLARGE_GLOO=1');
  if (t.gloo && t.nccl) defines.push('USE_C10D_NCCL', 'TRAINLARGE_NCCL=1');
  const out = {
    prefix: t.prefix,
    'include-dirs': t.includeDirs.join(' '),
    'lib-dir': t.libDir,
    // Full paths: -ltorch would search the system's folders too.
    libs: t.libFiles.join(' '),
    defines: defines.join(' '),
    cflags: [`-std=c++${t.cxxStandard}`, ...(t.openmp ? ['-fopenmp'] : [])].join(' '),
    // libtorch's headers as system headers (their own warnings are not ours).
    isystem: [...t.includeDirs, ...(t.gloo && t.gloo !== '/usr/include' ? [t.gloo] : []), ...(t.gloo && t.nccl ? t.nccl : [])]
      .map((d) => `-isystem ${d}`)
      .join(' '),
    // --no-as-needed keeps torch_cpu (its static initializers register the operators) and torch_cuda
    // (else torch::cuda::is_available() is false) linked; the runpath finds a libtorch outside /usr/lib.
    ldflags: ['-Wl,--no-as-needed', ...(t.system ? [] : [`-Wl,-rpath,${t.libDir}`]), ...(t.openmp ? ['-fopenmp'] : [])].join(' '),
    info: JSON.stringify(t, null, 2),
  }[what];
  if (out === undefined) {
    throw new Error(
      `trainlarge: unknown query '${what}'; use one of info, prefix, include-dirs, lib-dir, libs, defines, ldflags, cflags, isystem`,
    );
  }
  process.stdout.write(out + '\n');
}

if (require.main === module) {
  try {
    main();
  } catch (e) {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  }
}
module.exports = { locate, verifyLinked };
