#!/usr/bin/env node
// The one source list (native/sources.json) for binding.gyp and scripts/fuzz:
//   node scripts/sources.js LIST [--unity DIR N]
// LIST: engine (the static library: no Node), bind (the addon's Node-aware part), addon (both),
// engineTest (the C++ test program), tokenizer (the SentencePiece plugin). With --unity DIR N it writes
// translation units that each #include N sources (as CMake's UNITY_BUILD does for CMakeLists.txt:
// libtorch's headers cost ~20 s a file) and prints their paths instead.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const lists = JSON.parse(fs.readFileSync(path.join(root, 'native/sources.json'), 'utf8'));
lists.addon = [...lists.engine, ...lists.bind];
const name = process.argv[2];
if (!Object.prototype.hasOwnProperty.call(lists, name)) {
  process.stderr.write(`sources.js: LIST must be one of ${Object.keys(lists).join(', ')}; got '${name ?? ''}'\n`);
  process.exit(2);
}
const sources = lists[name];
const i = process.argv.indexOf('--unity');
if (i < 0) {
  process.stdout.write(sources.join(' ') + '\n');
} else {
  const dir = path.resolve(root, process.argv[i + 1]);
  const batch = Number(process.argv[i + 2] || 8);
  fs.mkdirSync(dir, { recursive: true });
  const units = [];
  for (let k = 0; k * batch < sources.length; k++) {
    const file = path.join(dir, `${name}_${k}.cc`);
    const body = sources
      .slice(k * batch, (k + 1) * batch)
      .map((s) => `#include "${path.join(root, s)}"`)
      .join('\n');
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== body + '\n') fs.writeFileSync(file, body + '\n');
    units.push(path.relative(root, file));
  }
  process.stdout.write(units.join(' ') + '\n');
}
