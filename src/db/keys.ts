import crypto from 'node:crypto';
import { Types } from 'mongoose';

/**
 * Keys derived from what a document is about, so it is found again by `_id` alone (on FerretDB 1.24 the
 * only lookup that avoids decoding a whole collection) and spread over collections by the same hash.
 */

/** An ObjectId made of the first 12 bytes of SHA-256 over `text`: the same text, the same `_id`. */
export const derivedObjectId = (text: string): Types.ObjectId =>
  new Types.ObjectId(crypto.createHash('sha256').update(text).digest().subarray(0, 12));

/** Which of `count` collections holds the document keyed `key`: by SHA-256, evenly. */
export const shardOf = (key: string, count: number): number =>
  crypto.createHash('sha256').update(key).digest().readUInt32BE(0) % count;
