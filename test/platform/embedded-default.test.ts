import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mongoose from 'mongoose';
import jwt from 'jsonwebtoken';
import { buildOnce, startChildServer } from '../setup/child-server';

/**
 * The built server with no MONGODB_URI: it starts its own database under DATA_DIR, and what was written
 * there is still there after a restart.
 */
jest.setTimeout(180_000);

const startServer = (dataDir: string) => {
  const env: NodeJS.ProcessEnv = { DATA_DIR: dataDir, SKIP_MONGOMS: 'true' };
  if (process.env.XDG_CACHE_HOME) env.XDG_CACHE_HOME = process.env.XDG_CACHE_HOME;
  return startChildServer(env, { cwd: dataDir, waitForEmbeddedDb: true });
};

beforeAll(buildOnce);

test('when started with no MONGODB_URI, then it serves on an embedded database that survives a restart', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'igc-embedded-'));
  const first = await startServer(dataDir);
  expect((await fetch(`http://127.0.0.1:${first.port}/healthz`)).status).toBe(200);
  expect((await fetch(`http://127.0.0.1:${first.port}/readyz`)).status).toBe(200);
  expect(first.output()).toMatch(/Development super_admin token/);
  // Development, no META_APP_SECRET: said at start-up that unsigned deliveries get in.
  expect(first.output()).toMatch(/unsigned webhook deliveries are accepted/);
  // On FerretDB (SQLite) two connections, so that writes queue in the driver rather than in SQLite's
  // busy handler; on a mongod, the usual 50.
  const kind = /"kind":"([^"]+)"/.exec(first.output())?.[1];
  const pool = Number(/"maxPoolSize":(\d+)/.exec(first.output())?.[1]);
  expect(pool).toBe(kind === 'ferretdb' ? 2 : 50);

  const subId = new mongoose.Types.ObjectId();
  const conn = await mongoose.createConnection(first.dbUri!).asPromise();
  await conn.collection('subaccounts').insertOne({ _id: subId, name: 'Persisted', isActive: true });
  await conn.close();
  expect(await first.stop()).toBe(0);

  const second = await startServer(dataDir);
  try {
    const again = await mongoose.createConnection(second.dbUri!).asPromise();
    expect(await again.collection('subaccounts').findOne({ _id: subId })).toMatchObject({
      name: 'Persisted',
    });
    await again.close();
    // …and the product sees it: the subaccount resolves (the unknown agent is what is missing now).
    const secrets = JSON.parse(fs.readFileSync(path.join(dataDir, 'dev-secrets.json'), 'utf8')) as {
      jwtSecret: string;
    };
    const token = jwt.sign({ userId: 'dev', role: 'super_admin' }, secrets.jwtSecret, { algorithm: 'HS256' });
    const res = await fetch(
      `http://127.0.0.1:${second.port}/api/database/${subId.toHexString()}/chat-agents/nope/instagram/status`,
      {
        headers: { Authorization: `Bearer ${token}` },
      },
    );
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('AGENT_NOT_FOUND');
  } finally {
    expect(await second.stop()).toBe(0);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
