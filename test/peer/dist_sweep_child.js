// A data-parallel sweep for test/dist.test.ts whose rank 0 alone is stopped between two models: its
// AbortSignal fires as the first model is done, and the other ranks get no signal. Every rank prints
// "rank R: finished" or "rank R: ERRORNAME: message" and exits 0, 130 (AbortError) or 3.
//   trainlarge launch --nproc 2 test/peer/dist_sweep_child.js SPEC.json DIR
'use strict';
const fs = require('fs');
const { Sweep } = require('../../dist/lib');

const [specFile, dir] = process.argv.slice(2);
const rank = Number(process.env.RANK ?? 0);
const controller = new AbortController();
new Sweep(JSON.parse(fs.readFileSync(specFile, 'utf8')))
  .run({
    dir,
    distributed: 'auto',
    signal: rank === 0 ? controller.signal : undefined,
    onProgress: (p) => {
      if (p.phase === 'done' && p.index === 0) controller.abort();
    },
  })
  .then(
    () => console.log(`rank ${rank}: finished`),
    (e) => {
      console.log(`rank ${rank}: ${e.name}: ${e.message}`);
      process.exitCode = e.name === 'AbortError' ? 130 : 3;
    },
  );
