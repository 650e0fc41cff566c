import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Types } from 'mongoose';
import { startHarness, type ConnectedAgent, type Harness } from '../setup/harness';
import { aSubaccount, anAgent, igPath } from '../factories/platform';
import { anInstagramDm, aWebhookPayload, signPayload } from '../factories/instagram';
import { adminOf, bearer, superAdmin, tokenFor, userOf } from '../setup/tokens';
import { SpecChecker, SPEC_FILE } from './openapi.contract';

/**
 * docs/openapi.yaml cannot drift: every response below comes from the running app (Graph and Retell
 * simulators behind it) and must be documented for its route and status, and match the schema. Routes that
 * another change has not implemented yet answer 501, which the spec does not document: they fail here
 * until they exist, by design.
 */
const ROOT = path.resolve(__dirname, '../..');
const spec = new SpecChecker();
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  if (process.env.CAPTURE_EXAMPLES) {
    const dir = path.join(ROOT, 'test-artifacts');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'api-examples.json'), JSON.stringify(spec.exchanges, null, 2));
  }
  await h?.close();
});

type Method = 'get' | 'post';
interface CallOptions {
  headers?: Record<string, string>;
  body?: unknown;
  raw?: string;
}

/** One real request, checked against the spec for whatever status it answered. */
async function call(method: Method, url: string, o: CallOptions = {}) {
  const agent = h.t.http();
  let req = (method === 'get' ? agent.get(url) : agent.post(url)).set(o.headers ?? {});
  if (o.raw !== undefined) req = req.set('Content-Type', 'application/json').send(o.raw);
  else if (o.body !== undefined) req = req.send(o.body as object);
  const res = await req;
  spec.check(method, url, res, o.body);
  return res;
}

const code = (res: { body: { error?: { code?: string } } }) => res.body.error?.code;

describe('the document', () => {
  test('is a valid OpenAPI 3.1 document whose references all resolve', async () => {
    const cli = path.join(ROOT, 'node_modules/@seriousme/openapi-schema-validator/bin/validate-api-cli.js');
    // The validator is an ES module; run it as Node runs it rather than through Jest's CommonJS loader.
    const run = await promisify(execFile)(process.execPath, [cli, SPEC_FILE]).catch(
      (e: { stdout: string }) => e,
    );
    expect(JSON.parse(run.stdout)).toEqual({ valid: true });
    expect(spec.spec.openapi).toMatch(/^3\.1\./);
  });

  test('lists every route of the route table, and no route the table does not have', () => {
    const table = fs.readFileSync(path.join(ROOT, 'src/instagram/instagram.routes.ts'), 'utf8');
    const routes = [...table.matchAll(/\br\.(get|post|put|patch|delete)\(\s*'([^']+)'/g)].map(
      ([, m, p]) =>
        `${m} /api/database/{subaccountId}/chat-agents/{agentId}/instagram${p!.replace(/:(\w+)/g, '{$1}')}`,
    );
    expect(routes.length).toBeGreaterThanOrEqual(8);
    const documented = Object.entries(spec.paths)
      .filter(([t]) => t.includes('/instagram/'))
      .flatMap(([t, ops]) =>
        Object.keys(ops)
          .filter((m) => m !== 'parameters')
          .map((m) => `${m} ${t}`),
      );
    expect(documented.sort()).toEqual(routes.sort());
  });

  test('documents exactly the error codes of AppError', () => {
    const source = fs.readFileSync(path.join(ROOT, 'src/http/app-error.ts'), 'utf8');
    const union = /export type ErrorCode =([^;]+);/.exec(source)![1]!;
    const codes = [...union.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]);
    const schemas = (spec.spec.components as { schemas: Record<string, { enum?: string[] }> }).schemas;
    expect([...schemas.ErrorCode!.enum!].sort()).toEqual(codes.sort());
  });

  test('is served as YAML and JSON, with a reader at /docs under a CSP without eval or inline scripts', async () => {
    const yaml = await h.t.http().get('/docs/openapi.yaml');
    expect(yaml.status).toBe(200);
    expect(yaml.type).toBe('application/yaml');
    expect(yaml.text).toBe(fs.readFileSync(SPEC_FILE, 'utf8'));
    const json = await h.t.http().get('/docs/openapi.json');
    expect(json.status).toBe(200);
    expect(json.body).toEqual(spec.spec);

    expect((await h.t.http().get('/docs')).headers.location).toBe('docs/');
    const page = await h.t.http().get('/docs/');
    expect(page.status).toBe(200);
    expect(page.type).toBe('text/html');
    const csp = page.headers['content-security-policy'] as string;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/unsafe-eval/);
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(page.text).not.toMatch(/<script>(?!<\/script>)|<script(?![^>]*\bsrc=)[^>]*>/);
    for (const asset of page.text.matchAll(/(?:src|href)="([^"#:]+)"/g)) {
      const res = await h.t.http().get(`/docs/${asset[1]}`);
      expect([asset[1], res.status]).toEqual([asset[1], 200]);
    }
    expect((await h.t.http().get('/docs/init.js')).status).toBe(200);
  });
});

describe('health', () => {
  test('GET /healthz and /readyz answer as documented', async () => {
    expect((await call('get', '/healthz')).status).toBe(200);
    expect((await call('get', '/readyz')).status).toBe(200);
  });
});

describe('POST /connect', () => {
  const freshAgent = async () => {
    const sub = await aSubaccount(h.t.platformDb);
    const agentId = await anAgent(h.t.platformDb, sub);
    return { sub, agentId, url: igPath(sub.id, agentId, 'connect'), admin: adminOf(sub.id) };
  };

  test('200 with an Instagram-Login token, and with a Page token and pageId', async () => {
    const a = await h.connectAgent(); // registers a simulated account and connects it
    const again = await call('post', a.path('connect'), {
      headers: a.admin,
      body: { accessToken: a.token, appSecret: a.appSecret, webhookVerificationToken: 'verify-me-please' },
    });
    expect(again.status).toBe(200);

    const page = await h.connectAgent({ tokenKind: 'page' });
    const res = await call('post', page.path('connect'), {
      headers: page.admin,
      body: { accessToken: page.token, instagramAccountId: page.accountId, pageId: `10${page.accountId}` },
    });
    expect(res.status).toBe(200);
  });

  test('400 VALIDATION_ERROR naming each bad field, and MALFORMED_JSON', async () => {
    const f = await freshAgent();
    const res = await call('post', f.url, {
      headers: f.admin,
      body: { accessToken: 'EAAB-short', webhookVerificationToken: 'x', surprise: true },
    });
    expect(res.status).toBe(400);
    expect(code(res)).toBe('VALIDATION_ERROR');
    const fields = (res.body.error.details as { field: string }[]).map((d) => d.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'body.accessToken',
        'body.instagramAccountId',
        'body.webhookVerificationToken',
        'body.surprise',
      ]),
    );
    const malformed = await call('post', f.url, { headers: f.admin, raw: '{"accessToken": ' });
    expect([malformed.status, code(malformed)]).toEqual([400, 'MALFORMED_JSON']);
  });

  test('401 without a token, with an expired one and with a forged one', async () => {
    const f = await freshAgent();
    const none = await call('post', f.url, { body: {} });
    const expired = await call('post', f.url, {
      headers: bearer(tokenFor({ role: 'admin', subaccountIds: [f.sub.id] }, { expiresIn: -60 })),
      body: {},
    });
    const forged = await call('post', f.url, { headers: { Authorization: 'Bearer not.a.jwt' }, body: {} });
    expect([none.status, expired.status, forged.status]).toEqual([401, 401, 401]);
  });

  test('403 for a user role, and for another subaccount', async () => {
    const f = await freshAgent();
    const user = await call('post', f.url, { headers: userOf(f.sub.id), body: {} });
    const other = await call('post', f.url, {
      headers: adminOf(new Types.ObjectId().toHexString()),
      body: {},
    });
    expect([user.status, code(user), other.status]).toEqual([403, 'FORBIDDEN', 403]);
  });

  test('404 SUBACCOUNT_NOT_FOUND and AGENT_NOT_FOUND', async () => {
    const f = await freshAgent();
    const noSub = await call('post', igPath(new Types.ObjectId().toHexString(), f.agentId, 'connect'), {
      headers: superAdmin(),
      body: { accessToken: 'IGAA0123456789abcdefghij' },
    });
    const noAgent = await call('post', igPath(f.sub.id, 'agent_nobody', 'connect'), {
      headers: f.admin,
      body: { accessToken: 'IGAA0123456789abcdefghij' },
    });
    expect([code(noSub), code(noAgent)]).toEqual(['SUBACCOUNT_NOT_FOUND', 'AGENT_NOT_FOUND']);
  });

  test('409 INSTAGRAM_ACCOUNT_IN_USE when another agent holds the account', async () => {
    const a = await h.connectAgent();
    const f = await freshAgent();
    const res = await call('post', f.url, { headers: f.admin, body: { accessToken: a.token } });
    expect([res.status, code(res)]).toEqual([409, 'INSTAGRAM_ACCOUNT_IN_USE']);
  });

  test('413 for a body over 1 MB', async () => {
    const f = await freshAgent();
    const res = await call('post', f.url, {
      headers: f.admin,
      raw: JSON.stringify({ accessToken: 'x'.repeat(1_100_000) }),
    });
    expect([res.status, code(res)]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
  });

  test('422 INSTAGRAM_AUTH_FAILED with Meta details when Meta refuses the token', async () => {
    const f = await freshAgent();
    const res = await call('post', f.url, {
      headers: f.admin,
      body: { accessToken: 'IGAAunknown0123456789abcdef' },
    });
    expect([res.status, code(res), res.body.error.details.code]).toEqual([422, 'INSTAGRAM_AUTH_FAILED', 190]);
  });

  test('502 INSTAGRAM_UNAVAILABLE when Meta keeps answering 5xx', async () => {
    const own = await startHarness();
    try {
      const a = await own.connectAgent();
      own.graph.failNext(
        { method: 'GET', path: '/me' },
        Array.from({ length: 4 }, () => ({ status: 500 })),
      );
      const res = await own.t.http().post(a.path('connect')).set(a.admin).send({ accessToken: a.token });
      spec.check('post', a.path('connect'), res);
      expect([res.status, code(res)]).toEqual([502, 'INSTAGRAM_UNAVAILABLE']);
    } finally {
      await own.close();
    }
  });
});

describe('GET /status', () => {
  test('200 connected and not connected; 401, 403, 404', async () => {
    const a = await h.connectAgent();
    expect((await call('get', a.path('status'), { headers: userOf(a.sub.id) })).body.data.isConnected).toBe(
      true,
    );
    const agentId = await anAgent(h.t.platformDb, a.sub);
    const none = await call('get', igPath(a.sub.id, agentId, 'status'), { headers: userOf(a.sub.id) });
    expect(none.body.data).toEqual({ isConnected: false });
    expect((await call('get', a.path('status'))).status).toBe(401);
    expect(
      (await call('get', a.path('status'), { headers: userOf(new Types.ObjectId().toHexString()) })).status,
    ).toBe(403);
    expect(
      (await call('get', igPath(a.sub.id, 'agent_gone', 'status'), { headers: userOf(a.sub.id) })).status,
    ).toBe(404);
  });
});

/** A connected agent with a visitor who has just written (so the 24-hour window is open). */
async function withVisitor(x: Harness = h): Promise<{ a: ConnectedAgent; visitor: string }> {
  const a = await x.connectAgent();
  const visitor = x.aVisitor('jane_doe');
  const ack = await x.deliver(a, [
    anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'Hi! Do you ship to Canada?' }),
  ]);
  expect(ack.status).toBe(200);
  await x.drain();
  return { a, visitor };
}

describe('POST /send', () => {
  test('200 with the message ids; 400 for an operator object; 403 for a user', async () => {
    const { a, visitor } = await withVisitor();
    const ok = await call('post', a.path('send'), {
      headers: a.admin,
      body: { to: visitor, message: 'Yes — we ship to Canada. Delivery takes 5–7 days.' },
    });
    expect(ok.status).toBe(200);
    const bad = await call('post', a.path('send'), {
      headers: a.admin,
      body: { to: { $gt: '' }, message: 'hi' },
    });
    expect([bad.status, code(bad)]).toEqual([400, 'VALIDATION_ERROR']);
    const user = await call('post', a.path('send'), {
      headers: userOf(a.sub.id),
      body: { to: visitor, message: 'hi' },
    });
    expect(user.status).toBe(403);
  });

  test('409 INSTAGRAM_NOT_CONNECTED', async () => {
    const sub = await aSubaccount(h.t.platformDb);
    const agentId = await anAgent(h.t.platformDb, sub);
    const res = await call('post', igPath(sub.id, agentId, 'send'), {
      headers: adminOf(sub.id),
      body: { to: '1234567890123456', message: 'hello' },
    });
    expect([res.status, code(res)]).toEqual([409, 'INSTAGRAM_NOT_CONNECTED']);
  });

  test('422 MESSAGING_WINDOW_CLOSED for a user who never wrote', async () => {
    const a = await h.connectAgent();
    const res = await call('post', a.path('send'), {
      headers: a.admin,
      body: { to: h.aVisitor(), message: 'hello' },
    });
    expect([res.status, code(res)]).toEqual([422, 'MESSAGING_WINDOW_CLOSED']);
  });

  test('502 INSTAGRAM_SEND_FAILED with Meta code, 429 with Retry-After, 422 when the token died', async () => {
    const own = await startHarness();
    try {
      const { a, visitor } = await withVisitor(own);
      const url = a.path('send');
      const send = async () => {
        const res = await own.t
          .http()
          .post(url)
          .set(a.admin)
          .send({ to: visitor, message: 'Are you there?' });
        spec.check('post', url, res, { to: visitor, message: 'Are you there?' });
        return res;
      };
      const metaError = (status: number, c: number, message: string, subcode?: number) => ({
        status,
        body: {
          error: { message, type: 'OAuthException', code: c, error_subcode: subcode, fbtrace_id: 'AbC123' },
        },
      });

      own.graph.failNext({ method: 'POST', path: '/me/messages' }, [
        metaError(400, 551, "This person isn't available right now.", 1545041),
      ]);
      const refused = await send();
      expect([refused.status, code(refused), refused.body.error.details?.code]).toEqual([
        502,
        'INSTAGRAM_SEND_FAILED',
        551,
      ]);

      own.graph.failNext({ method: 'POST', path: '/me/messages' }, [
        { ...metaError(400, 4, 'Application request limit reached'), headers: { 'Retry-After': '3600' } },
      ]);
      const limited = await send();
      expect([limited.status, code(limited)]).toEqual([429, 'INSTAGRAM_RATE_LIMITED']);
      expect(limited.headers['retry-after']).toMatch(/^\d+$/);

      own.graph.failNext({ method: 'POST', path: '/me/messages' }, [
        metaError(400, 190, 'Error validating access token'),
      ]);
      const dead = await send();
      expect([dead.status, code(dead)]).toEqual([422, 'INSTAGRAM_AUTH_FAILED']);
    } finally {
      await own.close();
    }
  });
});

describe('GET /messages and GET /conversations', () => {
  test('200 pages and 400 for an out-of-range limit', async () => {
    const { a, visitor } = await withVisitor();
    const headers = userOf(a.sub.id);
    const all = await call('get', a.path('messages'), { headers });
    expect(all.status).toBe(200);
    const page = await call('get', `${a.path('messages')}?userId=${visitor}&limit=1`, { headers });
    expect(page.status).toBe(200);
    if (page.body.data?.nextCursor) {
      const next = await call(
        'get',
        `${a.path('messages')}?limit=1&before=${encodeURIComponent(page.body.data.nextCursor)}`,
        { headers },
      );
      expect(next.status).toBe(200);
    }
    expect((await call('get', `${a.path('messages')}?limit=0`, { headers })).status).toBe(400);
    expect((await call('get', `${a.path('messages')}?surprise=1`, { headers })).status).toBe(400);

    const convs = await call('get', a.path('conversations'), { headers });
    expect(convs.status).toBe(200);
    expect((await call('get', `${a.path('conversations')}?limit=1`, { headers })).status).toBe(200);
    expect((await call('get', `${a.path('conversations')}?limit=500`, { headers })).status).toBe(400);
    expect((await call('get', a.path('conversations'))).status).toBe(401);
  });
});

describe('POST /conversations/:userId/pause and /resume', () => {
  test('200 pause and resume; 400 for bad minutes; 403 for a user', async () => {
    const { a, visitor } = await withVisitor();
    const pause = `${a.path('conversations')}/${visitor}/pause`;
    const resume = `${a.path('conversations')}/${visitor}/resume`;
    expect((await call('post', pause, { headers: a.admin, body: { minutes: 30 } })).status).toBe(200);
    expect((await call('post', resume, { headers: a.admin, body: {} })).status).toBe(200);
    expect((await call('post', pause, { headers: a.admin, body: { minutes: 'soon' } })).status).toBe(400);
    expect((await call('post', resume, { headers: a.admin, body: { surprise: 1 } })).status).toBe(400);
    expect((await call('post', pause, { headers: userOf(a.sub.id), body: { minutes: 30 } })).status).toBe(
      403,
    );
  });
});

describe('POST /disconnect', () => {
  test('200 (twice), 400 for a body with fields, 403 for a user', async () => {
    const a = await h.connectAgent();
    expect((await call('post', a.path('disconnect'), { headers: userOf(a.sub.id), body: {} })).status).toBe(
      403,
    );
    expect((await call('post', a.path('disconnect'), { headers: a.admin, body: { now: true } })).status).toBe(
      400,
    );
    expect((await call('post', a.path('disconnect'), { headers: a.admin, body: {} })).status).toBe(200);
    expect((await call('post', a.path('disconnect'), { headers: a.admin })).status).toBe(200);
  });
});

describe('webhook', () => {
  test('GET: 200 text/plain challenge for the right token, 403 otherwise, 404 for an unknown agent', async () => {
    const a = await h.connectAgent();
    const token = 'verify-token-for-docs';
    await call('post', a.path('connect'), {
      headers: a.admin,
      body: { accessToken: a.token, appSecret: a.appSecret, webhookVerificationToken: token },
    });
    const q = (t: string) => `?hub.mode=subscribe&hub.verify_token=${t}&hub.challenge=1158201444`;
    const ok = await call('get', `${a.path('webhook')}${q(token)}`);
    expect([ok.status, ok.text]).toEqual([200, '1158201444']);
    expect((await call('get', `${a.path('webhook')}${q('wrong-token')}`)).status).toBe(403);
    expect((await call('get', `${igPath(a.sub.id, 'agent_gone', 'webhook')}${q(token)}`)).status).toBe(404);
  });

  test('POST: 200 when signed, 401 with a bad signature, 400 for a non-Instagram payload, 413 when huge', async () => {
    const a = await h.connectAgent();
    const raw = JSON.stringify(
      aWebhookPayload(a.accountId, [anInstagramDm({ userId: h.aVisitor(), accountId: a.accountId })]),
    );
    const post = (body: string, signature?: string) => {
      const req = h.t.http().post(a.path('webhook')).set('Content-Type', 'application/json');
      if (signature) req.set('X-Hub-Signature-256', signature);
      return req.send(body);
    };
    const check = async (body: string, signature?: string) => {
      const res = await post(body, signature);
      spec.check('post', a.path('webhook'), res, JSON.parse(body.length < 100_000 ? body : '{}'));
      return res;
    };
    expect((await check(raw, signPayload(raw, a.appSecret))).status).toBe(200);
    expect((await check(raw, signPayload(raw, 'another-secret'))).status).toBe(401);
    expect((await check(raw)).status).toBe(401);
    const page = JSON.stringify({ object: 'page', entry: [] });
    expect((await check(page, signPayload(page, a.appSecret))).status).toBe(400);
    const huge = JSON.stringify({ object: 'instagram', entry: [], pad: 'x'.repeat(1_100_000) });
    expect((await check(huge, signPayload(huge, a.appSecret))).status).toBe(413);
    await h.drain();
  });
});

describe('coverage of the spec', () => {
  test('every operation was seen answering 200', () => {
    const ok = new Set(
      spec.exchanges.filter((e) => e.status === 200).map((e) => `${e.method} ${e.template}`),
    );
    const operations = Object.entries(spec.paths).flatMap(([t, ops]) =>
      Object.keys(ops)
        .filter((m) => m !== 'parameters')
        .map((m) => `${m.toUpperCase()} ${t}`),
    );
    expect(operations.filter((o) => !ok.has(o))).toEqual([]);
    // Documented but not provoked here (500s, 503, some 413s): listed for whoever extends this file.
    if (process.env.CAPTURE_EXAMPLES) {
      fs.mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
      fs.writeFileSync(
        path.join(ROOT, 'test-artifacts', 'openapi-unexercised.txt'),
        spec.unexercised().join('\n'),
      );
    }
  });
});
