import crypto from 'node:crypto';
import type { Connection } from 'mongoose';
import { connectPlatform } from '../../src/db/mongo';

/** The run's server (from globalSetup) with a database name of this test file's own. */
export function testDbUri(name: string): string {
  const raw = process.env.TEST_MONGODB_URI;
  if (!raw) throw new Error('TEST_MONGODB_URI is not set: run the tests through jest (globalSetup)');
  const m = /^(mongodb(?:\+srv)?:\/\/[^/?]+)(?:\/[^?]*)?(\?.*)?$/.exec(raw);
  if (!m) throw new Error(`unexpected TEST_MONGODB_URI ${raw}`);
  return `${m[1]}/${name}${m[2] ?? ''}`;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${process.env.JEST_WORKER_ID ?? '0'}_${crypto.randomBytes(4).toString('hex')}`;
}

/** A database of the caller's own on the run's server, through the app's own connection helper. */
export function openTestDatabase(prefix: string): Promise<Connection> {
  return connectPlatform(testDbUri(uniqueName(prefix)));
}

export async function dropTestDatabase(db: Connection | undefined): Promise<void> {
  await db?.dropDatabase();
  await db?.close();
}
