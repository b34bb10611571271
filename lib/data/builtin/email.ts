// An RFC-822 / MIME message reduced to its readable text: the SpamAssassin cleaning (see cleanEmail).

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
  return text.replace(/=[ \t]*\n/g, '').replace(/(?:=[0-9A-Fa-f]{2})+/g, (run) =>
    decodeBytes(
      run.replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
      charset,
    ),
  );
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
  nbsp: ' ',
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  copy: '\u00a9',
  reg: '\u00ae',
  trade: '\u2122',
  hellip: '\u2026',
  mdash: '\u2014',
  ndash: '\u2013',
  lsquo: '\u2018',
  rsquo: '\u2019',
  ldquo: '\u201c',
  rdquo: '\u201d',
  bull: '\u2022',
  middot: '\u00b7',
  pound: '\u00a3',
  euro: '\u20ac',
  cent: '\u00a2',
  yen: '\u00a5',
  deg: '\u00b0',
  times: '\u00d7',
  laquo: '\u00ab',
  raquo: '\u00bb',
  eacute: '\u00e9',
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
  else if (encoding === 'base64')
    text = decodeBytes(Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64').toString('latin1'), charset);
  // ISO-2022 (Japanese mail) is 7-bit ASCII with escape sequences: it needs decoding even unencoded.
  // eslint-disable-next-line no-control-regex -- pure ASCII test: \x00 is meant
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
  const head = blocks
    .slice(0, n)
    .map((b) => b.replace(/^(?:[ \t]+\S.*(?:\n|$))+/, ''))
    .join('\n');
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
  const subject = decodeHeader(headers.get('subject') ?? '')
    .replace(/\s+/g, ' ')
    .trim();
  const cleaned = partText(headers, body, 0)
    // eslint-disable-next-line no-control-regex -- removing control bytes is the point
    .replace(/[\x00-\x08\x0e-\x1f\x7f]/g, '') // control bytes of binary junk and terminal escapes
    .replace(/\ufffd+/g, '\ufffd') // the corpus decoded 8-bit mail as UTF-8: one mark per undecodable run
    .replace(/\s+/g, ' ')
    .trim();
  return { subject, body: cleaned, text: `Subject: ${subject}\n${cleaned}` };
}
