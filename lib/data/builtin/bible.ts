// bible-en-es: the King James Version beside the Reina-Valera 1909, verse by verse. Both SWORD modules
// are indexed by the KJV versification (sword.ts), so a verse reference names one English and one
// Spanish verse. The Spanish module keeps the Reina-Valera's own numbering in a few chapters (Hebrew
// numbering in Numbers 13 and 30, 1 Samuel 24, Hosea 12, Jonah 2; the Vulgate's in Job 39-40), which
// shifts its text against the KJV's there; alignedVerses finds and drops those pairs by the Strong's
// numbers both modules tag their words with.
import { osisText, RawVerse, strongsNumbers } from './sword';

export const KJV_MODULE = 'engKJV2006eb';
export const RV1909_MODULE = 'spaRV1909eb';

/**
 * Whole books held out, a mix of narrative, wisdom, prophecy and epistle, none with a near-parallel
 * elsewhere in the Bible (as Kings has in Chronicles, or Mark in Matthew and Luke), so no test verse has
 * a near-copy in train. ~3% of the verses each.
 */
export const BIBLE_VALID_BOOKS = ['Esth', 'Eccl', 'Rom'] as const;
export const BIBLE_TEST_BOOKS = ['Ruth', 'Dan', '1Cor'] as const;

// ---------------------------------------------------------------------------------------------------
// Spanish cleaning

/** Object pronouns the translators added after a verb (`<w>sáca</w><transChange>lo</transChange>`: sácalo). */
const CLITICS = new Set(['lo', 'la', 'los', 'las', 'le', 'les', 'me', 'te', 'se', 'nos', 'os']);
/** The words in this text after which an added pronoun starts the next verb instead ('no lo hizo', 'Josué los circuncidó'). */
const NOT_VERBS = new Set(['no', 'que', 'como', 'y', 'os', 'ellos', 'él', 'cuánto', 'gentes', 'dios', 'jehová', 'josué']);

/** osisText's joinsAdded for the Reina-Valera: an added clitic pronoun joins the verb before it. */
export function spanishJoinsAdded(word: string, added: string): boolean {
  return word.length > 0 && CLITICS.has(added) && !NOT_VERBS.has(word.toLowerCase());
}

/** Psalm 119's stanzas open with the Hebrew letter's name in the Spanish text ('ALEPH.', 'BETH'); the KJV has them as non-canonical titles, which osisText drops. */
function dropAcrostic(ref: string, text: string): string {
  const m = /^Ps\.119\.(\d+)$/.exec(ref);
  return m && (Number(m[1]) - 1) % 8 === 0 ? text.replace(/^\p{Lu}+\.?\s+/u, '') : text;
}

const WORD = /[\p{L}\p{M}]+/gu;
const LETTER_OR_COMMA = /[\p{L}\p{M},]/u;
const isUpper = (w: string): boolean => w === w.toUpperCase() && w !== w.toLowerCase();

/**
 * The Reina-Valera prints the first word(s) of a chapter in capitals ('EN el principio crió Dios', 'Y
 * FUÉ que á los treinta años', 'DE SIETE años era Joas'); the module keeps them. `truecase` rewrites that
 * run of capitals in each word's usual case: the form it takes most often mid-sentence elsewhere in the
 * text ('fué', 'Ezechîas'), else capitalised at a chapter's start and kept as it is elsewhere (JAH), and
 * capitalised where a sentence starts. Built once from every verse of the text.
 */
export function smallCapsTruecaser(texts: readonly string[]): (text: string, chapterStart: boolean) => string {
  const forms = new Map<string, Map<string, number>>();
  for (const t of texts) {
    for (const m of t.matchAll(WORD)) {
      const w = m[0];
      // Mid-sentence: after a letter or a comma and a space.
      if (isUpper(w) && w.length > 1) continue;
      if (m.index < 2 || t[m.index - 1] !== ' ' || !LETTER_OR_COMMA.test(t[m.index - 2])) continue;
      const key = w.toLowerCase();
      const f = forms.get(key) ?? new Map<string, number>();
      f.set(w, (f.get(w) ?? 0) + 1);
      forms.set(key, f);
    }
  }
  const usual = (w: string): string | undefined => {
    const f = forms.get(w.toLowerCase());
    return f && [...f.entries()].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
  };
  return (text, chapterStart) => {
    const words = [...text.matchAll(WORD)];
    // The first run of capitalised words (separated by single spaces) holding a word of 2+ letters.
    let start = -1;
    let end = -1;
    for (let i = 0; i < words.length && end < 0; i++) {
      if (!isUpper(words[i][0])) continue;
      let j = i;
      while (j + 1 < words.length && isUpper(words[j + 1][0]) && words[j].index + words[j][0].length + 1 === words[j + 1].index) j++;
      if (words.slice(i, j + 1).some((w) => w[0].length > 1)) [start, end] = [i, j];
      i = j;
    }
    if (start < 0) return text;
    const next = words[end + 1]?.[0];
    const atVerseStart = /^[¿¡("'\s]*$/.test(text.slice(0, words[start].index));
    // A run mid-chapter is small capitals only at the verse's start and before a lower-case word ('HUBO en los días').
    if (!chapterStart && !(atVerseStart && next !== undefined && !isUpper(next))) return text;
    let out = text.slice(0, words[start].index);
    for (let k = start; k <= end; k++) {
      const w = words[k];
      // A word never written otherwise: capitalised at a chapter's start ('EXISTÍA entonces', 'Y ACHAB dió',
      // mostly names and sentence starts), kept elsewhere ('JAH, si mirares').
      let form = usual(w[0]) ?? (chapterStart ? w[0][0] + w[0].slice(1).toLowerCase() : w[0]);
      const sentenceStart = /(^|[.!?]\s+)[¿¡("']*$/.test(text.slice(0, w.index));
      if (sentenceStart) form = form[0].toUpperCase() + form.slice(1);
      out += form + text.slice(w.index + w[0].length, k < end ? words[k + 1].index : w.index + w[0].length);
    }
    return out + text.slice(words[end].index + words[end][0].length);
  };
}

// ---------------------------------------------------------------------------------------------------
// Pairing

export interface VersePair {
  /** 'Gen.1.1' */
  ref: string;
  book: string;
  en: string;
  es: string;
}

export type DropReason = 'empty' | 'chapter' | 'shifted' | 'merged';

/** Jaccard overlap of two sets. */
function overlap(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  let both = 0;
  for (const x of a) if (b.has(x)) both++;
  const union = a.size + b.size - both;
  return union === 0 ? 0 : both / union;
}

/** A verse pair shares less than this fraction of its Strong's numbers: it disagrees. */
const DISAGREE = 0.2;
/** A chapter with this many disagreeing verses is out of step as a whole (a numbering shift persists to its end). */
const CHAPTER_DISAGREEMENTS = 3;
/** A verse within two places matching this much better than the verse's own partner: the text is shifted. */
const SHIFT_MARGIN = 0.2;

/**
 * Verse pairs of two modules read by readZText, each side cleaned by its function (`i` is the verse's
 * index), and the references dropped, by reason:
 * - empty: either side has no text;
 * - chapter: the chapter has 3+ verses whose Strong's numbers overlap less than 20% (Jaccard): its numbering is
 *   out of step (Numbers 13 and 30, 1 Samuel 24, 1 Kings 22, 1 Chronicles 21, 2 Chronicles 33, Job 39-40,
 *   Hosea 12, Jonah 2), so the whole chapter goes;
 * - shifted: a verse up to two places away, on either side, overlaps 0.2 more than the verse's own partner;
 * - merged: the next or previous verse is empty on one side and this one holds its words (the module put
 *   two verses in one).
 */
export function alignedVerses(
  en: readonly RawVerse[],
  es: readonly RawVerse[],
  clean: { en: (v: RawVerse, i: number) => string; es: (v: RawVerse, i: number) => string },
): { pairs: VersePair[]; dropped: Record<DropReason, string[]> } {
  if (en.length !== es.length || en.some((v, i) => v.ref !== es[i].ref))
    throw new Error('alignedVerses: the modules list different verses');
  const n = en.length;
  const textEn = en.map(clean.en);
  const textEs = es.map(clean.es);
  const sEn = en.map((v) => strongsNumbers(v.osis));
  const sEs = es.map((v) => strongsNumbers(v.osis));
  const chapterOf = (i: number): string => `${en[i].book}.${en[i].chapter}`;
  const own = sEn.map((s, i) => overlap(s, sEs[i]));
  const disagreements = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    if (textEn[i] && textEs[i] && own[i] < DISAGREE) disagreements.set(chapterOf(i), (disagreements.get(chapterOf(i)) ?? 0) + 1);
  }
  const union = (a: ReadonlySet<string>, b: ReadonlySet<string>): Set<string> => new Set([...a, ...b]);
  const dropped: Record<DropReason, string[]> = { empty: [], chapter: [], shifted: [], merged: [] };
  const pairs: VersePair[] = [];
  for (let i = 0; i < n; i++) {
    const ref = en[i].ref;
    let reason: DropReason | undefined;
    if (!textEn[i] || !textEs[i]) reason = 'empty';
    else if ((disagreements.get(chapterOf(i)) ?? 0) >= CHAPTER_DISAGREEMENTS) reason = 'chapter';
    else {
      let best = 0;
      for (const k of [i - 2, i - 1, i + 1, i + 2]) {
        if (k >= 0 && k < n) best = Math.max(best, overlap(sEs[i], sEn[k]), overlap(sEn[i], sEs[k]));
      }
      if (best >= own[i] + SHIFT_MARGIN) reason = 'shifted';
      for (const k of [i - 1, i + 1]) {
        if (reason || k < 0 || k >= n || chapterOf(k) !== chapterOf(i)) continue;
        if (!textEs[k] && overlap(sEs[i], union(sEn[i], sEn[k])) > own[i] + 0.05) reason = 'merged';
        if (!textEn[k] && overlap(sEn[i], union(sEs[i], sEs[k])) > own[i] + 0.05) reason = 'merged';
      }
    }
    if (reason) dropped[reason].push(ref);
    else pairs.push({ ref, book: en[i].book, en: textEn[i], es: textEs[i] });
  }
  return { pairs, dropped };
}

/** The English and Spanish cleaning of bible-en-es: osisText, plus for the Spanish the clitic joins, Psalm 119's letter names and the small capitals. */
export function bibleCleaners(es: readonly RawVerse[]): { en: (v: RawVerse) => string; es: (v: RawVerse, i: number) => string } {
  const plain = es.map((v) => dropAcrostic(v.ref, osisText(v.osis, { joinsAdded: spanishJoinsAdded })));
  const truecase = smallCapsTruecaser(plain);
  return {
    en: (v) => osisText(v.osis),
    es: (v, i) => truecase(plain[i], v.verse === 1),
  };
}
