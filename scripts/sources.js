#!/usr/bin/env node
// The one source list (native/sources.json: the addon's sources, and the tokenizer plugin's) for
// binding.gyp. `node scripts/sources.js tokenizer` prints the plugin's, `engine` the addon's less native/bind. With --unity DIR N it writes translation
// units that each #include N sources (as CMake's UNITY_BUILD does for CMakeLists.txt: libtorch's headers
// cost ~20 s a file) and prints their paths instead.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const lists = JSON.parse(fs.readFileSync(path.join(root, 'native/sources.json'), 'utf8'));
// 'engine': the addon's sources without native/bind (the Node-aware part), for programs that link the engine only.
const sources = process.argv.includes('tokenizer') ? lists.tokenizer
  : process.argv.includes('engine') ? lists.addon.filter((s) => !s.startsWith('native/bind/')) : lists.addon;
const i = process.argv.indexOf('--unity');
if (i < 0) {
  process.stdout.write(sources.join(' ') + '\n');
} else {
  const dir = path.resolve(root, process.argv[i + 1]);
  const batch = Number(process.argv[i + 2] || 8);
  fs.mkdirSync(dir, { recursive: true });
  const units = [];
  for (let k = 0; k * batch < sources.length; k++) {
    const file = path.join(dir, `unity_${k}.cc`);
    const body = sources.slice(k * batch, (k + 1) * batch).map((s) => `#include "${path.join(root, s)}"`).join('\n');
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== body + '\n') fs.writeFileSync(file, body + '\n');
    units.push(path.relative(root, file));
  }
  process.stdout.write(units.join(' ') + '\n');
}
