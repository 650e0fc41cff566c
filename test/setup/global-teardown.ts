import fs from 'node:fs';
import type { RunningServer } from '../../src/db/embedded-server';

export default async function globalTeardown(): Promise<void> {
  const held = (globalThis as { __TEST_DB__?: { server: RunningServer; dataDir: string } }).__TEST_DB__;
  if (!held) return;
  await held.server.stop();
  fs.rmSync(held.dataDir, { recursive: true, force: true });
}
