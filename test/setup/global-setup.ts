import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { startEmbeddedServer } from '../../src/db/embedded-server';

/**
 * One database server for the whole run: MONGODB_URI when given, else mongodb-memory-server, else FerretDB
 * (built once and cached). Test files get their own database names from it (see test/setup/app.ts).
 */
export default async function globalSetup(): Promise<void> {
  if (process.env.MONGODB_URI) {
    process.env.TEST_MONGODB_URI = process.env.MONGODB_URI.replace(/\/[^/?]*(\?.*)?$/, '');
    process.env.TEST_DB_KIND = 'external';
    return;
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'igc-test-db-'));
  const server = await startEmbeddedServer({
    dataDir,
    persistent: false,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stderr.write(`\ntest database: ${server.kind} at ${server.uri}\n`);
  process.env.TEST_MONGODB_URI = server.uri;
  process.env.TEST_DB_KIND = server.kind;
  (globalThis as { __TEST_DB__?: unknown }).__TEST_DB__ = { server, dataDir };
}
