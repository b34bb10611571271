#!/usr/bin/env node
// The GPU check's preflight (scripts/gpu-check runs it before compiling): every piece the build and the checks
// need, found or missing, on one screen, so a lent GPU machine's minutes are not spent discovering them one
// compile at a time. Prints the screen, writes preflight.json into the results folder, exits 1 when something
// the build cannot do without is missing (all of them named), else 0.
//
//   node scripts/gpu-preflight.js --results DIR --python PY [--dry-run]
//
// Required: a libtorch (TORCH_DIR or PY's torch: scripts/torch.js), a C++ compiler that takes the libtorch's
// C++ standard, cmake >= 3.19 with ninja or make, readelf and ldd (the build's link check), the vendored
// nlohmann/json, the Node-API headers (the pack's node_modules). Optional, each with what its absence costs:
// a GPU (the dry run does without), gloo's headers (the data-parallel check), NCCL's (its NCCL variant).
// SentencePiece is not needed: the checks feed token ids, and the build leaves the tokenizer plugin out.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const argv = process.argv.slice(2);
const opt = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const results = opt('--results');
const python = opt('--python') || 'python3';
const dry = argv.includes('--dry-run');

const missing = [];
const facts = {};
const lines = [];
const say = (label, text) => lines.push(`  ${label.padEnd(12)}${text}`);

/** The first line a command prints (stdout or stderr), or null when it cannot run. */
function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
  if (r.error || r.status !== 0) return null;
  return `${r.stdout || ''}${r.stderr || ''}`.trim().split('\n')[0];
}
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
const gib = (bytes) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

// libtorch: what the build will use (scripts/torch.js).
let torch = null;
try {
  torch = require('./torch').locate();
  facts.libtorch = {
    version: torch.version,
    prefix: torch.prefix,
    source: torch.source,
    cuda: torch.cuda,
    cxxStandard: torch.cxxStandard,
    gloo: torch.gloo,
    nccl: torch.nccl,
  };
  say(
    'libtorch',
    `${torch.version} at ${torch.prefix} (from ${torch.source}); CUDA build: ${torch.cuda ? 'yes' : 'no'}; C++${torch.cxxStandard}`,
  );
} catch (e) {
  missing.push(`a libtorch: ${e.message}`);
  say('libtorch', `MISSING: ${e.message}`);
}

// The Python torch: its CUDA, the GPUs, TF32 (scripts/gpu-check.py probe).
let probe = null;
try {
  probe = JSON.parse(
    execFileSync(python, [path.join(__dirname, 'gpu-check.py'), 'probe'], {
      encoding: 'utf8',
      timeout: 120_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
} catch (e) {
  probe = {
    error: String(e.stderr || e.message)
      .trim()
      .split('\n')
      .slice(-1)[0],
  };
}
facts.python = probe;
if (probe.error) {
  say('torch (py)', `${python}: ${probe.error} (GPUs, TF32 and the GEMM peak are then unknown)`);
} else {
  say(
    'torch (py)',
    `${probe.torch} at ${probe.torchDir}; CUDA ${probe.cuda ?? 'none'}${probe.cudnn ? `, cuDNN ${probe.cudnn}` : ''} (${python})`,
  );
}
const gpus = probe.gpus || [];
if (gpus.length) {
  gpus.forEach((g, i) =>
    say(i ? '' : 'GPUs', `${i}: ${g.name}, sm ${g.capability}, ${g.sms} SMs, ${gib(g.totalBytes)} (${gib(g.freeBytes)} free)`),
  );
} else {
  say('GPUs', dry ? 'none (dry run: the checks run on the CPU)' : 'none visible to torch');
  if (!dry) missing.push('a GPU visible to torch.cuda');
}
if (probe.tf32) {
  const env = probe.env || {};
  const forcedOff = env.NVIDIA_TF32_OVERRIDE === '0';
  const on = probe.tf32.cublas && !forcedOff;
  facts.tf32 = { ...probe.tf32, env, fp32MatmulIsTf32: on };
  say(
    'TF32',
    `fp32 matmuls ${on ? 'RUN IN TF32' : 'run in fp32'} here (float32_matmul_precision '${probe.tf32.matmulPrecision}', ` +
      `TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=${env.TORCH_ALLOW_TF32_CUBLAS_OVERRIDE ?? 'unset'}, NVIDIA_TF32_OVERRIDE=${env.NVIDIA_TF32_OVERRIDE ?? 'unset'}); ` +
      `the correctness checks run with TF32 off, the table says per row`,
  );
}

// The compiler, cmake and its generator.
const cxx = process.env.CXX || 'c++';
const cxxVersion = firstLine(cxx, ['--version']);
if (!cxxVersion) {
  missing.push(`a C++ compiler (${cxx})`);
  say('compiler', `MISSING: ${cxx} (set CXX, or install g++)`);
} else {
  const std = torch ? torch.cxxStandard : 17;
  const ok = spawnSync(cxx, [`-std=c++${std}`, '-x', 'c++', '-fsyntax-only', '-'], {
    input: 'int main() { return 0; }\n',
    encoding: 'utf8',
  });
  if (ok.status !== 0) missing.push(`a C++ compiler that takes -std=c++${std} (${cxxVersion})`);
  say('compiler', `${cxx}: ${cxxVersion}; -std=c++${std}: ${ok.status === 0 ? 'yes' : 'NO'}`);
  facts.compiler = { cxx, version: cxxVersion, std, ok: ok.status === 0 };
}
const cmakeVersion = firstLine('cmake', ['--version']);
const cmakeOk =
  cmakeVersion &&
  /(\d+)\.(\d+)/.test(cmakeVersion) &&
  (([a, b]) => a > 3 || (a === 3 && b >= 19))(/(\d+)\.(\d+)/.exec(cmakeVersion).slice(1).map(Number));
const generator = process.env.CMAKE_GENERATOR || 'Unix Makefiles';
const tool = generator === 'Ninja' ? 'ninja' : 'make';
const toolVersion = firstLine(tool, ['--version']);
if (!cmakeOk) missing.push(`cmake >= 3.19 (${cmakeVersion || 'not found'})`);
if (!toolVersion) missing.push(`${tool} for cmake's ${generator} generator (or ninja)`);
say('cmake', `${cmakeVersion || 'MISSING'}; generator ${generator} (${tool}: ${toolVersion || 'MISSING'})`);
facts.cmake = { version: cmakeVersion, generator, tool: toolVersion };

// Headers beyond libtorch and the C++ library: the vendored ones, the pack's, the chosen gloo/NCCL folders.
const nlohmann = path.join(root, 'native/third_party/nlohmann/detail/abi_macros.hpp');
const nlohmannVersion = fs.existsSync(nlohmann)
  ? ['MAJOR', 'MINOR', 'PATCH']
      .map((k) => new RegExp(`#define NLOHMANN_JSON_VERSION_${k} (\\d+)`).exec(fs.readFileSync(nlohmann, 'utf8'))?.[1])
      .join('.')
  : null;
if (!nlohmannVersion) missing.push('native/third_party/nlohmann (vendored; part of the checkout)');
const napi = (pkg) => {
  try {
    return require(pkg).include_dir;
  } catch {
    missing.push(`the ${pkg} package (the pack's node_modules: bash scripts/gpu-check --pack)`);
    return null;
  }
};
const napiDirs = [napi('node-api-headers'), napi('node-addon-api')];
// Folders inside the tree relative to it, those beside the torch (pip's nvidia wheels) relative to its site-packages.
const site = torch ? path.dirname(torch.prefix) : null;
const where = (d) =>
  !d
    ? ''
    : d.startsWith(root + path.sep)
      ? path.relative(root, d)
      : site && d.startsWith(site + path.sep)
        ? `<torch's site-packages>/${path.relative(site, d)}`
        : d;
say(
  'headers',
  `nlohmann/json ${nlohmannVersion || 'MISSING'} (native/third_party); Node-API: ${napiDirs.map((d) => where(d) || 'MISSING').join(', ')}`,
);
const glooLine = !torch
  ? 'unknown (no libtorch)'
  : torch.gloo
    ? `gloo: ${where(torch.gloo)}/gloo (data-parallel built)`
    : 'gloo: NONE (no .gpu-check/include/gloo, GLOO_INCLUDE or TRAINLARGE_GLOO=0): the build has no data-parallel training and its check is skipped';
const ncclLine = !torch
  ? ''
  : torch.nccl
    ? `; NCCL: ${torch.nccl.map(where).join(', ')}`
    : torch.cuda
      ? '; NCCL: none (no nccl.h beside the CUDA torch): CUDA tensors go through Gloo'
      : '; NCCL: not with a CPU libtorch';
say('', `${glooLine}${ncclLine}`);
say('', 'SentencePiece: not needed (the checks feed token ids; the build leaves the tokenizer plugin out)');
facts.headers = { nlohmann: nlohmannVersion, napi: napiDirs, gloo: torch?.gloo ?? null, nccl: torch?.nccl ?? null };

// Tools the build's link check runs, and the one that unpacked Node.
const tools = { readelf: has('readelf'), ldd: has('ldd'), xz: has('xz') };
for (const t of ['readelf', 'ldd'])
  if (!tools[t]) missing.push(`${t} (the build checks what the addon links with it; binutils / libc-bin)`);
say(
  'tools',
  `readelf ${tools.readelf ? 'yes' : 'MISSING'}, ldd ${tools.ldd ? 'yes' : 'MISSING'}, xz ${tools.xz ? 'yes' : `no (Node was unpacked with ${python}'s lzma)`}`,
);
say('node', `${process.version} at ${process.execPath}`);
facts.tools = tools;
facts.node = { version: process.version, path: process.execPath };
facts.missing = missing;

console.log(`gpu-check preflight${dry ? ' (dry run)' : ''}:`);
lines.forEach((l) => console.log(l));
console.log(missing.length ? `gpu-check preflight: MISSING ${missing.length}: ${missing.join('; ')}` : 'gpu-check preflight: ok');
if (results) {
  fs.mkdirSync(results, { recursive: true });
  fs.writeFileSync(path.join(results, 'preflight.json'), JSON.stringify(facts, null, 2) + '\n');
}
process.exitCode = missing.length ? 1 : 0;
