import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import mongoose from 'mongoose';
import { aSubaccount, anAgent, igPath } from '../factories/platform';
import { aWebhookPayload, anEcho, anIgsid, anInstagramDm, signPayload } from '../factories/instagram';
import type { MessagingEvent } from '../../src/instagram/webhook.types';
import { startGraphSimulator, type GraphSimulator } from '../../src/simulators/graph.simulator';
import { startRetellSimulator, type RetellSimulator } from '../../src/simulators/retell.simulator';
import { testDbUri, uniqueName } from '../setup/db';
import { adminOf, TEST_ENCRYPTION_KEY, TEST_JWT_SECRET } from '../setup/tokens';
import { waitFor } from '../setup/wait-for';
import { buildOnce, startChildServer } from '../setup/child-server';

/**
 * The real server as a child process, killed with SIGKILL after it acknowledged a DM and while the agent
 * was being asked. A new process on the same database must answer that DM — once.
 */
jest.setTimeout(120_000);

let graph: GraphSimulator;
let retell: RetellSimulator;
let uri: string;
let platformDb: mongoose.Connection;

beforeAll(async () => {
  buildOnce();
  graph = await startGraphSimulator();
  retell = await startRetellSimulator();
  uri = testDbUri(uniqueName('platform_crash'));
  platformDb = await mongoose.createConnection(uri).asPromise();
});
afterAll(async () => {
  await platformDb.dropDatabase();
  await platformDb.close();
  await graph.close();
  await retell.close();
});

function startServer() {
  return startChildServer({
    NODE_ENV: 'test',
    MONGODB_URI: uri,
    JWT_SECRET: TEST_JWT_SECRET,
    TOKEN_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    META_GRAPH_URL: graph.metaGraphUrl,
    INSTAGRAM_GRAPH_URL: graph.instagramGraphUrl,
    RETELL_BASE_URL: retell.url,
    RETELL_API_KEY: retell.apiKey,
    WORKER_LEASE_SECONDS: '2',
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'igc-crash-')),
  });
}

test('when the process is killed after acknowledging a DM and before replying, then after a restart the DM is answered once, with the answer the agent was already giving', async () => {
  const sub = await aSubaccount(platformDb);
  const agentId = await anAgent(platformDb, sub);
  const accountId = '17841499999000001';
  const token = `IGAA${'c'.repeat(40)}`;
  const appSecret = 'crash-test-app-secret';
  graph.accounts.set(token, { id: accountId, username: 'crash_shop', appScopedId: '123' });
  const visitor = anIgsid();
  graph.users.set(visitor, { username: 'crash_visitor' });

  let server = await startServer();
  const webhook = () => `${server.base}${igPath(sub.id, agentId, 'webhook')}`;
  const post = async (items: MessagingEvent[]) => {
    const raw = JSON.stringify(aWebhookPayload(accountId, items));
    return fetch(webhook(), {
      method: 'POST',
      body: raw,
      headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': signPayload(raw, appSecret) },
    });
  };
  graph.onSend = async (sent) => {
    await post([
      anEcho({
        userId: sent.recipientId,
        accountId,
        mid: sent.messageId,
        text: String(sent.message.text),
        timestamp: sent.timestamp,
      }),
    ]).catch(() => undefined);
  };

  const connect = await fetch(`${server.base}${igPath(sub.id, agentId, 'connect')}`, {
    method: 'POST',
    headers: { ...adminOf(sub.id), 'Content-Type': 'application/json' },
    body: JSON.stringify({ accessToken: token, appSecret }),
  });
  expect(connect.status).toBe(200);

  retell.setDelay(10_000); // the agent is slow: the process dies while waiting for it
  const ack = await post([anInstagramDm({ userId: visitor, accountId, text: 'are you still there?' })]);
  expect(ack.status).toBe(200);
  await retell.waitForCompletions(1, 20_000);
  server.child.kill('SIGKILL');
  await new Promise((r) => server.child.once('exit', r));
  retell.setDelay(0);

  server = await startServer();
  try {
    await waitFor('the reply to reach Instagram', () => graph.sent.some((s) => s.recipientId === visitor));
    await waitFor(
      'the DM to be marked done',
      async () =>
        (await platformDb.collection('instagram_inbound_events').countDocuments({ status: 'pending' })) === 0,
    );
    expect(graph.sent.filter((s) => s.recipientId === visitor).map((s) => s.message.text)).toEqual([
      'Echo: are you still there?',
    ]);
    const chats = await platformDb
      .useDb(sub.databaseName)
      .collection('chats')
      .find({ agent_id: agentId })
      .toArray();
    const turns = chats.flatMap((c) => c.messages as { role: string }[]);
    expect(turns.map((t) => t.role)).toEqual(['user', 'agent']);
    // The dead process had asked already: the new one read that answer from Retell's chat (get-chat)
    // rather than asking again, so the agent (and any tool it called) ran once.
    expect(retell.completions.map((c) => c.content)).toEqual(['are you still there?']);
    expect(retell.requests.some((r) => r.path.startsWith('/get-chat/'))).toBe(true);
  } finally {
    expect(await server.stop()).toBe(0);
  }
});
