// sacreBLEU's tokenizers ('13a', 'none', 'char') and the Python string semantics BLEU and chrF depend on.
// sacreBLEU runs on Python str: split() and rstrip() use Python's whitespace set (not JavaScript's \s),
// and characters are code points (not UTF-16 units). The helpers here reproduce both.

// Python's str.isspace() set, which str.split() and str.rstrip() use. It differs from JavaScript's \s:
// Python counts U+001C..U+001F and U+0085 as whitespace, and does not count U+FEFF.
const PY_SPACE = '\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACES = new RegExp(`[${PY_SPACE}]+`);
const PY_TRAILING_SPACES = new RegExp(`[${PY_SPACE}]+$`);

/** Python's `s.split()`: the words between runs of Python whitespace, none empty. */
export function pySplit(s: string): string[] {
  return s.split(PY_SPACES).filter((w) => w.length > 0);
}

/** Python's `s.rstrip()`. */
export function pyRstrip(s: string): string {
  return s.replace(PY_TRAILING_SPACES, '');
}

/** The code points of `s`, as Python indexes a str. */
export function codePoints(s: string): string[] {
  return Array.from(s);
}

// mteval-v13a's language-dependent rules, as sacreBLEU's TokenizerRegexp applies them, in order:
// 1. space out ASCII punctuation and symbols except ' , - . (the ranges are sacreBLEU's:
//    { | } ~  [ \ ] ^ _ `  space ! " # $ % &  ( ) * +  : ; < = > ? @  /)
// 2. a period or comma not preceded by a digit, 3. one not followed by a digit, 4. a dash after a digit.
// 1,000.5 stays one token; 'state-of-the-art' and "don't" stay whole.
const RULES_13A: [RegExp, string][] = [
  [/([{-~[-`\x20-&(-+:-@/])/g, ' $1 '],
  [/([^0-9])([.,])/g, '$1 $2 '],
  [/([.,])([^0-9])/g, ' $1 $2'],
  [/([0-9])(-)/g, '$1 $2 '],
];

/**
 * sacreBLEU's '13a' tokenizer (mteval-v13a.pl, the WMT standard): drops `<skipped>`, joins words broken
 * by "-\n", turns other newlines into spaces, unescapes &quot; &amp; &lt; &gt; (in that order, once each),
 * applies the punctuation rules above, then collapses whitespace.
 */
export function tokenize13a(line: string): string {
  line = line.replaceAll('<skipped>', '').replaceAll('-\n', '').replaceAll('\n', ' ');
  if (line.includes('&')) {
    line = line.replaceAll('&quot;', '"').replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  }
  line = ` ${line} `;
  for (const [re, replacement] of RULES_13A) line = line.replace(re, replacement);
  return pySplit(line).join(' ');
}

/** The tokenizers BLEU accepts, named as sacreBLEU's `tokenize` argument and signature name them. */
export const BLEU_TOKENIZERS = ['13a', 'none', 'char'] as const;
export type BleuTokenizer = (typeof BLEU_TOKENIZERS)[number];

/** The tokenizer function for `name` ('none' returns the line as it is; 'char' spaces out every code point). */
export function bleuTokenizer(name: BleuTokenizer): (line: string) => string {
  switch (name) {
    case '13a':
      return tokenize13a;
    case 'none':
      return (line) => line;
    case 'char':
      return (line) => codePoints(line).join(' ');
  }
}
