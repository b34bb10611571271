#!/usr/bin/env node
// Builds the native addon with cmake-js (default: CMakeLists.txt) or node-gyp (--gyp: binding.gyp), from
// native/sources.json, against the libtorch scripts/torch.js chooses (TORCH_DIR, else the project's Python
// environment, else python3's torch; TRAINLARGE_TORCH=cuda picks the CUDA one). Where it finds none, it makes
// pip's torch in the cached Python environment (scripts/python-env torch, or cuda), announced on one line, as
// scripts/setup does in a checkout; TRAINLARGE_INSTALL_TORCH=0 refuses and leaves the error that says what to
// set. cmake-js is a dependency (as in node-llama-cpp), so a project that installs trainlarge builds with it;
// this script runs its configure (every time, so changed options reach the cache) and its build. Then checks
// what was built: the addon's DT_NEEDED entries and runpath must resolve
// libtorch inside the chosen folder, and the addon, loaded in a child Node, must report the same libtorch
// version and CUDA status; any mismatch fails the build with one sentence.
// Skips the build when sources, libtorch and Node are unchanged (--force rebuilds). --no-tokenizer leaves
// out the SentencePiece plugin (for machines without libsentencepiece, such as a bare GPU machine);
// --out DIR puts the addon there instead of build/ (lib/native.ts then needs TRAINLARGE_ADDON); the work
// folders stay in build/ (cmake's one per libtorch, node-gyp's build/Release), so CI builds the node-gyp and
// CUDA addons without replacing the default one.
// The result is trainlarge.node (+ trainlarge_spm.so) and trainlarge.json, which lib/native.ts reads to
// explain a load failure, in build/ or --out; the cmake build also gives trainlarge_engine_test, the engine's
// C++ test program (left out when trainlarge is installed as a dependency).
// Needs only cmake, a C++ compiler and this package's dependencies (cmake-js, node-addon-api, node-api-headers),
// so a project that installs trainlarge builds it without trainlarge's devDependencies.
// When ccache is on PATH (and TRAINLARGE_CCACHE is not 0) the cmake build compiles through it, with the
// project's root as ccache's base_dir, so a second tree of the same sources (a packed install, a copied
// checkout) reuses the first one's objects.
// CMake's generator is its default (Unix Makefiles) unless CMAKE_GENERATOR names another (scripts/gpu-check
// picks Ninja where ninja is on PATH); each generator has its own work folder.
// --check-headers (cmake only; scripts/gpu-check passes it) reads the compiler's dependency files after the
// build and fails, naming them, when a header of the engine or the addon resolved outside libtorch, this tree,
// the Node-API packages, the gloo/NCCL folders scripts/torch.js chose and the compiler's C/C++ library
// (scripts/headers.js): what a bare machine with only a libtorch and a compiler would not have.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { locate, verifyLinked } = require('./torch');

/**
 * cmake-js's command line and version (a dependency of trainlarge); null where it is not installed (the GPU
 * check's pack carries no cmake-js), and the build then runs cmake itself with the same definitions.
 */
const cmakeJs = (() => {
  try {
    const pkg = require.resolve('cmake-js/package.json');
    return { bin: path.join(path.dirname(pkg), 'bin', 'cmake-js'), version: require(pkg).version };
  } catch {
    return null;
  }
})();

const root = path.resolve(__dirname, '..');
const argv = process.argv.slice(2);
const outAt = argv.indexOf('--out');
const outArg = outAt >= 0 ? argv.splice(outAt, 2)[1] : undefined;
const args = new Set(argv);
const known = new Set(['--gyp', '--force', '--no-tokenizer', '--check-headers']);
for (const a of args) {
  if (!known.has(a)) {
    console.error(`trainlarge build: unknown option '${a}' (allowed: ${[...known, '--out DIR'].join(', ')})`);
    process.exit(2);
  }
}
if (outAt >= 0 && !outArg) {
  console.error('trainlarge build: --out needs a folder');
  process.exit(2);
}
const builder = args.has('--gyp') ? 'node-gyp' : 'cmake';
const checkHeaders = args.has('--check-headers');
if (checkHeaders && builder !== 'cmake') {
  console.error("trainlarge build: --check-headers reads cmake's dependency files; it cannot go with --gyp");
  process.exit(2);
}
// CMake reads CMAKE_GENERATOR itself; it only names the work folder here (a folder keeps its first generator).
const generator = process.env.CMAKE_GENERATOR || '';
const tokenizer = !args.has('--no-tokenizer');
// The addon's folder (default build/); cmake's work folders stay in build/ either way.
const out = outArg ? path.resolve(outArg) : path.join(root, 'build');
const addon = path.join(out, 'trainlarge.node');
const stampFile = path.join(out, 'trainlarge.json');
// The tokenizer plugin (native/spm), loaded by the addon from beside itself.
const plugin = path.join(out, 'trainlarge_spm.so');
const engineTest = path.join(out, 'trainlarge_engine_test');
const asDependency = root.split(path.sep).includes('node_modules');
// The engine's C++ test program (the biggest translation unit): not when installed as a dependency, nor with
// TRAINLARGE_ENGINE_TEST=0 (CI's CUDA build, which only has to compile, link and load the addon).
const engineTestWanted = !asDependency && process.env.TRAINLARGE_ENGINE_TEST !== '0';

function filesBelow(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesBelow(p) : [p];
  });
}

function stamp(torch) {
  const h = crypto.createHash('sha256');
  // native/fuzz (the fuzz targets and their corpus, megabytes) is not part of the addon.
  const inputs = [
    ...filesBelow(path.join(root, 'native'))
      .filter((f) => !f.startsWith(path.join(root, 'native', 'fuzz') + path.sep))
      .sort(),
    'CMakeLists.txt',
    'binding.gyp',
    'scripts/torch.js',
    'scripts/build.js',
  ].map((f) => path.resolve(root, f));
  for (const f of inputs) h.update(f).update(fs.readFileSync(f));
  h.update(JSON.stringify(torch))
    .update(process.versions.modules)
    .update(builder)
    .update(generator)
    .update(String(tokenizer))
    .update(String(engineTestWanted));
  return h.digest('hex');
}

function run(cmd, argv, env = process.env) {
  execFileSync(cmd, argv, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env });
}

function resolveDir(pkg, key) {
  try {
    return require(pkg)[key];
  } catch {
    throw new Error(`trainlarge build: the package '${pkg}' is missing; run 'npm install' (it is a dependency of trainlarge)`);
  }
}

/** node-gyp: the project's, else the one npm bundles (npm sets npm_config_node_gyp for install scripts). */
function nodeGyp() {
  const local = path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (fs.existsSync(local)) return local;
  if (process.env.npm_config_node_gyp && fs.existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  throw new Error('trainlarge build: --gyp needs node-gyp (npm install node-gyp, or run it from an npm script)');
}

/** Loads the addon in a fresh Node and returns its engineInfo(). */
function engineInfoOf(file) {
  const code = `process.stdout.write(JSON.stringify(require(${JSON.stringify(file)}).engineInfo()))`;
  return JSON.parse(execFileSync(process.execPath, ['-e', code], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
}

function check(file, torch) {
  const linked = verifyLinked(file, torch);
  let info;
  try {
    info = engineInfoOf(file);
  } catch (e) {
    throw new Error(
      `trainlarge build: the addon built against libtorch ${torch.version} at ${torch.prefix} does not load: ` +
        `${
          String(e.stderr || e.message)
            .trim()
            .split('\n')
            .slice(-1)[0]
        }`,
    );
  }
  const same = (a, b) => String(a).split(/[+a-z]/)[0] === String(b).split(/[+a-z]/)[0];
  if (!same(info.torchVersion, torch.version) || info.cudaBuilt !== torch.cuda) {
    throw new Error(
      `trainlarge build: the addon reports libtorch ${info.torchVersion} (CUDA built: ${info.cudaBuilt}), ` +
        `but was built against ${torch.version} (CUDA: ${torch.cuda}) at ${torch.prefix}`,
    );
  }
  return { linked, info };
}

/** The folders whose headers a --check-headers build may use (besides the compiler's C/C++ library). */
function allowedHeaderDirs(torch) {
  const system = (d) => ['/usr/include', '/usr/local/include'].includes(path.resolve(d));
  return [
    root, // native/, native/third_party, a gpu-check pack (.gpu-check/), the tree's node_modules
    ...torch.includeDirs,
    ...(torch.gloo && !system(torch.gloo) ? [torch.gloo] : []),
    ...(torch.nccl || []).filter((d) => !system(d)),
    resolveDir('node-api-headers', 'include_dir'),
    resolveDir('node-addon-api', 'include_dir'),
  ];
}

/** --check-headers: fails naming every header of the engine and the addon that came from elsewhere. */
function verifyHeaders(dir, torch) {
  const { checkHeaders: check } = require('./headers');
  // The compiler cmake chose (its private folders are libstdc++'s and its own).
  const cache = path.join(dir, 'CMakeCache.txt');
  const cxx = fs.existsSync(cache) ? /^CMAKE_CXX_COMPILER:\w+=(.+)$/m.exec(fs.readFileSync(cache, 'utf8'))?.[1] : undefined;
  const r = check(dir, allowedHeaderDirs(torch), cxx);
  if (r.outside.length) {
    const shown = r.outside.slice(0, 40).map((o) => `  ${o.header}  (${path.basename(o.object)})`);
    throw new Error(
      `trainlarge build: ${r.outside.length} header(s) resolved outside libtorch, this tree, the Node-API packages, ` +
        `the chosen gloo/NCCL folders and the compiler's C/C++ library; a machine with only a libtorch and a compiler ` +
        `would not have them (vendor them in native/third_party or carry them in the gpu-check pack):\n${shown.join('\n')}` +
        (r.outside.length > shown.length ? `\n  ... and ${r.outside.length - shown.length} more` : ''),
    );
  }
  return r;
}

/**
 * The libtorch to build against. Where scripts/torch.js finds none, pip's torch in the cached environment
 * (scripts/python-env: ~/.cache/trainlarge/python, made once per pin and Python, shared by every checkout
 * and install on the machine), linked as this package's .venv, where torch.js looks next.
 */
function locateOrInstall() {
  try {
    return locate();
  } catch (e) {
    if (e.code !== 'TRAINLARGE_NO_TORCH') throw e;
    if (process.env.TRAINLARGE_INSTALL_TORCH === '0') {
      throw new Error(`${e.message} (TRAINLARGE_INSTALL_TORCH=0: pip's torch is not installed for you)`);
    }
  }
  const variant = process.env.TRAINLARGE_TORCH === 'cuda' ? 'cuda' : 'torch';
  const pin = fs.readFileSync(path.join(root, 'scripts', 'python', `requirements-${variant === 'cuda' ? 'cuda' : 'cpu'}.txt`), 'utf8');
  const cache = process.env.TRAINLARGE_CACHE || path.join(os.homedir(), '.cache', 'trainlarge');
  console.log(
    `trainlarge: no libtorch found (no TORCH_DIR, no torch in ${process.env.TRAINLARGE_PYTHON || 'python3'}): ` +
      `installing pip's ${/^torch==(\S+)/m.exec(pin)?.[1] ?? 'torch'} into ${path.join(cache, 'python')} (once per machine; ` +
      `TORCH_DIR=<libtorch> builds against yours, TRAINLARGE_INSTALL_TORCH=0 refuses)`,
  );
  const r = spawnSync('bash', [path.join(root, 'scripts', 'python-env'), variant], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.status !== 0) {
    throw new Error(
      `${String(r.stderr || r.error?.message || '').trim()}\ntrainlarge: could not make pip's torch (scripts/python-env ${variant})`,
    );
  }
  return locate();
}

function main() {
  const torch = locateOrInstall();
  const digest = stamp(torch);
  const wantPlugin = builder === 'node-gyp' || tokenizer;
  // One cmake work folder per libtorch (and generator), so switching between them rebuilds nothing twice.
  const dir = path.join(
    root,
    'build',
    `cmake-${crypto
      .createHash('sha256')
      .update(torch.prefix + (generator ? `\n${generator}` : ''))
      .digest('hex')
      .slice(0, 8)}`,
  );
  fs.mkdirSync(out, { recursive: true });
  if (!args.has('--force') && fs.existsSync(addon) && (!wantPlugin || fs.existsSync(plugin)) && fs.existsSync(stampFile)) {
    const previous = JSON.parse(fs.readFileSync(stampFile, 'utf8'));
    if (previous.stamp === digest) {
      if (checkHeaders) verifyHeaders(dir, torch);
      return; // up to date: stay quiet
    }
  }
  const jobs = String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length));
  console.log(
    `trainlarge: building the addon with ${builder} against libtorch ${torch.version} at ${torch.prefix} ` +
      `(from ${torch.source}; CUDA: ${torch.cuda ? 'yes' : 'no'})${builder === 'cmake' && generator ? `; generator: ${generator}` : ''}` +
      (builder === 'cmake' ? `; through ${cmakeJs ? `cmake-js ${cmakeJs.version}` : 'cmake (no cmake-js installed)'}` : ''),
  );
  const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH || ''}` };
  let produced;
  if (builder === 'cmake') {
    // Paths under the root become relative in ccache's hash, so another copy of the tree hits the same entries.
    const ccache = process.env.TRAINLARGE_CCACHE !== '0' && spawnSync('ccache', ['--version'], { env }).status === 0;
    if (ccache) {
      env.CCACHE_BASEDIR ??= root;
      env.CCACHE_NOHASHDIR ??= '1';
    }
    const defines = {
      NODE_API_INCLUDE: resolveDir('node-api-headers', 'include_dir'),
      NODE_ADDON_API_INCLUDE: resolveDir('node-addon-api', 'include_dir'),
      TRAINLARGE_TOKENIZER: tokenizer ? 'ON' : 'OFF',
      TRAINLARGE_ENGINE_TEST: engineTestWanted ? 'ON' : 'OFF',
    };
    const asIs = [`-DCMAKE_CXX_COMPILER_LAUNCHER=${ccache ? 'ccache' : ''}`, '--log-level=WARNING'];
    if (cmakeJs) {
      // This tree, the work folder, Release, and the generator: cmake's default (Unix Makefiles) unless
      // CMAKE_GENERATOR names one (cmake-js alone would take Ninja wherever ninja is installed). What follows
      // '--' goes to cmake as it is (cmake-js drops a --CD option whose value is empty). Configure, then build:
      // cmake-js's compile configures only a fresh folder, and after a failed compile it empties the folder
      // and compiles everything again, twice the time to the same error.
      const common = ['--directory', root, '--out', dir, '--config', 'Release', '--generator', generator || 'Unix Makefiles'];
      const cd = Object.entries(defines).map(([k, v]) => `--CD${k}=${v}`);
      run(process.execPath, [cmakeJs.bin, 'configure', ...common, '--log-level', 'warn', ...cd, '--', ...asIs], env);
      run(process.execPath, [cmakeJs.bin, 'build', ...common, '--log-level', 'warn', '--parallel', jobs], env);
    } else {
      const d = Object.entries(defines).map(([k, v]) => `-D${k}=${v}`);
      run('cmake', ['-S', root, '-B', dir, '-DCMAKE_BUILD_TYPE=Release', ...d, ...asIs], env);
      run('cmake', ['--build', dir, '--parallel', jobs], env);
    }
    produced = path.join(dir, 'Release');
    if (checkHeaders) {
      const r = verifyHeaders(dir, torch);
      console.log(
        `trainlarge: headers checked: the ${r.headers} header(s) of ${r.objects} object(s) come from libtorch, this tree, ` +
          `the Node-API packages, the chosen gloo/NCCL folders and ${r.compiler.cxx}'s C/C++ library`,
      );
    }
  } else {
    const gyp = nodeGyp();
    // Node's own headers when it was installed with them (Debian's nodejs, the official tarballs):
    // node-gyp would otherwise download them, and its downloader (undici 8) needs Node 22.
    const prefix = path.resolve(path.dirname(process.execPath), '..');
    const versionH = path.join(prefix, 'include', 'node', 'node_version.h');
    const local =
      fs.existsSync(versionH) &&
      ['MAJOR', 'MINOR', 'PATCH']
        .map((k) => fs.readFileSync(versionH, 'utf8').match(new RegExp(`#define NODE_${k}_VERSION (\\d+)`))?.[1])
        .join('.') === process.versions.node;
    run(process.execPath, [gyp, 'configure', '--silent', ...(local ? [`--nodedir=${prefix}`] : [])], env);
    run(process.execPath, [gyp, 'build', '--jobs', jobs, '--silent'], env);
    produced = path.join(root, 'build', 'Release');
  }
  const withTest = fs.existsSync(path.join(produced, 'trainlarge_engine_test')) && builder === 'cmake' && engineTestWanted;
  const outputs = [
    ['trainlarge.node', addon],
    ...(wantPlugin ? [['trainlarge_spm.so', plugin]] : []),
    ...(withTest ? [['trainlarge_engine_test', engineTest]] : []),
  ];
  for (const [name, dest] of outputs) {
    fs.copyFileSync(path.join(produced, name), dest + '.tmp');
    fs.renameSync(dest + '.tmp', dest);
  }
  if (!wantPlugin) fs.rmSync(plugin, { force: true });
  if (!withTest) fs.rmSync(engineTest, { force: true });
  const { linked, info } = check(addon, torch);
  fs.writeFileSync(
    stampFile,
    JSON.stringify(
      {
        stamp: digest,
        builder,
        ...(builder === 'cmake' ? { cmakeJs: cmakeJs?.version ?? null, workDir: dir, generator: generator || 'Unix Makefiles' } : {}),
        tokenizer: wantPlugin,
        torch: { version: torch.version, prefix: torch.prefix, cuda: torch.cuda, source: torch.source, linked: linked.files },
        node: { version: process.versions.node, modules: process.versions.modules, napi: process.versions.napi },
        builtAt: new Date().toISOString(),
      },
      null,
      2,
    ) + '\n',
  );
  const cpuLib = linked.files.find((f) => /libtorch_cpu\.so/.test(f)) || linked.files[0];
  console.log(
    `trainlarge: built ${path.relative(process.cwd(), addon) || addon}; it links ${cpuLib} (libtorch ${info.torchVersion}, ` +
      `CUDA built: ${info.cudaBuilt ? 'yes' : 'no'}, available: ${info.cudaAvailable ? 'yes' : 'no'})`,
  );
}

try {
  main();
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
