import net from 'node:net';
import {
  GraphClient,
  INSTAGRAM_WEBHOOK_FIELDS,
  PAGE_WEBHOOK_FIELDS,
  tokenKindOf,
  type GraphClientOptions,
} from '../../src/instagram/graph.client';
import { GraphError } from '../../src/instagram/graph.errors';
import { startGraphSimulator, type GraphSimulator } from '../../src/simulators/graph.simulator';

const PAGE_TOKEN = 'EAAFBsecretPageToken0123456789';
const IG_TOKEN = 'IGAAsecretInstagramToken0123456789';
const IG_ACCOUNT = {
  id: '17841400000000001',
  username: 'shop_one',
  name: 'Shop One',
  pageId: '1755847768034402',
};
const IG_LOGIN_ACCOUNT = {
  id: '17841400000000002',
  username: 'shop_two',
  name: 'Shop Two',
  appScopedId: '26000000002',
};
const VISITOR = '6543210987654321';

let sim: GraphSimulator;
let waits: number[];

function client(overrides: Partial<GraphClientOptions> = {}): GraphClient {
  return new GraphClient({
    metaGraphUrl: sim.metaGraphUrl,
    instagramGraphUrl: sim.instagramGraphUrl,
    version: 'v25.0',
    timeoutMs: 2000,
    retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5, maxTotalMs: 15_000 },
    sleep: async (ms) => void waits.push(ms),
    ...overrides,
  });
}

async function caught(p: Promise<unknown>): Promise<GraphError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphError);
  return err as GraphError;
}

const graphError = (status: number, code: number, subcode?: number, message = `error ${code}`) => ({
  status,
  body: { error: { message, type: 'OAuthException', code, error_subcode: subcode, fbtrace_id: 'Atrace' } },
});

beforeEach(async () => {
  sim = await startGraphSimulator({ version: 'v25.0' });
  sim.accounts.set(PAGE_TOKEN, IG_ACCOUNT);
  sim.accounts.set(IG_TOKEN, IG_LOGIN_ACCOUNT);
  sim.users.set(VISITOR, {
    name: 'Peter Chang',
    username: 'peter_chang_live',
    profilePic: 'https://cdn.test/p.jpg',
  });
  waits = [];
});

afterEach(() => sim.close());

describe('tokenKindOf', () => {
  it('when a token starts with IG, then it is an Instagram-Login token; otherwise a Page token', () => {
    expect(tokenKindOf(IG_TOKEN)).toBe('instagram');
    expect(tokenKindOf(PAGE_TOKEN)).toBe('page');
  });
});

describe('GraphClient.getAccount', () => {
  it('when the token is an Instagram-Login token, then /me on graph.instagram.com is read and user_id is the account id', async () => {
    const account = await client().getAccount(IG_TOKEN);

    expect(account).toEqual({
      instagramAccountId: '17841400000000002',
      username: 'shop_two',
      name: 'Shop Two',
    });
    expect(account.instagramAccountId).not.toBe(IG_LOGIN_ACCOUNT.appScopedId);
    expect(sim.requests).toHaveLength(1);
    expect(sim.requests[0]).toMatchObject({
      method: 'GET',
      host: 'graph.instagram.com',
      path: '/v25.0/me',
      query: { fields: 'user_id,username,name,profile_picture_url' },
    });
  });

  it('when the token is a Page token, then the IG user node is read on graph.facebook.com', async () => {
    const account = await client().getAccount(PAGE_TOKEN, IG_ACCOUNT.id);

    expect(account).toEqual({ instagramAccountId: IG_ACCOUNT.id, username: 'shop_one', name: 'Shop One' });
    expect(sim.requests[0]).toMatchObject({
      method: 'GET',
      host: 'graph.facebook.com',
      path: `/v25.0/${IG_ACCOUNT.id}`,
      query: { fields: 'id,username,name,profile_picture_url' },
    });
  });

  it('when a Page token comes without an account id, then it is a bad_request and Meta is not called', async () => {
    const err = await caught(client().getAccount(PAGE_TOKEN));
    expect(err.kind).toBe('bad_request');
    expect(sim.requests).toHaveLength(0);
  });

  it('when any call is made, then the token is in the Authorization header and never in the URL', async () => {
    await client().getAccount(IG_TOKEN);
    await client().getAccount(PAGE_TOKEN, IG_ACCOUNT.id);

    for (const req of sim.requests) {
      const token = req.host === 'graph.instagram.com' ? IG_TOKEN : PAGE_TOKEN;
      expect(req.headers.authorization).toBe(`Bearer ${token}`);
      expect(JSON.stringify(req.query)).not.toContain(token);
      expect(req.path).not.toContain(token);
    }
  });

  it('when Meta answers 500 once, then the read is retried and succeeds', async () => {
    sim.failNext({ method: 'GET', path: '/me' }, [
      graphError(500, 2, undefined, 'Service temporarily unavailable'),
    ]);

    const account = await client().getAccount(IG_TOKEN);

    expect(account.instagramAccountId).toBe(IG_LOGIN_ACCOUNT.id);
    expect(sim.requests).toHaveLength(2);
    expect(waits).toHaveLength(1);
  });

  it('when the token is unknown, then a 190 invalid_token comes back after exactly one request', async () => {
    const err = await caught(client().getAccount('IGAAunknownToken999'));

    expect(err).toMatchObject({ kind: 'invalid_token', code: 190, status: 400, mayHaveBeenSent: false });
    expect(sim.requests).toHaveLength(1);
  });

  it('when Meta rate-limits with Retry-After, then the client waits that long and succeeds', async () => {
    sim.failNext({ path: '/me' }, [{ ...graphError(400, 4), headers: { 'Retry-After': '2' } }]);

    const account = await client().getAccount(IG_TOKEN);

    expect(account.username).toBe('shop_two');
    expect(waits).toEqual([2000]);
    expect(sim.requests).toHaveLength(2);
  });

  it('when the Retry-After wait would pass maxTotalMs, then the rate-limit error is thrown at once', async () => {
    sim.failNext({ path: '/me' }, [{ ...graphError(400, 4), headers: { 'Retry-After': '60' } }]);

    const err = await caught(client().getAccount(IG_TOKEN));

    expect(err).toMatchObject({ kind: 'rate_limit', retryAfterMs: 60_000 });
    expect(waits).toEqual([]);
    expect(sim.requests).toHaveLength(1);
  });

  it('when Meta keeps failing with 5xx, then the client gives up after maxAttempts with real backoff', async () => {
    sim.failNext({ path: '/me' }, Array(5).fill(graphError(500, 1)));

    const err = await caught(client({ sleep: undefined }).getAccount(IG_TOKEN));

    expect(err.kind).toBe('transient');
    expect(sim.requests).toHaveLength(4);
  });

  it('when nothing listens on the host, then the error is unreachable and carries no token', async () => {
    const port = await closedPort();
    const c = client({
      metaGraphUrl: `http://127.0.0.1:${port}`,
      instagramGraphUrl: `http://127.0.0.1:${port}`,
    });

    const err = await caught(c.getAccount(IG_TOKEN));

    expect(err).toMatchObject({ kind: 'unreachable', mayHaveBeenSent: false });
    expect(waits).toHaveLength(3); // retried: the request never left
    expectNoToken(err, IG_TOKEN);
  });

  it('when Meta is slower than the timeout, then the error is transient', async () => {
    sim.setDelay(200);
    const err = await caught(client({ timeoutMs: 50, retry: { maxAttempts: 1 } }).getAccount(IG_TOKEN));
    expect(err).toMatchObject({ kind: 'transient', mayHaveBeenSent: true });
  });
});

describe('GraphClient.sendMessage', () => {
  it('when a text is sent, then POST /me/messages carries recipient and message and returns the mid', async () => {
    const sent = await client().sendMessage(IG_TOKEN, VISITOR, { text: 'Hello there' });

    expect(sent.recipientId).toBe(VISITOR);
    expect(sent.messageId).toMatch(/^aWdf/);
    expect(sim.sent).toEqual([
      expect.objectContaining({ recipientId: VISITOR, message: { text: 'Hello there' } }),
    ]);
    expect(sim.requests[0]).toMatchObject({
      method: 'POST',
      host: 'graph.instagram.com',
      path: '/v25.0/me/messages',
      body: { recipient: { id: VISITOR }, message: { text: 'Hello there' } },
    });
  });

  it('when an attachment is sent with the HUMAN_AGENT tag, then payload.url and the tag are in the body', async () => {
    await client().sendMessage(
      PAGE_TOKEN,
      VISITOR,
      { attachment: { type: 'image', url: 'https://cdn.test/a.png' } },
      { tag: 'HUMAN_AGENT' },
    );

    expect(sim.requests[0]).toMatchObject({
      host: 'graph.facebook.com',
      body: {
        recipient: { id: VISITOR },
        message: { attachment: { type: 'image', payload: { url: 'https://cdn.test/a.png' } } },
        messaging_type: 'MESSAGE_TAG',
        tag: 'HUMAN_AGENT',
      },
    });
  });

  it('when Meta answers 500 to a send, then it is not retried and may have been sent', async () => {
    sim.failNext({ method: 'POST', path: '/me/messages' }, [
      { ...graphError(500, 1, 1357046), deliverAnyway: true },
    ]);

    const err = await caught(client().sendMessage(IG_TOKEN, VISITOR, { text: 'Hi' }));

    expect(err).toMatchObject({ kind: 'transient', mayHaveBeenSent: true, status: 500 });
    expect(sim.requests).toHaveLength(1);
    expect(sim.sent).toHaveLength(1);
  });

  it('when a send is rate-limited, then it is retried because nothing was delivered', async () => {
    sim.failNext({ path: '/me/messages' }, [graphError(400, 613)]);

    const sent = await client().sendMessage(IG_TOKEN, VISITOR, { text: 'Hi' });

    expect(sent.messageId).toMatch(/^aWdf/);
    expect(sim.requests).toHaveLength(2);
    expect(sim.sent).toHaveLength(1);
  });

  it('when the window is closed, then the error is window_closed', async () => {
    const msg = '(#10) This message is sent outside of allowed window.';
    sim.failNext({ path: '/me/messages' }, [graphError(400, 10, 2534022, msg)]);

    const err = await caught(client().sendMessage(IG_TOKEN, VISITOR, { text: 'Hi' }));

    expect(err).toMatchObject({ kind: 'window_closed', code: 10, subcode: 2534022, mayHaveBeenSent: false });
    expect(sim.requests).toHaveLength(1);
  });

  it('when the recipient is unknown, then it is a bad_request 100/2018001', async () => {
    const err = await caught(client().sendMessage(IG_TOKEN, '1111', { text: 'Hi' }));
    expect(err).toMatchObject({
      kind: 'bad_request',
      code: 100,
      subcode: 2018001,
      metaMessage: 'No matching user found',
    });
  });

  it("when a text breaks either of Meta's limits (over 1,000 bytes, or 1,000 characters), then it is a bad_request 100, not retried", async () => {
    const tooManyBytes = await caught(client().sendMessage(IG_TOKEN, VISITOR, { text: 'é'.repeat(501) }));
    const tooManyChars = await caught(client().sendMessage(IG_TOKEN, VISITOR, { text: 'a'.repeat(1000) }));
    for (const err of [tooManyBytes, tooManyChars])
      expect(err).toMatchObject({ kind: 'bad_request', code: 100, retryable: false, mayHaveBeenSent: false });
    const fits = await client().sendMessage(IG_TOKEN, VISITOR, { text: 'a'.repeat(999) });
    expect(fits.messageId).toEqual(expect.any(String));
  });

  it('when Meta echoes the token in its message, then the error never contains the token', async () => {
    const echoing = `Invalid OAuth access token ${IG_TOKEN}`;
    sim.failNext({ path: '/me/messages' }, [graphError(400, 190, 463, echoing)]);

    const err = await caught(client().sendMessage(IG_TOKEN, VISITOR, { text: 'Hi' }));

    expect(err.kind).toBe('invalid_token');
    expectNoToken(err, IG_TOKEN);
  });
});

describe('GraphClient.getUserProfile', () => {
  it('when a visitor is looked up, then name, username and profile_pic come back', async () => {
    const profile = await client().getUserProfile(PAGE_TOKEN, VISITOR);

    expect(profile).toEqual({
      name: 'Peter Chang',
      username: 'peter_chang_live',
      profilePic: 'https://cdn.test/p.jpg',
    });
    expect(sim.requests[0]).toMatchObject({
      path: `/v25.0/${VISITOR}`,
      query: { fields: 'name,username,profile_pic' },
    });
  });
});

describe('GraphClient webhook subscriptions', () => {
  it('when a Page is subscribed, then POST /{page-id}/subscribed_apps carries the Instagram messaging fields', async () => {
    await client().subscribeWebhooks(PAGE_TOKEN, IG_ACCOUNT.pageId);

    expect(sim.requests[0]).toMatchObject({
      method: 'POST',
      host: 'graph.facebook.com',
      path: `/v25.0/${IG_ACCOUNT.pageId}/subscribed_apps`,
      query: { subscribed_fields: PAGE_WEBHOOK_FIELDS.join(',') },
    });
    expect(sim.subscriptions.get(IG_ACCOUNT.id)).toEqual([...PAGE_WEBHOOK_FIELDS]);
  });

  it('when an Instagram-Login account is subscribed, then POST /me/subscribed_apps carries its field names', async () => {
    await client().subscribeWebhooks(IG_TOKEN);

    expect(sim.requests[0]).toMatchObject({
      method: 'POST',
      host: 'graph.instagram.com',
      path: '/v25.0/me/subscribed_apps',
    });
    expect(sim.subscriptions.get(IG_LOGIN_ACCOUNT.id)).toEqual([...INSTAGRAM_WEBHOOK_FIELDS]);
    expect(INSTAGRAM_WEBHOOK_FIELDS).toContain('message_edit');
  });

  it('when Meta does not answer { success: true }, then subscribing fails', async () => {
    sim.failNext({ path: '/me/subscribed_apps' }, [{ status: 200, body: { success: false } }]);
    const err = await caught(client().subscribeWebhooks(IG_TOKEN));
    expect(err.kind).toBe('other');
  });

  it('when unsubscribing, then DELETE is sent on the same edge', async () => {
    await client().subscribeWebhooks(IG_TOKEN);
    await client().unsubscribeWebhooks(IG_TOKEN);

    expect(sim.requests[1]).toMatchObject({ method: 'DELETE', path: '/v25.0/me/subscribed_apps' });
    expect(sim.subscriptions.has(IG_LOGIN_ACCOUNT.id)).toBe(false);
  });
});

function expectNoToken(err: GraphError, token: string): void {
  expect(JSON.stringify(err)).not.toContain(token);
  expect(err.message).not.toContain(token);
  expect(err.stack ?? '').not.toContain(token);
  expect(err.metaMessage).not.toContain(token);
  expect(Object.values(err).some((v) => typeof v === 'object' && v !== null)).toBe(false);
}

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}
