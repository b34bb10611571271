#!/usr/bin/env node
// Builds the native addon with cmake-js (default) or node-gyp (--gyp), from native/sources.json, against
// the libtorch scripts/torch.js finds. Skips the build when sources, libtorch and Node are unchanged
// (--force rebuilds). The result is always build/trainlarge.node plus build/trainlarge.json, which
// lib/native.ts reads to explain a mismatch.
'use strict';
const { execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { locate } = require('./torch');

const root = path.resolve(__dirname, '..');
const args = new Set(process.argv.slice(2));
const builder = args.has('--gyp') ? 'node-gyp' : 'cmake-js';
const out = path.join(root, 'build');
const addon = path.join(out, 'trainlarge.node');
const stampFile = path.join(out, 'trainlarge.json');
// The tokenizer plugin (native/spm), loaded by the addon from beside itself.
const plugin = path.join(out, 'trainlarge_spm.so');

function filesBelow(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesBelow(p) : [p];
  });
}

function stamp(torch) {
  const h = crypto.createHash('sha256');
  const inputs = [...filesBelow(path.join(root, 'native')).sort(), 'CMakeLists.txt', 'binding.gyp', 'scripts/torch.js']
    .map((f) => path.resolve(root, f));
  for (const f of inputs) h.update(f).update(fs.readFileSync(f));
  h.update(JSON.stringify(torch)).update(process.versions.modules).update(builder);
  return h.digest('hex');
}

function run(cmd, argv) {
  execFileSync(cmd, argv, { cwd: root, stdio: 'inherit', env: process.env });
}

function main() {
  let torch;
  try {
    torch = locate();
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
  const digest = stamp(torch);
  if (!args.has('--force') && fs.existsSync(addon) && fs.existsSync(plugin) && fs.existsSync(stampFile)) {
    const previous = JSON.parse(fs.readFileSync(stampFile, 'utf8'));
    if (previous.stamp === digest) return; // up to date: stay quiet
  }
  const jobs = String(Math.max(1, require('os').availableParallelism?.() ?? require('os').cpus().length));
  console.log(`trainlarge: building the addon with ${builder} against libtorch ${torch.version} at ${torch.prefix} ` +
    `(CUDA: ${torch.cuda ? 'yes' : 'no'})`);
  const bin = (name) => path.join(root, 'node_modules', '.bin', name);
  let produced;
  if (builder === 'cmake-js') {
    const dir = path.join(out, 'cmake');
    run(bin('cmake-js'), ['compile', '--out', dir, '--parallel', jobs, '--log-level', 'warn']);
    produced = path.join(dir, 'Release');
  } else {
    run(bin('node-gyp'), ['configure', '--silent']);
    run(bin('node-gyp'), ['build', '--jobs', jobs, '--silent']);
    produced = path.join(out, 'Release');
  }
  // The addon and its tokenizer plugin (found beside it at run time).
  for (const [name, dest] of [['trainlarge.node', addon], ['trainlarge_spm.so', plugin]]) {
    fs.copyFileSync(path.join(produced, name), dest + '.tmp');
    fs.renameSync(dest + '.tmp', dest);
  }
  const info = {
    stamp: digest,
    builder,
    torch: { version: torch.version, prefix: torch.prefix, cuda: torch.cuda },
    node: { version: process.versions.node, modules: process.versions.modules, napi: process.versions.napi },
    builtAt: new Date().toISOString(),
  };
  fs.writeFileSync(stampFile, JSON.stringify(info, null, 2) + '\n');
  console.log(`trainlarge: built ${path.relative(root, addon)}`);
}

main();
