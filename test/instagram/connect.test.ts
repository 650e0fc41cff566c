import crypto from 'node:crypto';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import { startHarness, type Harness } from '../setup/harness';
import { aSubaccount, anAgent, igPath } from '../factories/platform';
import { adminOf, userOf } from '../setup/tokens';
import { waitFor } from '../setup/wait-for';
import { SecretBox } from '../../src/lib/crypto';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

/** A fresh subaccount + agent and a valid token Meta knows. */
async function setup(kind: 'instagram' | 'page' = 'instagram') {
  const sub = await aSubaccount(h.t.platformDb);
  const agentId = await anAgent(h.t.platformDb, sub);
  const accountId = `1784${crypto.randomInt(1e9)}`;
  const username = `brand_${crypto.randomBytes(3).toString('hex')}`;
  const token = `${kind === 'instagram' ? 'IGAA' : 'EAAB'}${crypto.randomBytes(24).toString('hex')}`;
  h.graph.accounts.set(token, {
    id: accountId,
    username,
    name: 'Brand',
    ...(kind === 'instagram' ? { appScopedId: `55${accountId}` } : { pageId: `10${accountId}` }),
  });
  return {
    sub,
    agentId,
    accountId,
    username,
    token,
    path: (r: string) => igPath(sub.id, agentId, r),
    admin: adminOf(sub.id),
  };
}

/** POST /connect as the fixture's admin, for its agent or another agent of its subaccount. */
const connectAs = (
  s: { sub: { id: string }; agentId: string; admin: Record<string, string> },
  body: object,
  agentId = s.agentId,
) =>
  h.t
    .http()
    .post(igPath(s.sub.id, agentId, 'connect'))
    .set(s.admin)
    .send(body);

/** The fixture's subaccount's `instagram_connections`, read and written directly. */
const connectionsOf = (s: { sub: { databaseName: string } }) =>
  h.t.platformDb.useDb(s.sub.databaseName).collection('instagram_connections');

function decodeQr(dataUrl: string): string | undefined {
  const png = PNG.sync.read(Buffer.from(dataUrl.replace(/^data:image\/png;base64,/, ''), 'base64'));
  return jsQR(new Uint8ClampedArray(png.data), png.width, png.height)?.data;
}

describe('POST /connect', () => {
  test('when an Instagram-Login token is valid, then it answers with a QR code that decodes to the DM link', async () => {
    const s = await setup('instagram');
    const res = await connectAs(s, { accessToken: s.token });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
    const d = res.body.data;
    expect(d).toMatchObject({
      username: s.username,
      instagramAccountId: s.accountId,
      dmUrl: `https://ig.me/m/${s.username}`,
      instagramUrl: `https://www.instagram.com/${s.username}/`,
      webhookUrl: `https://connector.example.test${s.path('webhook')}`,
      webhookSubscription: 'subscribed',
    });
    expect(d.webhookVerificationToken).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(d.qrCodeDataUrl).toMatch(/^data:image\/png;base64,/);
    expect(decodeQr(d.qrCodeDataUrl)).toBe(`https://ig.me/m/${s.username}`);
  });

  test('when the token is an Instagram-Login token, then graph.instagram.com /me is asked and user_id (not id) is stored', async () => {
    const s = await setup('instagram');
    await connectAs(s, { accessToken: s.token }).expect(200);
    const me = h.graph.requests.filter(
      (r) =>
        r.host === 'graph.instagram.com' &&
        r.path === '/v25.0/me' &&
        r.headers.authorization === `Bearer ${s.token}`,
    );
    expect(me).toHaveLength(1);
    expect(String(me[0]!.query.fields)).toContain('user_id');
    const stored = await connectionsOf(s).findOne({ agentId: s.agentId });
    expect(stored).toMatchObject({ instagramAccountId: s.accountId, tokenKind: 'instagram' });
    expect(stored!.instagramAccountId).not.toBe(`55${s.accountId}`);
    // Subscribed through the Instagram host's /me/subscribed_apps.
    expect(
      h.graph.requests.some(
        (r) =>
          r.host === 'graph.instagram.com' && r.method === 'POST' && r.path === '/v25.0/me/subscribed_apps',
      ),
    ).toBe(true);
  });

  test('when a Page token is given with the account id, then graph.facebook.com /{id} is asked and the page is subscribed', async () => {
    const s = await setup('page');
    const pageId = `10${s.accountId}`;
    const res = await connectAs(s, { accessToken: s.token, instagramAccountId: s.accountId, pageId });
    expect(res.status).toBe(200);
    expect(
      h.graph.requests.some((r) => r.host === 'graph.facebook.com' && r.path === `/v25.0/${s.accountId}`),
    ).toBe(true);
    expect(
      h.graph.requests.some(
        (r) =>
          r.host === 'graph.facebook.com' &&
          r.method === 'POST' &&
          r.path === `/v25.0/${pageId}/subscribed_apps`,
      ),
    ).toBe(true);
  });

  test("when Meta refuses the subscription, then the connection is kept and webhookSubscription is failed with Meta's message", async () => {
    const s = await setup('instagram');
    h.graph.failNext({ method: 'POST', path: '/me/subscribed_apps' }, [
      {
        status: 403,
        body: {
          error: {
            message: '(#200) Requires instagram_business_manage_messages permission',
            type: 'OAuthException',
            code: 200,
            fbtrace_id: 'Abc',
          },
        },
      },
    ]);
    const res = await connectAs(s, { accessToken: s.token });
    expect(res.status).toBe(200);
    expect(res.body.data.webhookSubscription).toBe('failed');
    expect(res.body.data.webhookSubscriptionError).toContain('Requires instagram_business_manage_messages');
  });

  test.each([
    [{}, 'body.accessToken'],
    [{ accessToken: 'EAAB' + 'x'.repeat(40) }, 'body.instagramAccountId'],
    [
      { accessToken: 'IGAA' + 'x'.repeat(40), webhookVerificationToken: 'short' },
      'body.webhookVerificationToken',
    ],
    [{ accessToken: 'IGAA' + 'x'.repeat(40), surprise: true }, 'body.surprise'],
    [{ accessToken: { $gt: '' } }, 'body.accessToken'],
  ])('when the body is %p, then 400 VALIDATION_ERROR names %s and Meta is not asked', async (body, field) => {
    const s = await setup();
    const before = h.graph.requests.length;
    const res = await h.t.http().post(s.path('connect')).set(s.admin).send(body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
    expect(h.graph.requests.length).toBe(before);
  });

  test("when Meta refuses the token (190), then 422 INSTAGRAM_AUTH_FAILED with Meta's message, not retried, nothing stored", async () => {
    const s = await setup();
    const unknown = `IGAA${crypto.randomBytes(20).toString('hex')}`;
    const before = h.graph.requests.length;
    const res = await connectAs(s, { accessToken: unknown });
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: 'INSTAGRAM_AUTH_FAILED', details: { code: 190 } });
    expect(res.body.error.message).toMatch(/token/i);
    expect(h.graph.requests.length - before).toBe(1);
    expect(await connectionsOf(s).countDocuments()).toBe(0);
  });

  test('when Meta fails transiently, then the check is retried and succeeds', async () => {
    const s = await setup();
    h.graph.failNext({ method: 'GET', path: '/me' }, [
      {
        status: 500,
        body: {
          error: {
            message: 'An unexpected error has occurred. Please retry your request later.',
            type: 'OAuthException',
            code: 2,
            is_transient: true,
            fbtrace_id: 'x1',
          },
        },
      },
      { status: 503 },
    ]);
    const res = await connectAs(s, { accessToken: s.token });
    expect(res.status).toBe(200);
  });

  test('when Meta cannot be reached, then 502 INSTAGRAM_UNAVAILABLE and nothing stored', async () => {
    const s = await setup();
    h.graph.failNext(
      { method: 'GET', path: '/me' },
      Array.from({ length: 4 }, () => ({ status: 503 })),
    ); // every attempt the client makes
    const res = await connectAs(s, { accessToken: s.token });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe('INSTAGRAM_UNAVAILABLE');
    expect(await connectionsOf(s).countDocuments()).toBe(0);
  });

  test("when the caller is not signed in, not an admin, or another subaccount's, then 401 / 403", async () => {
    const s = await setup();
    expect((await h.t.http().post(s.path('connect')).send({ accessToken: s.token })).status).toBe(401);
    expect(
      (await h.t.http().post(s.path('connect')).set(userOf(s.sub.id)).send({ accessToken: s.token })).status,
    ).toBe(403);
    const other = await aSubaccount(h.t.platformDb);
    expect(
      (await h.t.http().post(s.path('connect')).set(adminOf(other.id)).send({ accessToken: s.token })).status,
    ).toBe(403);
  });

  test('when the subaccount or agent is unknown, then 404', async () => {
    const s = await setup();
    const res = await h.t
      .http()
      .post(igPath(s.sub.id, 'agent_nope', 'connect'))
      .set(s.admin)
      .send({ accessToken: s.token });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('AGENT_NOT_FOUND');
  });

  test('when the account is connected to another agent, then 409 INSTAGRAM_ACCOUNT_IN_USE', async () => {
    const s = await setup();
    await connectAs(s, { accessToken: s.token }).expect(200);
    const otherAgent = await anAgent(h.t.platformDb, s.sub);
    const res = await connectAs(s, { accessToken: s.token }, otherAgent);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('INSTAGRAM_ACCOUNT_IN_USE');
  });

  test('when two agents connect one account at the same time, then exactly one wins', async () => {
    const s = await setup();
    const agents = [
      s.agentId,
      ...(await Promise.all(Array.from({ length: 3 }, () => anAgent(h.t.platformDb, s.sub)))),
    ];
    const results = await Promise.all(agents.map((agent) => connectAs(s, { accessToken: s.token }, agent)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 409, 409, 409]);
    const connected = await connectionsOf(s).countDocuments({ instagramAccountId: s.accountId });
    expect(connected).toBe(1);
  });

  test('when the same agent connects again, then the old connection is replaced', async () => {
    const s = await setup();
    await connectAs(s, { accessToken: s.token }).expect(200);
    const second = await setup();
    h.graph.accounts.set(second.token, { ...h.graph.accounts.get(second.token)! });
    const res = await connectAs(s, { accessToken: second.token });
    expect(res.status).toBe(200);
    const docs = await connectionsOf(s).find({ agentId: s.agentId }).toArray();
    expect(docs).toHaveLength(1);
    expect(docs[0]!.instagramAccountId).toBe(second.accountId);
    // The first account is free again for another agent.
    const other = await anAgent(h.t.platformDb, s.sub);
    expect((await connectAs(s, { accessToken: s.token }, other)).status).toBe(200);
  });
});

describe('the account registry', () => {
  const registry = () => h.t.platformDb.collection('instagram_account_registry');

  test('when two connects of one agent overlap (one to another account, one again to its own), then the agent keeps its account', async () => {
    const s = await setup(); // account A
    await connectAs(s, { accessToken: s.token }).expect(200);
    const b = await setup(); // account B, connected below by s's agent

    // The connect to B stops just before it frees A, the account it replaced...
    let enter!: () => void;
    let open!: () => void;
    const entered = new Promise<void>((r) => (enter = r));
    const gate = new Promise<void>((r) => (open = r));
    const reg = h.t.deps.registry;
    const release = reg.release.bind(reg);
    const spy = jest.spyOn(reg, 'release').mockImplementationOnce(async (...args) => {
      enter();
      await gate;
      return release(...args);
    });
    try {
      const toB = connectAs(s, { accessToken: b.token }).then((r) => r);
      await entered;
      // ...while the admin connects A again, which completes.
      await connectAs(s, { accessToken: s.token }).expect(200);
      open();
      expect((await toB).status).toBe(200);
    } finally {
      spy.mockRestore();
    }

    // The later connect stands: A, still held by this agent, so no other agent can take it.
    const status = await h.t.http().get(s.path('status')).set(s.admin);
    expect(status.body.data).toMatchObject({ isConnected: true, instagramAccountId: s.accountId });
    expect(await registry().findOne({ _id: s.accountId as never })).toMatchObject({ agentId: s.agentId });
    const other = await anAgent(h.t.platformDb, s.sub);
    const takeA = await connectAs(s, { accessToken: s.token }, other);
    expect(takeA.status).toBe(409);
    // B, which the agent no longer holds, is free.
    const takeB = await connectAs(s, { accessToken: b.token }, other);
    expect(takeB.status).toBe(200);
  });

  test('when a connection and its claim were stored before claim ids existed, then disconnecting frees the account', async () => {
    const s = await setup();
    await connectAs(s, { accessToken: s.token }).expect(200);
    await registry().updateOne({ _id: s.accountId as never }, { $unset: { claimId: 1 } });
    await connectionsOf(s).updateOne({ agentId: s.agentId }, { $unset: { registryClaimId: 1 } });
    await h.t.http().post(s.path('disconnect')).set(s.admin).send({}).expect(200);
    expect(await registry().countDocuments({ _id: s.accountId as never })).toBe(0);
  });

  test('when a claim was left by an agent with no connection (a crash between claim and save), then another agent takes it over after the grace period, not before', async () => {
    const s = await setup();
    const crashed = await anAgent(h.t.platformDb, s.sub);
    const leftover = (claimedAt: Date) =>
      registry().replaceOne(
        { _id: s.accountId as never },
        { subaccountId: s.sub.id, agentId: crashed, claimedAt, claimId: 'left-behind' },
        { upsert: true },
      );
    await leftover(new Date(Date.now() - 10_000)); // its connect may still be saving
    const early = await connectAs(s, { accessToken: s.token });
    expect(early.status).toBe(409);

    await leftover(new Date(Date.now() - 10 * 60_000));
    const late = await connectAs(s, { accessToken: s.token });
    expect(late.status).toBe(200);
    expect(await registry().findOne({ _id: s.accountId as never })).toMatchObject({ agentId: s.agentId });
  });
});

describe('secrets', () => {
  test('when connected, then the token, app secret and verify token appear in no response, log line or stored document', async () => {
    const s = await setup();
    const appSecret = `appsecret-${crypto.randomBytes(12).toString('hex')}`;
    const verifyToken = `verify-${crypto.randomBytes(12).toString('hex')}`;
    const connect = await connectAs(s, {
      accessToken: s.token,
      appSecret,
      webhookVerificationToken: verifyToken,
    });
    const status = await h.t.http().get(s.path('status')).set(s.admin);
    const responses = JSON.stringify([connect.body, status.body]);
    expect(responses).not.toContain(s.token);
    expect(responses).not.toContain(appSecret);
    expect(JSON.stringify(status.body)).not.toContain(verifyToken);

    const logs = h.t.logs.join('\n');
    for (const secret of [s.token, appSecret, verifyToken]) expect(logs).not.toContain(secret);

    // Every document of every collection of the platform and the subaccount database.
    for (const db of [h.t.platformDb.db!, h.t.platformDb.useDb(s.sub.databaseName).db!]) {
      for (const { name } of await db.listCollections().toArray()) {
        const dump = JSON.stringify(await db.collection(name).find().toArray());
        for (const secret of [s.token, appSecret, verifyToken]) expect(dump).not.toContain(secret);
      }
    }
    const stored = await connectionsOf(s).findOne({ agentId: s.agentId });
    expect(stored!.accessTokenSealed).toMatch(/^v1:[0-9a-f]{8}:/);
  });
});

describe('GET /status and POST /disconnect', () => {
  test('when not connected, then status is { isConnected: false }', async () => {
    const s = await setup();
    const res = await h.t.http().get(s.path('status')).set(userOf(s.sub.id));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true, data: { isConnected: false } });
  });

  test('when status is asked with a query field it does not take, then 400 VALIDATION_ERROR naming it', async () => {
    const s = await setup();
    const res = await h.t
      .http()
      .get(`${s.path('status')}?verbose=1`)
      .set(userOf(s.sub.id));
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      code: 'VALIDATION_ERROR',
      details: [{ field: 'query.verbose', message: expect.any(String) }],
    });
  });

  test('when connected, then status shows the contract fields', async () => {
    const s = await setup();
    await connectAs(s, { accessToken: s.token, appSecret: 'app-secret-123' }).expect(200);
    const res = await h.t.http().get(s.path('status')).set(userOf(s.sub.id));
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({
      isConnected: true,
      username: s.username,
      instagramAccountId: s.accountId,
      pageId: null,
      webhookUrl: `https://connector.example.test${s.path('webhook')}`,
      webhookVerifiedAt: null,
      lastEventAt: null,
      signatureVerification: true,
      dmUrl: `https://ig.me/m/${s.username}`,
      instagramUrl: `https://www.instagram.com/${s.username}/`,
      tokenStatus: 'valid',
    });
    expect(new Date(res.body.data.connectedAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(decodeQr(res.body.data.qrCodeDataUrl)).toBe(`https://ig.me/m/${s.username}`);
  });

  test('when no app secret is known, then signatureVerification is false', async () => {
    const s = await setup();
    await connectAs(s, { accessToken: s.token }).expect(200);
    expect((await h.t.http().get(s.path('status')).set(s.admin)).body.data.signatureVerification).toBe(false);
  });

  test('when disconnected, then the token document is deleted, Meta is unsubscribed, the account is free and chats stay', async () => {
    const s = await setup();
    await connectAs(s, { accessToken: s.token }).expect(200);
    const subDb = h.t.platformDb.useDb(s.sub.databaseName);
    await subDb
      .collection('chats')
      .insertOne({ chat_id: 'chat_keep', agent_id: s.agentId, metadata: { channel: 'instagram' } });

    const res = await h.t.http().post(s.path('disconnect')).set(s.admin).send({});
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true, data: { isConnected: false } });
    expect(await subDb.collection('instagram_connections').countDocuments({ agentId: s.agentId })).toBe(0);
    expect(
      h.graph.requests.some(
        (r) =>
          r.method === 'DELETE' &&
          r.path === '/v25.0/me/subscribed_apps' &&
          r.headers.authorization === `Bearer ${s.token}`,
      ),
    ).toBe(true);
    expect(await subDb.collection('chats').countDocuments({ chat_id: 'chat_keep' })).toBe(1);
    expect((await h.t.http().get(s.path('status')).set(s.admin)).body.data).toEqual({ isConnected: false });
    const other = await anAgent(h.t.platformDb, s.sub);
    expect((await connectAs(s, { accessToken: s.token }, other)).status).toBe(200);
  });

  test('when a disconnect completes while connect is still subscribing at Meta, then the disconnect stands and the account stays free', async () => {
    const s = await setup();
    h.graph.failNext({ method: 'POST', path: /subscribed_apps$/ }, [
      { status: 200, body: { success: true }, delayMs: 400 }, // Meta slow to answer the subscription
    ]);
    const requestsBefore = h.graph.requests.length;
    const connecting = connectAs(s, { accessToken: s.token }).then((r) => r); // started now
    await waitFor('connect to reach the subscription', () =>
      h.graph.requests
        .slice(requestsBefore)
        .some((r) => r.method === 'POST' && r.path.endsWith('/subscribed_apps')),
    );
    expect((await h.t.http().post(s.path('disconnect')).set(s.admin).send({})).status).toBe(200);
    expect((await connecting).status).toBe(200);

    expect((await h.t.http().get(s.path('status')).set(s.admin)).body.data).toEqual({ isConnected: false });
    const other = await anAgent(h.t.platformDb, s.sub);
    const elsewhere = await connectAs(s, { accessToken: s.token }, other);
    expect(elsewhere.status).toBe(200); // free, not INSTAGRAM_ACCOUNT_IN_USE
  });

  test('when Meta fails the unsubscribe, then disconnect still forgets the token', async () => {
    const s = await setup();
    await connectAs(s, { accessToken: s.token }).expect(200);
    h.graph.failNext(
      { method: 'DELETE' },
      Array.from({ length: 4 }, () => ({ status: 500 })),
    );
    expect((await h.t.http().post(s.path('disconnect')).set(s.admin).send({})).status).toBe(200);
    expect(await connectionsOf(s).countDocuments({ agentId: s.agentId })).toBe(0);
  });

  test('when a user (not admin) disconnects, then 403 and nothing changes', async () => {
    const s = await setup();
    await connectAs(s, { accessToken: s.token }).expect(200);
    expect((await h.t.http().post(s.path('disconnect')).set(userOf(s.sub.id)).send({})).status).toBe(403);
    expect((await h.t.http().get(s.path('status')).set(s.admin)).body.data.isConnected).toBe(true);
  });
});

describe('a token sealed under a key no longer configured', () => {
  /** Connected, then its stored token re-sealed under a key this process does not have (two rotations ago). */
  async function connectedUnderAForgottenKey() {
    const s = await setup();
    await connectAs(s, { accessToken: s.token, appSecret: 'app-secret-123' }).expect(200);
    const forgotten = new SecretBox(crypto.randomBytes(32));
    await connectionsOf(s).updateOne(
      { agentId: s.agentId },
      {
        $set: {
          accessTokenSealed: forgotten.seal(s.token),
          appSecretSealed: forgotten.seal('app-secret-123'),
        },
      },
    );
    return s;
  }

  test('when status is asked, then it answers 200 with tokenStatus invalid, and a send is refused as a dead token', async () => {
    const s = await connectedUnderAForgottenKey();
    const status = await h.t.http().get(s.path('status')).set(s.admin);
    expect(status.status).toBe(200);
    expect(status.body.data).toMatchObject({
      isConnected: true,
      username: s.username,
      tokenStatus: 'invalid',
    });

    const send = await h.t.http().post(s.path('send')).set(s.admin).send({ to: h.aVisitor(), message: 'hi' });
    expect(send.status).toBe(422);
    expect(send.body.error.code).toBe('INSTAGRAM_AUTH_FAILED');
  });

  test('when the admin connects again, then the new token replaces it and status is valid', async () => {
    const s = await connectedUnderAForgottenKey();
    const again = await connectAs(s, { accessToken: s.token });
    expect(again.status).toBe(200);
    const status = await h.t.http().get(s.path('status')).set(s.admin);
    expect(status.body.data).toMatchObject({ isConnected: true, tokenStatus: 'valid' });
  });

  test('when the admin disconnects, then the document is deleted and the account is free, without an empty token sent to Meta', async () => {
    const s = await connectedUnderAForgottenKey();
    const before = h.graph.requests.length;
    const res = await h.t.http().post(s.path('disconnect')).set(s.admin).send({});
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ isConnected: false });
    expect(await connectionsOf(s).countDocuments({ agentId: s.agentId })).toBe(0);
    expect(h.graph.requests.slice(before)).toEqual([]);
    const other = await anAgent(h.t.platformDb, s.sub);
    const elsewhere = await connectAs(s, { accessToken: s.token }, other);
    expect(elsewhere.status).toBe(200);
  });
});

describe('GET /webhook handshake', () => {
  const handshake = (path: string, token: string, challenge = '1158201444') =>
    h.t
      .http()
      .get(path)
      .query({ 'hub.mode': 'subscribe', 'hub.verify_token': token, 'hub.challenge': challenge });

  test('when the verify token matches, then the challenge comes back byte for byte as text/plain and webhookVerifiedAt is set', async () => {
    const s = await setup();
    const { body } = await connectAs(s, {
      accessToken: s.token,
      webhookVerificationToken: 'my-verify-token-1',
    });
    expect(body.data.webhookVerificationToken).toBe('my-verify-token-1');
    const challenge = 'ch_äöü-12345 +/=';
    const res = await handshake(s.path('webhook'), 'my-verify-token-1', challenge);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toBe(challenge);
    const status = await h.t.http().get(s.path('status')).set(s.admin);
    expect(new Date(status.body.data.webhookVerifiedAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  test('when the generated verify token is used, then it verifies too', async () => {
    const s = await setup();
    const { body } = await connectAs(s, { accessToken: s.token });
    expect((await handshake(s.path('webhook'), body.data.webhookVerificationToken)).text).toBe('1158201444');
  });

  test('when the token is wrong, the mode is not subscribe, or a parameter is missing, then 403', async () => {
    const s = await setup();
    await connectAs(s, { accessToken: s.token, webhookVerificationToken: 'right-token-123' });
    expect((await handshake(s.path('webhook'), 'wrong-token-123')).status).toBe(403);
    expect(
      (
        await h.t
          .http()
          .get(s.path('webhook'))
          .query({ 'hub.mode': 'unsubscribe', 'hub.verify_token': 'right-token-123', 'hub.challenge': '1' })
      ).status,
    ).toBe(403);
    expect(
      (
        await h.t
          .http()
          .get(s.path('webhook'))
          .query({ 'hub.mode': 'subscribe', 'hub.verify_token': 'right-token-123' })
      ).status,
    ).toBe(403);
  });

  test('when the agent has disconnected, then the handshake answers 403', async () => {
    const s = await setup();
    await connectAs(s, { accessToken: s.token, webhookVerificationToken: 'right-token-456' });
    expect((await handshake(s.path('webhook'), 'right-token-456')).status).toBe(200);
    await h.t.http().post(s.path('disconnect')).set(s.admin).send({}).expect(200);
    expect((await handshake(s.path('webhook'), 'right-token-456')).status).toBe(403);
  });
});
