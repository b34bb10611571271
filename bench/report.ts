import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Replaces (or appends) the section that starts with `## title` in BENCHMARKS.md. */
export function writeSection(section: string): void {
  const file = path.join(ROOT, 'BENCHMARKS.md');
  const heading = section.split('\n', 1)[0];
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n\n';
  const start = text.indexOf(heading + '\n');
  if (start >= 0) {
    const rest = text.slice(start + 1);
    const next = rest.search(/\n## /);
    const end = next >= 0 ? start + 1 + next + 1 : text.length;
    text = text.slice(0, start) + section + (end < text.length ? '\n' + text.slice(end) : '');
  } else {
    text = text.replace(/\s*$/, '\n\n') + section;
  }
  fs.writeFileSync(file, text);
  console.log(`wrote ${heading} to ${file}`);
}

/** The CPU's model name, as /proc/cpuinfo gives it. */
export function cpuName(): string {
  return (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1] ?? os.cpus()[0]?.model ?? 'unknown').trim();
}

/** Prints a benchmark's BENCHMARKS.md section and, when `write`, puts it in the file. */
export function publish(section: string, write: boolean): void {
  console.log('\n' + section);
  if (write) writeSection(section);
}

/** Runs a benchmark's main; a failure prints its stack and exits 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((e) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
  });
}
