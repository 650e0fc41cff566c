import crypto from 'node:crypto';

/**
 * Secrets at rest (Instagram tokens, app secrets): AES-256-GCM, a fresh random 12-byte IV per value, and a
 * key id in the sealed string so keys can rotate. Sealed form, self-describing and ASCII-only:
 *
 *   v1:<keyId>:<iv b64url>:<tag b64url>:<ciphertext b64url>
 *
 * keyId is the first 8 hex chars of SHA-256(key): it names a key without revealing it. `v1:<keyId>` is
 * bound to the ciphertext as additional authenticated data, so a header cannot be swapped onto another value.
 * Errors never carry the plaintext, the key or the sealed value.
 */
const VERSION = 'v1';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const B64URL = /^[A-Za-z0-9_-]*$/;

export class SecretBoxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretBoxError';
  }
}

export function keyIdOf(key: Buffer): string {
  return crypto.createHash('sha256').update(key).digest('hex').slice(0, 8);
}

export class SecretBox {
  /** Id of the key that seals; values under any other id need resealing. */
  readonly keyId: string;
  private readonly keys = new Map<string, Buffer>();
  private readonly hashKeys: Buffer[];

  constructor(current: Buffer, previous?: Buffer) {
    this.keyId = keyIdOf(checkKey(current, 'current'));
    this.keys.set(this.keyId, Buffer.from(current));
    this.hashKeys = [hashSubkey(current)];
    if (previous) {
      const previousId = keyIdOf(checkKey(previous, 'previous'));
      if (!this.keys.has(previousId)) {
        this.keys.set(previousId, Buffer.from(previous));
        this.hashKeys.push(hashSubkey(previous));
      }
    }
  }

  seal(plaintext: string): string {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.keys.get(this.keyId)!, iv, {
      authTagLength: TAG_BYTES,
    });
    cipher.setAAD(Buffer.from(`${VERSION}:${this.keyId}`));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [VERSION, this.keyId, b64(iv), b64(tag), b64(ciphertext)].join(':');
  }

  open(sealed: string): string {
    const { keyId, iv, tag, ciphertext } = parse(sealed);
    const key = this.keys.get(keyId);
    if (!key)
      throw new SecretBoxError(`sealed value uses unknown key id ${keyId} (not the current or previous key)`);
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(`${VERSION}:${keyId}`));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretBoxError(
        `sealed value failed authentication under key id ${keyId} (tampered or wrong key)`,
      );
    }
  }

  /** True when `sealed` is not under the current key (sealed before a rotation, or not a v1 value). */
  needsReseal(sealed: string): boolean {
    try {
      return parse(sealed).keyId !== this.keyId;
    } catch {
      return true;
    }
  }

  /**
   * HMAC-SHA256 (hex) under a subkey derived from the current key (HKDF, info 'verify-token'), for values we
   * only ever compare, like webhook verify tokens. The encryption key itself never signs anything.
   */
  keyedHash(value: string): string {
    return hmacHex(this.hashKeys[0], value);
  }

  /** Whether `value` hashes to `hash` under the current or the previous key, compared in constant time. */
  matchesKeyedHash(value: string, hash: string): boolean {
    let match = false;
    for (const key of this.hashKeys) match = safeEqual(hmacHex(key, value), hash) || match;
    return match;
  }
}

/**
 * Constant-time string comparison. Both sides are hashed first, so timingSafeEqual always sees two equal-length
 * digests and a length difference is not revealed by an early return.
 */
export function safeEqual(a: string, b: string): boolean {
  const da = crypto.createHash('sha256').update(a, 'utf8').digest();
  const db = crypto.createHash('sha256').update(b, 'utf8').digest();
  return crypto.timingSafeEqual(da, db);
}

function checkKey(key: Buffer, name: string): Buffer {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
    throw new SecretBoxError(`the ${name} encryption key must be ${KEY_BYTES} bytes`);
  }
  return key;
}

function hashSubkey(key: Buffer): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', key, Buffer.alloc(0), 'verify-token', 32));
}

function hmacHex(key: Buffer, value: string): string {
  return crypto.createHmac('sha256', key).update(value, 'utf8').digest('hex');
}

function b64(buf: Buffer): string {
  return buf.toString('base64url');
}

/** Strict base64url: canonical only, so a changed padding bit cannot decode to the same bytes unnoticed. */
function unb64(part: string, bytes?: number): Buffer | undefined {
  if (!B64URL.test(part)) return undefined;
  const buf = Buffer.from(part, 'base64url');
  if (buf.toString('base64url') !== part) return undefined;
  if (bytes !== undefined && buf.length !== bytes) return undefined;
  return buf;
}

function parse(sealed: string): { keyId: string; iv: Buffer; tag: Buffer; ciphertext: Buffer } {
  const parts = typeof sealed === 'string' ? sealed.split(':') : [];
  const [version, keyId, ivPart, tagPart, ctPart] = parts;
  const iv = ivPart === undefined ? undefined : unb64(ivPart, IV_BYTES);
  const tag = tagPart === undefined ? undefined : unb64(tagPart, TAG_BYTES);
  const ciphertext = ctPart === undefined ? undefined : unb64(ctPart);
  if (
    parts.length !== 5 ||
    version !== VERSION ||
    !/^[0-9a-f]{8}$/.test(keyId) ||
    !iv ||
    !tag ||
    !ciphertext
  ) {
    throw new SecretBoxError(`not a sealed value (expected ${VERSION}:<keyId>:<iv>:<tag>:<ciphertext>)`);
  }
  return { keyId, iv, tag, ciphertext };
}
