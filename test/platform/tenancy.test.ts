import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';
import mongoose from 'mongoose';
import { startTestApp, type TestApp } from '../setup/app';
import { aSubaccount, anAgent, igPath } from '../factories/platform';
import { superAdmin } from '../setup/tokens';
import { startEmbeddedServer, type RunningServer } from '../../src/db/embedded-server';
import { resolveFerretdbBinary, startFerretdb } from '../../src/db/ferretdb';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const status = (sub: string, agent: string) =>
  t
    .http()
    .get(igPath(sub, agent, 'status'))
    .set(superAdmin());

test('when the subaccount is unknown, then 404 SUBACCOUNT_NOT_FOUND', async () => {
  const res = await status('65f000000000000000000abc', 'agent_x');
  expect(res.status).toBe(404);
  expect(res.body.error.code).toBe('SUBACCOUNT_NOT_FOUND');
});

test('when the subaccount id is not an ObjectId, then 404 SUBACCOUNT_NOT_FOUND', async () => {
  const res = await status('not-an-id', 'agent_x');
  expect(res.status).toBe(404);
  expect(res.body.error.code).toBe('SUBACCOUNT_NOT_FOUND');
});

test('when the subaccount is inactive, then 404 SUBACCOUNT_NOT_FOUND', async () => {
  const sub = await aSubaccount(t.platformDb, { isActive: false });
  const agent = await anAgent(t.platformDb, sub);
  const res = await status(sub.id, agent);
  expect(res.status).toBe(404);
  expect(res.body.error.code).toBe('SUBACCOUNT_NOT_FOUND');
});

test('when the agent is unknown or inactive, then 404 AGENT_NOT_FOUND', async () => {
  const sub = await aSubaccount(t.platformDb);
  const inactive = await anAgent(t.platformDb, sub, { isActive: false });
  for (const agent of ['agent_unknown', inactive]) {
    const res = await status(sub.id, agent);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('AGENT_NOT_FOUND');
  }
});

test('when an agent exists in subaccount A, then it is not visible through subaccount B', async () => {
  const a = await aSubaccount(t.platformDb);
  const b = await aSubaccount(t.platformDb);
  const agentOfA = await anAgent(t.platformDb, a);
  expect((await status(a.id, agentOfA)).status).not.toBe(404);
  const throughB = await status(b.id, agentOfA);
  expect(throughB.status).toBe(404);
  expect(throughB.body.error.code).toBe('AGENT_NOT_FOUND');
});

test('when a subaccount names a databaseName, then its data is read from that database', async () => {
  const sub = await aSubaccount(t.platformDb, { databaseName: `custom_${Date.now()}` });
  const agent = await anAgent(t.platformDb, sub);
  expect((await status(sub.id, agent)).status).not.toBe(404);
});

describe('a subaccount with its own mongodbUri', () => {
  let other: RunningServer;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igc-other-'));
    // A second server of the kind this run uses (FerretDB starts in milliseconds once built).
    other =
      process.env.TEST_DB_KIND === 'ferretdb'
        ? await startFerretdb(await resolveFerretdbBinary(), dir)
        : await startEmbeddedServer({ dataDir: dir, persistent: false });
  });
  afterAll(async () => {
    await other.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when its agent lives only on that server, then it is served from there', async () => {
    const sub = await aSubaccount(t.platformDb, { mongodbUri: other.uri, databaseName: 'tenant_own' });
    const client = await mongoose.mongo.MongoClient.connect(other.uri);
    try {
      await client
        .db('tenant_own')
        .collection('chatagents')
        .insertOne({ agentId: 'agent_remote', name: 'Remote', isActive: true });
    } finally {
      await client.close();
    }
    // The same agent id is absent from the platform's own server.
    expect(await t.platformDb.useDb('tenant_own').collection('chatagents').countDocuments()).toBe(0);
    const res = await status(sub.id, 'agent_remote');
    expect([404, 401, 403]).not.toContain(res.status);
  });
});
