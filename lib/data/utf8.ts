// UTF-8 checked by hand, so an error can name the first bad byte, its offset and its line (TextDecoder's fatal
// mode says only that the input is not UTF-8).

/**
 * 1-based line of a byte offset within `bytes`, counting from `firstLine` (counts '\n' bytes before it).
 */
function lineOfByte(bytes: Uint8Array, offset: number, firstLine: number): number {
  let line = firstLine;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  return line;
}

/**
 * The error for bytes that are not UTF-8, naming the first bad byte, its offset in the file (`bytes` start at
 * `at`) and its line (`bytes` start on line `firstLine`). `where` names the file.
 */
export function notUtf8(where: string, bytes: Uint8Array, at = 0, firstLine = 1): Error {
  const bad = firstInvalidUtf8(bytes);
  const which =
    bad >= 0
      ? `byte 0x${bytes[bad].toString(16).padStart(2, '0')} at offset ${at + bad} (line ${lineOfByte(bytes, bad, firstLine)})`
      : 'invalid bytes';
  return new Error(`${where} is not UTF-8: ${which}; convert it, e.g. iconv -f latin1 -t utf-8`);
}

/**
 * Offset of the first byte that is not part of valid UTF-8 (the bytes TextDecoder's fatal mode
 * rejects: stray continuation bytes, truncated or overlong sequences, surrogates, > U+10FFFF), or -1.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) n = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      n = 2;
      if (b === 0xe0) lo = 0xa0; // overlong
      if (b === 0xed) hi = 0x9f; // UTF-16 surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3;
      if (b === 0xf0) lo = 0x90; // overlong
      if (b === 0xf4) hi = 0x8f; // above U+10FFFF
    } else return i;
    for (let k = 1; k <= n; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i; // undefined: truncated at the end
    }
    i += n + 1;
  }
  return -1;
}
