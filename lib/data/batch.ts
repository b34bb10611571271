// A batch of token ids as the engine takes it (flat ids, shape, attention mask), built from what users pass
// and checked before native code sees it: ragged sequences padded, every id and length against the model's.
import { checkSequences, checkTokenId, describeValue, isTokenId } from './tokens';

/** Token ids: one array per sequence (ragged is fine: padded with padId and masked), or a flat array + shape. */
export type TokenInput = ArrayLike<number>[] | { ids: Int32Array; batch: number; length: number; attentionMask?: Uint8Array };

/** What a batch is checked against: the model's vocabulary, longest sequence and padding id. */
export interface BatchShape {
  vocabSize: number;
  maxLen: number;
  padId: number;
}

/** Flat (batch x length) ids and the attention mask, null when no row is padded. */
export interface TokenBatch {
  ids: Int32Array;
  batch: number;
  length: number;
  mask: Uint8Array | null;
}

/**
 * The batch as the engine takes it, after checking every part of it: a JS error naming the argument and
 * what is allowed, before native code sees anything.
 */
export function toBatch(tokens: TokenInput, shape: BatchShape): TokenBatch {
  const { vocabSize, maxLen, padId } = shape;
  const allowed =
    'an array of token-id sequences (number[][] or typed arrays) or { ids: Int32Array, batch, length, attentionMask?: Uint8Array }';
  if (tokens === null || typeof tokens !== 'object') throw new TypeError(`tokens: expected ${allowed}, got ${describeValue(tokens)}`);
  if (!Array.isArray(tokens)) {
    const t = tokens;
    if (!(t.ids instanceof Int32Array)) throw new TypeError(`tokens.ids: expected an Int32Array, got ${describeValue(t.ids)}`);
    for (const k of ['batch', 'length'] as const) {
      if (!Number.isInteger(t[k]) || t[k] <= 0) throw new RangeError(`tokens.${k}: expected a positive integer, got ${t[k]}`);
    }
    if (t.ids.length !== t.batch * t.length)
      throw new RangeError(`tokens: has ${t.ids.length} elements but the shape needs ${t.batch * t.length}`);
    if (t.length > maxLen) throw new RangeError(`tokens.length: ${t.length} tokens, more than maxLen (${maxLen})`);
    if (t.attentionMask !== undefined && t.attentionMask !== null) {
      if (!(t.attentionMask instanceof Uint8Array))
        throw new TypeError(`tokens.attentionMask: expected a Uint8Array, got ${describeValue(t.attentionMask)}`);
      if (t.attentionMask.length !== t.ids.length)
        throw new RangeError(`tokens.attentionMask: has ${t.attentionMask.length} elements, ids has ${t.ids.length}`);
    }
    for (let i = 0; i < t.ids.length; i++) if (!isTokenId(t.ids[i], vocabSize)) checkTokenId(t.ids[i], `tokens.ids[${i}]`, vocabSize);
    return { ids: t.ids, batch: t.batch, length: t.length, mask: t.attentionMask ?? null };
  }
  if (tokens.length === 0) throw new RangeError('tokens: the batch is empty');
  checkSequences(tokens, 'tokens', vocabSize);
  const length = Math.max(...tokens.map((s) => s.length));
  if (length === 0) throw new RangeError('tokens: every sequence is empty');
  if (length > maxLen) throw new RangeError(`tokens: a sequence has ${length} tokens, more than maxLen (${maxLen})`);
  const batch = tokens.length;
  const ids = new Int32Array(batch * length).fill(padId);
  const mask = new Uint8Array(batch * length);
  let ragged = false;
  tokens.forEach((s, b) => {
    for (let i = 0; i < s.length; i++) {
      ids[b * length + i] = s[i];
      mask[b * length + i] = 1;
    }
    ragged ||= s.length !== length;
  });
  return { ids, batch, length, mask: ragged ? mask : null };
}
