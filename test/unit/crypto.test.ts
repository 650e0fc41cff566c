import crypto from 'node:crypto';
import { SecretBox, SecretBoxError, keyIdOf, safeEqual } from '../../src/lib/crypto';

const OLD_KEY = Buffer.alloc(32, 7);
const NEW_KEY = Buffer.alloc(32, 9);
const TOKEN = 'EAAGm0PX4ZCpsBAKZCa1token-💬-é';

/** Decode one base64url part of a sealed value, flip a bit, re-encode it. */
function flipBit(sealed: string, index: 2 | 3 | 4): string {
  const parts = sealed.split(':');
  const bytes = Buffer.from(parts[index], 'base64url');
  bytes[0] ^= 0x01;
  parts[index] = bytes.toString('base64url');
  return parts.join(':');
}

function refusal(fn: () => unknown): SecretBoxError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SecretBoxError);
    return err as SecretBoxError;
  }
  throw new Error('the value was accepted');
}

describe('SecretBox', () => {
  test('when a value is sealed, then it opens to the same text', () => {
    const box = new SecretBox(NEW_KEY);
    expect(box.open(box.seal(TOKEN))).toBe(TOKEN);
    expect(box.open(box.seal(''))).toBe('');
  });

  test('when a value is sealed, then the sealed form is v1:<keyId>:<iv>:<tag>:<ciphertext>', () => {
    const box = new SecretBox(NEW_KEY);
    const [version, keyId, iv, tag, ciphertext, ...rest] = box.seal(TOKEN).split(':');
    expect(version).toBe('v1');
    expect(keyId).toBe(crypto.createHash('sha256').update(NEW_KEY).digest('hex').slice(0, 8));
    expect(keyId).toBe(box.keyId);
    expect(Buffer.from(iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(tag, 'base64url')).toHaveLength(16);
    expect(ciphertext).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(rest).toEqual([]);
  });

  test('when the same value is sealed twice, then the two sealed strings differ', () => {
    const box = new SecretBox(NEW_KEY);
    const a = box.seal(TOKEN);
    const b = box.seal(TOKEN);
    expect(a).not.toBe(b);
    expect(a.split(':')[2]).not.toBe(b.split(':')[2]);
  });

  test('when a value is sealed, then the sealed string contains neither the plaintext nor the key', () => {
    const box = new SecretBox(NEW_KEY);
    const sealed = box.seal(TOKEN);
    expect(sealed).not.toContain(TOKEN);
    expect(sealed).not.toContain('EAAGm0PX4ZCps');
    for (const encoding of ['hex', 'base64', 'base64url'] as const) {
      expect(sealed).not.toContain(NEW_KEY.toString(encoding));
    }
  });

  test.each([
    ['iv', 2],
    ['tag', 3],
    ['ciphertext', 4],
  ] as const)(
    'when the %s is tampered with, then opening is refused without revealing anything',
    (_, index) => {
      const box = new SecretBox(NEW_KEY);
      const sealed = box.seal(TOKEN);
      const err = refusal(() => box.open(flipBit(sealed, index)));
      expect(err.message).toMatch(/failed authentication/);
      expect(err.message).not.toContain(TOKEN);
      expect(err.message).not.toContain(NEW_KEY.toString('hex'));
      expect(err.message).not.toContain(sealed);
    },
  );

  test('when the tag is truncated or a part is malformed, then opening is refused', () => {
    const box = new SecretBox(NEW_KEY);
    const parts = box.seal(TOKEN).split(':');
    const shortTag = [...parts.slice(0, 3), parts[3].slice(0, 8), parts[4]].join(':');
    expect(refusal(() => box.open(shortTag)).message).toMatch(/not a sealed value/);
    expect(refusal(() => box.open(TOKEN)).message).toMatch(/not a sealed value/);
    expect(refusal(() => box.open(`v2:${parts.slice(1).join(':')}`)).message).toMatch(/not a sealed value/);
    expect(refusal(() => box.open(`${parts.join(':')}:extra`)).message).toMatch(/not a sealed value/);
  });

  test('when the key id in the header is changed, then opening is refused as an unknown key', () => {
    const box = new SecretBox(NEW_KEY);
    const parts = box.seal(TOKEN).split(':');
    parts[1] = '00000000';
    expect(refusal(() => box.open(parts.join(':'))).message).toMatch(/unknown key id 00000000/);
  });

  test('when a value was sealed under another key, then it is refused as an unknown key id', () => {
    const sealed = new SecretBox(OLD_KEY).seal(TOKEN);
    const err = refusal(() => new SecretBox(NEW_KEY).open(sealed));
    expect(err.message).toContain(keyIdOf(OLD_KEY));
    expect(err.message).not.toContain(OLD_KEY.toString('hex'));
  });

  test('when keys rotate with the old key as previous, then old values open and need resealing', () => {
    const sealedBefore = new SecretBox(OLD_KEY).seal(TOKEN);
    const rotated = new SecretBox(NEW_KEY, OLD_KEY);

    expect(rotated.open(sealedBefore)).toBe(TOKEN);
    expect(rotated.needsReseal(sealedBefore)).toBe(true);

    const resealed = rotated.seal(rotated.open(sealedBefore));
    expect(rotated.needsReseal(resealed)).toBe(false);
    expect(resealed.split(':')[1]).toBe(keyIdOf(NEW_KEY));
    expect(new SecretBox(NEW_KEY).open(resealed)).toBe(TOKEN);
  });

  test('when a value is not sealed at all, then it needs resealing', () => {
    expect(new SecretBox(NEW_KEY).needsReseal('plain-old-token')).toBe(true);
  });

  test('when a key is not 32 bytes, then the box refuses it', () => {
    expect(refusal(() => new SecretBox(Buffer.alloc(16))).message).toMatch(
      /current encryption key must be 32/,
    );
    expect(refusal(() => new SecretBox(NEW_KEY, Buffer.alloc(31))).message).toMatch(/previous/);
  });
});

describe('keyedHash', () => {
  test('when a value is hashed, then it is a stable HMAC-SHA256 under the HKDF "verify-token" subkey', () => {
    const box = new SecretBox(NEW_KEY);
    const subkey = Buffer.from(crypto.hkdfSync('sha256', NEW_KEY, Buffer.alloc(0), 'verify-token', 32));
    const expected = crypto.createHmac('sha256', subkey).update('my-verify-token').digest('hex');
    expect(box.keyedHash('my-verify-token')).toBe(expected);
    expect(box.keyedHash('my-verify-token')).toBe(new SecretBox(NEW_KEY).keyedHash('my-verify-token'));
    expect(box.keyedHash('my-verify-token')).not.toBe(box.keyedHash('my-verify-tokeN'));
  });

  test('when the key is different, then the hash is different and never the plain HMAC under the key', () => {
    const hash = new SecretBox(NEW_KEY).keyedHash('token');
    expect(hash).not.toBe(new SecretBox(OLD_KEY).keyedHash('token'));
    expect(hash).not.toBe(crypto.createHmac('sha256', NEW_KEY).update('token').digest('hex'));
  });

  test('when keys rotate, then a hash made under the previous key still matches', () => {
    const oldHash = new SecretBox(OLD_KEY).keyedHash('token');
    const rotated = new SecretBox(NEW_KEY, OLD_KEY);
    expect(rotated.matchesKeyedHash('token', oldHash)).toBe(true);
    expect(rotated.matchesKeyedHash('token', rotated.keyedHash('token'))).toBe(true);
    expect(rotated.matchesKeyedHash('other', oldHash)).toBe(false);
    expect(new SecretBox(NEW_KEY).matchesKeyedHash('token', oldHash)).toBe(false);
  });
});

describe('safeEqual', () => {
  test.each([
    { label: 'equal strings', a: 'abc', b: 'abc', expected: true },
    { label: 'two empty strings', a: '', b: '', expected: true },
    { label: 'equal non-ASCII strings', a: 'é💬', b: 'é💬', expected: true },
    { label: 'one differing character', a: 'abc', b: 'abd', expected: false },
    { label: 'a case difference', a: 'abc', b: 'ABC', expected: false },
    { label: 'a longer second string', a: 'abc', b: 'abcd', expected: false },
    { label: 'an empty first string', a: '', b: 'a', expected: false },
    { label: 'a long string and its prefix', a: 'a'.repeat(1000), b: 'a'.repeat(999), expected: false },
  ])('when comparing $label, then the answer is $expected', ({ a, b, expected }) => {
    expect(safeEqual(a, b)).toBe(expected);
  });
});
