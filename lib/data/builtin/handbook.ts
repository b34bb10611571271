// handbook-en-fr (-de, -es): The Debian Administrator's Handbook in English beside one of its human
// translations, paragraph by paragraph. Debian's debian-handbook package installs the book as XHTML, one
// file per chapter and per section, with the same files in every language and the same paragraphs
// (`<div class="para">`) in the same order, so the n-th paragraph of a file pairs with the n-th of its
// translation. Paragraphs left in English (untranslated) are dropped.
import * as fs from 'fs';
import * as path from 'path';

export const HANDBOOK_DIR = '/usr/share/doc/debian-handbook/html';
/** The translations paired with English, by the language code in the corpus's name. */
export const HANDBOOK_LANGUAGES = { fr: 'fr-FR', de: 'de-DE', es: 'es-ES' } as const;
export type HandbookLanguage = keyof typeof HANDBOOK_LANGUAGES;

/**
 * Whole chapters held out (a chapter is its file and its sections' files): for valid the APT chapter and
 * "Solving Problems", for test "Packaging System" and the "Short Remedial Course" appendix, ~9% of the
 * pairs each. The same chapters in every language.
 */
export const HANDBOOK_VALID_CHAPTERS = ['apt.html', 'solving-problems.html'] as const;
export const HANDBOOK_TEST_CHAPTERS = ['packaging-system.html', 'short-remedial-course.html'] as const;

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** Inner HTML of every `<div class="para">` in document order (nested divs matched, so a para holding a div is whole). */
export function paraBlocks(html: string): string[] {
  const out: string[] = [];
  const open = '<div class="para">';
  for (let at = html.indexOf(open); at >= 0; at = html.indexOf(open, at + 1)) {
    let i = at + open.length;
    let depth = 1;
    while (depth > 0) {
      const nextOpen = html.indexOf('<div', i);
      const nextClose = html.indexOf('</div>', i);
      if (nextClose < 0) throw new Error(`unclosed <div class="para"> at offset ${at}`);
      if (nextOpen >= 0 && nextOpen < nextClose) {
        depth++;
        i = nextOpen + 4;
      } else {
        depth--;
        i = nextClose + 6;
      }
    }
    out.push(html.slice(at + open.length, i - 6));
  }
  return out;
}

/**
 * A paragraph's text: the URL boxes (`<div class="url">→ https://...</div>`, the same in every language)
 * dropped, tags removed (a block tag becomes a space), entities decoded, whitespace (no-break spaces
 * too: French puts them before ; : ! ? and %) collapsed to single spaces.
 */
export function paraText(inner: string): string {
  return inner
    .replace(/<div\b[^>]*class="url"[^>]*>[\s\S]*?<\/div>/g, ' ')
    .replace(/<\/?(?:div|p|br|li|ul|ol|table|tr|td)\b[^>]*>/g, ' ')
    .replace(/<[^>]*>/g, '')
    .replace(/&(amp|lt|gt|quot|apos|nbsp);/g, (_, e: string) => ENTITIES[e])
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n: string) => String.fromCodePoint(parseInt(n, 16)))
    .replace(/\s+/g, ' ')
    .trim();
}

/** The chapter a file belongs to: its `<link rel="up">` target, or the file itself for a chapter (up is the book's index). */
function chapterOf(file: string, html: string): string {
  const up = /<link rel="up" href="([^"#]+)"/.exec(html)?.[1];
  return up && up !== 'index.html' ? up : file;
}

export interface ParagraphPair {
  /** '<file>#<n>': the n-th paragraph (0-based) of the file. */
  id: string;
  /** The chapter's file ('apt.html' for sect.apt-get.html). */
  chapter: string;
  en: string;
  other: string;
}

/** The English files and their translations in `lang`, as read by handbookPairs. */
export function handbookFiles(lang: HandbookLanguage, dir = HANDBOOK_DIR): { en: string[]; other: string[] } {
  const enDir = path.join(dir, 'en-US');
  let files: string[];
  try {
    files = fs
      .readdirSync(enDir)
      .filter((f) => f.endsWith('.html'))
      .sort();
  } catch {
    throw new Error(`The Debian Administrator's Handbook is not installed (${enDir}): apt-get install debian-handbook`);
  }
  return { en: files.map((f) => path.join(enDir, f)), other: files.map((f) => path.join(dir, HANDBOOK_LANGUAGES[lang], f)) };
}

/**
 * Every translated paragraph pair of the book in file order, and the counts of paragraphs dropped as
 * untranslated (the translation is the English text) or empty (either side has no text: a paragraph
 * holding only a URL box). A file whose translation has another number of paragraphs is an error: the
 * alignment by position would not hold.
 */
export function handbookPairs(
  lang: HandbookLanguage,
  dir = HANDBOOK_DIR,
): { pairs: ParagraphPair[]; dropped: { untranslated: number; empty: number } } {
  const { en, other } = handbookFiles(lang, dir);
  const pairs: ParagraphPair[] = [];
  const dropped = { untranslated: 0, empty: 0 };
  en.forEach((enFile, k) => {
    const file = path.basename(enFile);
    const enHtml = fs.readFileSync(enFile, 'utf8');
    let otherHtml: string;
    try {
      otherHtml = fs.readFileSync(other[k], 'utf8');
    } catch {
      throw new Error(
        `debian-handbook: ${other[k]} is missing (the ${HANDBOOK_LANGUAGES[lang]} translation should have every English file)`,
      );
    }
    const a = paraBlocks(enHtml);
    const b = paraBlocks(otherHtml);
    if (a.length !== b.length)
      throw new Error(`debian-handbook: ${file} has ${a.length} paragraphs in en-US and ${b.length} in ${HANDBOOK_LANGUAGES[lang]}`);
    const chapter = chapterOf(file, enHtml);
    a.forEach((block, n) => {
      const enText = paraText(block);
      const otherText = paraText(b[n]);
      if (!enText || !otherText) dropped.empty++;
      else if (enText === otherText) dropped.untranslated++;
      else pairs.push({ id: `${file}#${n}`, chapter, en: enText, other: otherText });
    });
  });
  return { pairs, dropped };
}
