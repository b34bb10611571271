#!/usr/bin/env node
// The trainlarge command (package.json "bin"). The commands live in lib/cli/, one module each; `trainlarge help` lists them.
import { runCli } from './cli/main';

void runCli(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
