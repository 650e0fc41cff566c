/**
 * The most text one Instagram message carries: 999 bytes of UTF-8. Meta's send-message page says both
 * "Message text must be UTF-8 and be a 1000 bytes or less" and, in its Limitations, "Text message must be
 * less than 1000 characters" (docs/meta-api-notes.md §3 and open point 9). A character is at least one
 * byte, so 999 bytes meets both: 1,000 bytes alone would let a 1,000-character ASCII text through, which
 * the second sentence refuses.
 * https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/messaging-api
 * https://developers.facebook.com/docs/messenger-platform/instagram/features/send-message
 */
export const MAX_MESSAGE_BYTES = 999;

/**
 * Text split into Instagram messages of at most `maxBytes` (MAX_MESSAGE_BYTES) bytes of UTF-8.
 *
 * A longer text is cut at the best boundary that fits: a blank line, then a line break, then a sentence
 * end, then whitespace; a single word longer than a message is cut between grapheme clusters (so emoji
 * ZWJ sequences, flags and combining marks stay whole), and only a grapheme cluster longer than a message
 * is cut between code points. Each part is trimmed of the whitespace at the cut and nothing else, so the
 * parts appear in the original in order, separated only by whitespace.
 */
export function splitMessage(text: string, maxBytes = MAX_MESSAGE_BYTES): string[] {
  if (!Number.isInteger(maxBytes) || maxBytes < 4) {
    throw new RangeError('maxBytes must be an integer of at least 4 (the longest UTF-8 code point)');
  }
  if (text.trim() === '') return [];
  if (bytes(text) <= maxBytes) return [text];
  return splitAt(text, 0, maxBytes);
}

/**
 * Boundaries, best first. Each regex matches a separator; the cut is at the end of the match, so the
 * separator's punctuation stays with the text before it and its whitespace is trimmed away.
 */
const BOUNDARIES: RegExp[] = [
  /\n[^\S\n]*\n\s*/g, // paragraph: a blank line
  /\n\s*/g, // line break
  // Sentence end: . ! ? … (with closing quotes or brackets) before whitespace, so "3.14" and
  // "example.com" are not cut; CJK 。！？ need no space after them.
  /(?:[.!?…]+["'”’)\]»]*(?=\s)|[。！？]+[」』）"”’]*)\s*/g,
  /\s+/g, // word
];

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

function splitAt(text: string, level: number, maxBytes: number): string[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  if (bytes(trimmed) <= maxBytes) return [trimmed];
  if (level >= BOUNDARIES.length) return hardSplit(trimmed, maxBytes);

  const pieces = piecesAt(trimmed, BOUNDARIES[level]);
  if (pieces.length < 2) return splitAt(trimmed, level + 1, maxBytes);

  // Greedy: fill each part with whole pieces; a piece too big on its own is cut at the next level.
  const parts: string[] = [];
  let current = '';
  for (const piece of pieces) {
    if (bytes((current + piece).trim()) <= maxBytes) {
      current += piece;
      continue;
    }
    if (current.trim() !== '') parts.push(current.trim());
    current = '';
    if (bytes(piece.trim()) <= maxBytes) current = piece;
    else parts.push(...splitAt(piece, level + 1, maxBytes));
  }
  if (current.trim() !== '') parts.push(current.trim());
  return parts;
}

/** Cuts `text` after each separator match; the pieces concatenate back to `text`. */
function piecesAt(text: string, separator: RegExp): string[] {
  const pieces: string[] = [];
  let start = 0;
  for (const match of text.matchAll(separator)) {
    const end = match.index + match[0].length;
    if (end > start && end < text.length) {
      pieces.push(text.slice(start, end));
      start = end;
    }
  }
  pieces.push(text.slice(start));
  return pieces;
}

/** Last resort for a run without whitespace: whole grapheme clusters, else whole code points. */
function hardSplit(text: string, maxBytes: number): string[] {
  const parts: string[] = [];
  let current = '';
  let size = 0;
  const add = (unit: string): void => {
    const n = bytes(unit);
    if (size + n > maxBytes && current !== '') {
      parts.push(current);
      current = '';
      size = 0;
    }
    current += unit;
    size += n;
  };
  for (const { segment } of graphemes.segment(text)) {
    if (bytes(segment) <= maxBytes) add(segment);
    else for (const codePoint of segment) add(codePoint);
  }
  if (current !== '') parts.push(current);
  return parts;
}

function bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}
