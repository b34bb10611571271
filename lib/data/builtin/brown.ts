// The Brown Corpus's tagged text made natural again: tags stripped, tokens detokenized, and the
// tokenizer's oddities undone (tested on real sentences in test/sources.test.ts).

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
    if (prev === w && w === '(' && open > 0) {
      open--;
      continue;
    }
    if (prev === w && w === ')' && open < 0) {
      open++;
      continue;
    }
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
      const closes =
        next === undefined || ATTACH_LEFT.has(next) || next === "''"
          ? true
          : prev === undefined || BEFORE_OPENING.has(prev)
            ? false
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
