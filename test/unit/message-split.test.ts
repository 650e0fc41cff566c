import { MAX_MESSAGE_BYTES, splitMessage } from '../../src/instagram/message-split';

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');
const graphemes = (s: string): string[] =>
  Array.from(new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(s), (g) => g.segment);
const squash = (s: string): string => s.replace(/\s+/g, ' ').trim();

/**
 * The split property: each part fits, is valid UTF-8, and the parts occur in the original in order with
 * only whitespace between them, so nothing is lost, added or repeated.
 */
function expectFaithfulSplit(original: string, parts: string[], maxBytes = MAX_MESSAGE_BYTES): void {
  let at = 0;
  for (const part of parts) {
    expect(bytes(part)).toBeLessThanOrEqual(maxBytes);
    expect(part).not.toBe('');
    expect(Buffer.from(part, 'utf8').toString('utf8')).toBe(part);
    expect(Buffer.from(part, 'utf8').toString('utf8')).not.toContain('\uFFFD');
    const found = original.indexOf(part, at);
    expect(found).toBeGreaterThanOrEqual(at);
    expect(original.slice(at, found).trim()).toBe('');
    at = found + part.length;
  }
  expect(original.slice(at).trim()).toBe('');
  expect(parts.join('').replace(/\s+/g, '')).toBe(original.replace(/\s+/g, ''));
}

/** Sentences of mixed length, ~2,600 characters of ASCII. */
function asciiText(): string {
  const sentences: string[] = [];
  for (let i = 0; sentences.join(' ').length < 2600; i++) {
    sentences.push(`Sentence ${i} tells the visitor about shipping${' and returns'.repeat(i % 5)}.`);
  }
  return sentences.join(' ').slice(0, 2600);
}

test('when text is empty or whitespace only, then there are no parts', () => {
  expect(splitMessage('')).toEqual([]);
  expect(splitMessage(' \n\t ')).toEqual([]);
});

test('when text fits, then it is the only part, unchanged', () => {
  expect(splitMessage('Hello there!')).toEqual(['Hello there!']);
});

test('when text is 999 bytes, then it stays one part; at 1,000 it is split', () => {
  const text = `${'é'.repeat(400)}${'a'.repeat(199)}`; // 800 + 199 bytes
  expect(bytes(text)).toBe(999);
  expect(splitMessage(text)).toEqual([text]);
  expect(splitMessage(`${text}b`).length).toBe(2);
});

test("when text is 1,000 ASCII characters, then no part reaches Meta's 1,000 characters", () => {
  // "1000 bytes or less" would let it through whole; "less than 1000 characters" would not.
  const text = `${'We will answer you soon. '.repeat(39)}See you, have a good day!`;
  expect(text).toHaveLength(1000);
  const parts = splitMessage(text);
  expect(parts.length).toBe(2);
  for (const p of parts) expect([...p].length).toBeLessThan(1000);
  expectFaithfulSplit(text, parts);
});

test('when a 2,600-character ASCII text is split, then every part is at most 999 bytes and they join back', () => {
  const text = asciiText();
  expect(text).toHaveLength(2600);
  const parts = splitMessage(text);
  expect(parts.length).toBeGreaterThanOrEqual(3);
  expectFaithfulSplit(text, parts);
  expect(squash(parts.join(' '))).toBe(squash(text));
});

test('when a cut is needed, then it falls at a sentence end rather than between words', () => {
  const text = asciiText();
  const parts = splitMessage(text);
  for (const part of parts.slice(0, -1)) expect(part).toMatch(/\.$/);
});

test('when text has paragraphs, then the cut falls between paragraphs first', () => {
  const para1 = `${'First paragraph sentence. '.repeat(20).trim()}`;
  const para2 = `${'Second paragraph sentence. '.repeat(20).trim()}`;
  const text = `${para1}\n\n${para2}`;
  expect(bytes(text)).toBeGreaterThan(1000);
  expect(splitMessage(text)).toEqual([para1, para2]);
});

test('when text has CJK sentences without spaces, then the cut falls after 。', () => {
  const sentence = '日本語の文章です。'; // 9 characters, 27 bytes
  const text = sentence.repeat(50); // 1350 bytes, no whitespace at all
  const parts = splitMessage(text);
  expect(parts.length).toBe(2);
  for (const part of parts) expect(part.endsWith('。')).toBe(true);
  expectFaithfulSplit(text, parts);
});

test('when decimals and domains contain dots, then they are not taken for sentence ends', () => {
  const text = `${'Price is 3.14 at example.com today '.repeat(40).trim()}`;
  const parts = splitMessage(text);
  for (const part of parts) {
    expect(part).not.toMatch(/(\.$|^14|^com)/);
  }
  expectFaithfulSplit(text, parts);
});

test('when text is full of multi-byte characters and emoji, then every part is valid UTF-8 and no emoji is cut', () => {
  const units = ['é', '日本語', '👨‍👩‍👧', '🇫🇷', '🇯🇵', 'é', '👍🏽', 'ñ', '❤️'];
  const words: string[] = [];
  for (let i = 0; i < 600; i++) words.push(units[i % units.length].repeat((i % 7) + 1));
  const text = words.join(' ');
  const parts = splitMessage(text);
  expect(parts.length).toBeGreaterThan(3);
  expectFaithfulSplit(text, parts);
  const whole = new Set(graphemes(text));
  for (const part of parts) for (const g of graphemes(part)) expect(whole.has(g)).toBe(true);
});

test('when one word of 3000 characters is sent, then it is hard-split into parts that fit', () => {
  const word = 'x'.repeat(3000);
  const parts = splitMessage(word);
  expect(parts).toEqual(['x'.repeat(999), 'x'.repeat(999), 'x'.repeat(999), 'xxx']);
});

test('when a long run of emoji without spaces is hard-split, then no grapheme cluster is cut', () => {
  const family = '👨‍👩‍👧'; // 18 bytes, 5 code points
  const text = `${family}🇫🇷e\u0301`.repeat(100); // 18 + 8 + 3 bytes per round
  const parts = splitMessage(text);
  expectFaithfulSplit(text, parts);
  const whole = new Set(graphemes(text));
  for (const part of parts) for (const g of graphemes(part)) expect(whole.has(g)).toBe(true);
  expect(parts.join('')).toBe(text);
});

test('when a single grapheme cluster is larger than the limit, then it is cut between code points only', () => {
  const family = '👨‍👩‍👧'; // 18 bytes
  const parts = splitMessage(`${family} ${family}`, 8);
  expect(parts.join('')).toBe(family + family);
  for (const part of parts) {
    expect(bytes(part)).toBeLessThanOrEqual(8);
    expect(Buffer.from(part, 'utf8').toString('utf8')).not.toContain('\uFFFD');
  }
});

test('when random texts are split at random limits, then the split property holds', () => {
  const alphabet = [
    'a',
    'bc',
    ' ',
    ' ',
    '\n',
    '\n\n',
    '. ',
    '! ',
    'é',
    '日',
    '。',
    '👨‍👩‍👧',
    '🇫🇷',
    'e\u0301',
    '…',
  ];
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let run = 0; run < 200; run++) {
    let text = '';
    const length = random(400);
    for (let i = 0; i < length; i++) text += alphabet[random(alphabet.length)];
    const maxBytes = 4 + random(120);
    const parts = splitMessage(text, maxBytes);
    if (text.trim() === '') expect(parts).toEqual([]);
    else if (bytes(text) <= maxBytes) expect(parts).toEqual([text]);
    else expectFaithfulSplit(text, parts, maxBytes);
  }
});

test('when maxBytes is below 4, then the call is refused', () => {
  expect(() => splitMessage('hello', 3)).toThrow(RangeError);
});
