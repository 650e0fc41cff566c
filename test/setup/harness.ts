import crypto from 'node:crypto';
import { startTestApp, type TestApp } from './app';
import { aSubaccount, anAgent, igPath, type SubaccountFixture } from '../factories/platform';
import { aWebhookPayload, anEcho, anIgsid, signPayload } from '../factories/instagram';
import type { MessagingEvent } from '../../src/instagram/webhook.types';
import { startGraphSimulator, type GraphSimulator } from '../../src/simulators/graph.simulator';
import { startRetellSimulator, type RetellSimulator } from '../../src/simulators/retell.simulator';
import { GraphClient } from '../../src/instagram/graph.client';
import type { DepsOverrides } from '../../src/deps';
import { adminOf } from './tokens';

/**
 * The whole product on loopback: the real app and worker on the run's database, Meta's Graph API and Retell
 * as simulators speaking their documented HTTP, the real axios and retell-sdk clients in between. Meta's
 * echo of every message the account sends is delivered to the webhook, signed, before the send call returns
 * (the hardest timing Meta can produce).
 */
export interface ConnectedAgent {
  sub: SubaccountFixture;
  agentId: string;
  accountId: string;
  username: string;
  token: string;
  appSecret: string;
  admin: Record<string, string>;
  path(route: string): string;
}

export interface Harness {
  t: TestApp;
  graph: GraphSimulator;
  retell: RetellSimulator;
  connectAgent(o?: { tokenKind?: 'page' | 'instagram'; appSecret?: string }): Promise<ConnectedAgent>;
  /** A visitor Meta knows (a valid recipient with a profile). */
  aVisitor(username?: string): string;
  /** POSTs a signed webhook with these messaging items to the agent's webhook. */
  deliver(
    a: ConnectedAgent,
    items: MessagingEvent[],
    o?: { secret?: string | null; raw?: string },
  ): Promise<import('supertest').Response>;
  drain(): Promise<void>;
  /** Turns of the agent's chats documents, oldest first across chats. */
  chatsOf(a: ConnectedAgent): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export async function startHarness(
  env: Record<string, string> = {},
  overrides: DepsOverrides = {},
): Promise<Harness> {
  const graph = await startGraphSimulator();
  const retell = await startRetellSimulator();
  const t = await startTestApp(
    {
      META_GRAPH_URL: graph.metaGraphUrl,
      INSTAGRAM_GRAPH_URL: graph.instagramGraphUrl,
      RETELL_BASE_URL: retell.url,
      RETELL_API_KEY: retell.apiKey,
      ...env,
    },
    {
      graph: new GraphClient({
        metaGraphUrl: graph.metaGraphUrl,
        instagramGraphUrl: graph.instagramGraphUrl,
        version: 'v25.0',
        timeoutMs: 3000,
        retry: { baseDelayMs: 1, maxDelayMs: 5 },
      }),
      worker: { leaseMs: 2000, pollMs: 50, backoffBaseMs: 5, backoffMaxMs: 50, maxAttempts: 5 },
      reconcileWindowMs: 100,
      recordRetryBaseMs: 20,
      ...overrides,
    },
  );
  const agents = new Map<string, ConnectedAgent>();

  const deliver: Harness['deliver'] = async (a, items, o = {}) => {
    const raw = o.raw ?? JSON.stringify(aWebhookPayload(a.accountId, items));
    const req = t.http().post(a.path('webhook')).set('Content-Type', 'application/json');
    const secret = o.secret === undefined ? a.appSecret : o.secret;
    if (secret) req.set('X-Hub-Signature-256', signPayload(raw, secret));
    return req.send(raw);
  };

  graph.onSend = async (sent) => {
    const a = agents.get(sent.accountId);
    if (!a) return;
    const text = typeof sent.message.text === 'string' ? sent.message.text : undefined;
    const res = await deliver(a, [
      anEcho({
        userId: sent.recipientId,
        accountId: a.accountId,
        mid: sent.messageId,
        text,
        timestamp: sent.timestamp,
      }),
    ]);
    if (res.status !== 200) throw new Error(`echo refused: ${res.status}`);
  };

  let accounts = 0;
  return {
    t,
    graph,
    retell,
    aVisitor: (username) => {
      const id = anIgsid();
      graph.users.set(id, { username: username ?? `visitor_${id.slice(-5)}`, name: 'A Visitor' });
      return id;
    },
    connectAgent: async (o = {}) => {
      const sub = await aSubaccount(t.platformDb);
      const agentId = await anAgent(t.platformDb, sub);
      const accountId = `1784${Date.now() % 1e9}${++accounts}${crypto.randomInt(1000)}`;
      const username = `shop_${accountId.slice(-6)}`;
      const instagram = o.tokenKind !== 'page';
      const token = `${instagram ? 'IGAA' : 'EAAB'}${crypto.randomBytes(24).toString('hex')}`;
      graph.accounts.set(token, {
        id: accountId,
        username,
        name: 'The Shop',
        ...(instagram ? { appScopedId: `99${accountId}` } : { pageId: `10${accountId}` }),
      });
      const appSecret = o.appSecret ?? crypto.randomBytes(16).toString('hex');
      const admin = adminOf(sub.id);
      const path = (route: string) => igPath(sub.id, agentId, route);
      const res = await t
        .http()
        .post(path('connect'))
        .set(admin)
        .send({ accessToken: token, appSecret, ...(instagram ? {} : { instagramAccountId: accountId }) });
      if (res.status !== 200) throw new Error(`connect failed: ${res.status} ${JSON.stringify(res.body)}`);
      const a: ConnectedAgent = { sub, agentId, accountId, username, token, appSecret, admin, path };
      agents.set(accountId, a);
      return a;
    },
    deliver,
    drain: () => t.deps.worker.drain(),
    chatsOf: async (a) =>
      t.platformDb
        .useDb(a.sub.databaseName)
        .collection('chats')
        .find({ agent_id: a.agentId })
        .sort({ start_timestamp: 1 })
        .toArray() as Promise<Record<string, unknown>[]>,
    close: async () => {
      await t.close();
      await graph.close();
      await retell.close();
    },
  };
}
