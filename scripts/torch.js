#!/usr/bin/env node
// The one torch locator, used by CMakeLists.txt, binding.gyp and scripts/build.js.
// Finds libtorch in this order: $TORCH_DIR, each entry of $CMAKE_PREFIX_PATH, then the system
// (Debian's libtorch-dev). Prints one fact per call so build files can splice it in:
//   node scripts/torch.js cmake-dir | prefix | include-dirs | lib-dir | libs | defines | ldflags | info
'use strict';
const fs = require('fs');
const path = require('path');

const SYSTEM_CMAKE_DIRS = [
  '/usr/lib/x86_64-linux-gnu/cmake/Torch',
  '/usr/lib/aarch64-linux-gnu/cmake/Torch',
  '/usr/share/cmake/Torch',
  '/usr/local/share/cmake/Torch',
];

/** Every place a TorchConfig.cmake may sit below a prefix (a libtorch zip, a pip torch, a cmake dir). */
function cmakeDirsBelow(root) {
  return [
    root,
    path.join(root, 'Torch'),
    path.join(root, 'share/cmake/Torch'),
    path.join(root, 'lib/cmake/Torch'),
    path.join(root, 'cmake/Torch'),
  ];
}

function findCmakeDir() {
  const tried = [];
  const candidates = [];
  if (process.env.TORCH_DIR) candidates.push(...cmakeDirsBelow(path.resolve(process.env.TORCH_DIR)));
  for (const p of (process.env.CMAKE_PREFIX_PATH || '').split(path.delimiter).filter(Boolean)) {
    candidates.push(...cmakeDirsBelow(path.resolve(p)));
  }
  if (!process.env.TORCH_DIR) candidates.push(...SYSTEM_CMAKE_DIRS);
  for (const dir of candidates) {
    tried.push(dir);
    if (fs.existsSync(path.join(dir, 'TorchConfig.cmake'))) return dir;
  }
  const hint = process.env.TORCH_DIR
    ? `TORCH_DIR=${process.env.TORCH_DIR} holds no TorchConfig.cmake (looked in ${tried.join(', ')})`
    : 'no libtorch found: install Debian\'s libtorch-dev (bash scripts/setup does), or point TORCH_DIR at a libtorch';
  throw new Error(`trainlarge: ${hint}`);
}

function locate() {
  const cmakeDir = findCmakeDir();
  const text = fs.readFileSync(path.join(cmakeDir, 'TorchConfig.cmake'), 'utf8');
  // libtorch zips and pip wheels: <prefix>/share/cmake/Torch; Debian: <prefix>/lib/<triplet>/cmake/Torch
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
  const has = (name) => fs.existsSync(path.join(libDir, `lib${name}.so`));
  if (!has('torch')) throw new Error(`trainlarge: no libtorch.so in ${libDir}`);
  const cuda = has('torch_cuda');
  const libs = ['torch', 'torch_cpu', 'c10', ...(cuda ? ['torch_cuda', 'c10_cuda'] : [])].filter(has);
  const abiMatch = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(text);
  const versionFile = path.join(cmakeDir, 'TorchConfigVersion.cmake');
  const versionMatch = fs.existsSync(versionFile)
    ? /PACKAGE_VERSION "([^"]+)"/.exec(fs.readFileSync(versionFile, 'utf8'))
    : null;
  const system = libDir.startsWith('/usr/lib');
  return {
    cmakeDir,
    prefix,
    includeDirs,
    libDir,
    libs,
    cuda,
    cxx11abi: abiMatch ? Number(abiMatch[1]) : 1,
    version: versionMatch ? versionMatch[1] : 'unknown',
    system,
  };
}

function main() {
  const what = process.argv[2] || 'info';
  const t = locate();
  const defines = [`_GLIBCXX_USE_CXX11_ABI=${t.cxx11abi}`, `TRAINLARGE_CUDA=${t.cuda ? 1 : 0}`];
  const out = {
    'cmake-dir': t.cmakeDir,
    prefix: t.prefix,
    'include-dirs': t.includeDirs.join(' '),
    'lib-dir': t.libDir,
    libs: t.libs.map((l) => `-l${l}`).join(' '),
    defines: defines.join(' '),
    // --no-as-needed keeps torch_cpu (its static initializers register the operators) and torch_cuda
    // (else torch::cuda::is_available() is false) linked; the rpath finds a libtorch outside /usr/lib.
    ldflags: [`-L${t.libDir}`, '-Wl,--no-as-needed', ...(t.system ? [] : [`-Wl,-rpath,${t.libDir}`])].join(' '),
    info: JSON.stringify(t, null, 2),
  }[what];
  if (out === undefined) {
    throw new Error(`trainlarge: unknown query '${what}'; use one of cmake-dir, prefix, include-dirs, lib-dir, libs, defines, ldflags, info`);
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
module.exports = { locate };
