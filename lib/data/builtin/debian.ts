import * as fs from 'fs';

/**
 * A Debian package that carries data for the built-in parallel corpora. scripts/setup installs them (as
 * root, with apt-get); the version here is the one the corpora were built and measured with (Debian 12),
 * and each prepared corpus's manifest records the version found and the checksums of the files read.
 */
export interface DebianPackage {
  readonly name: string;
  readonly version: string;
  readonly license: string;
  readonly description: string;
}

export const DEBIAN_PACKAGES: readonly DebianPackage[] = [
  {
    name: 'sword-text-kjv',
    version: '14.3-1',
    license: 'public domain (text); GPL-2+ (packaging)',
    description: 'King James Version with Strong’s numbers, SWORD module engKJV2006eb',
  },
  {
    name: 'sword-text-sparv',
    version: '2.60-1',
    license: 'public domain',
    description: 'Reina-Valera 1909 with Strong’s numbers, SWORD module spaRV1909eb',
  },
  {
    name: 'debian-handbook',
    version: '11.20220922',
    license: 'GPL-2.0+ or CC-BY-SA-3.0',
    description: "The Debian Administrator's Handbook (bullseye) as HTML in 26 languages",
  },
];

export function debianPackage(name: string): DebianPackage {
  const pin = DEBIAN_PACKAGES.find((p) => p.name === name);
  if (!pin) throw new Error(`Debian package '${name}' is not declared; known: ${DEBIAN_PACKAGES.map((p) => p.name).join(', ')}`);
  return pin;
}

/** The installed version of a Debian package from dpkg's status file, or undefined (not installed, or not Debian). */
export function installedVersion(name: string, statusFile = '/var/lib/dpkg/status'): string | undefined {
  let status: string;
  try {
    status = fs.readFileSync(statusFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const stanza of status.split(/\n\n+/)) {
    if (!stanza.startsWith(`Package: ${name}\n`)) continue;
    if (!/^Status: .* installed$/m.test(stanza)) return undefined;
    return /^Version: (.+)$/m.exec(stanza)?.[1];
  }
  return undefined;
}
