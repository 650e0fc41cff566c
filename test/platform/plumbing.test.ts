import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Router } from 'express';
import { createApp } from '../../src/app';
import { startTestApp, type TestApp } from '../setup/app';
import { waitFor } from '../setup/wait-for';
import { aSubaccount, anAgent, igPath } from '../factories/platform';
import { adminOf, superAdmin } from '../setup/tokens';
import type { Platform } from '../../src/platform/platform';
import { MongoPlatform } from '../../src/platform/mongo-platform';

let t: TestApp;
let connectPath: string;
let sub: string;
beforeAll(async () => {
  t = await startTestApp();
  const s = await aSubaccount(t.platformDb);
  sub = s.id;
  connectPath = igPath(s.id, await anAgent(t.platformDb, s), 'connect');
});
afterAll(() => t.close());

test('when the body is not JSON, then 400 MALFORMED_JSON in the envelope', async () => {
  const res = await t
    .http()
    .post(connectPath)
    .set(adminOf(sub))
    .set('Content-Type', 'application/json')
    .send('{"accessToken": ');
  expect(res.status).toBe(400);
  expect(res.body).toEqual({
    success: false,
    error: { code: 'MALFORMED_JSON', message: expect.any(String) },
  });
});

test('when the body is over 1 MB, then 413 PAYLOAD_TOO_LARGE', async () => {
  const big = JSON.stringify({ accessToken: 'x'.repeat(2 * 1024 * 1024) });
  const res = await t
    .http()
    .post(connectPath)
    .set(adminOf(sub))
    .set('Content-Type', 'application/json')
    .send(big);
  expect(res.status).toBe(413);
  expect(res.body.error.code).toBe('PAYLOAD_TOO_LARGE');
});

test.each(['text/plain', 'application/octet-stream'])(
  'when a body over 1 MB is sent as %s, then 413 PAYLOAD_TOO_LARGE as well',
  async (type) => {
    const res = await t
      .http()
      .post(connectPath)
      .set(adminOf(sub))
      .set('Content-Type', type)
      .send('x'.repeat(2 * 1024 * 1024));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('PAYLOAD_TOO_LARGE');
  },
);

test('when a body is not sent as JSON, then 400 VALIDATION_ERROR naming the body, not its missing fields', async () => {
  const res = await t
    .http()
    .post(connectPath)
    .set(adminOf(sub))
    .set('Content-Type', 'text/plain')
    .send('accessToken=abc');
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe('VALIDATION_ERROR');
  expect(res.body.error.details).toEqual([
    { field: 'body', message: 'must be JSON, sent with Content-Type: application/json' },
  ]);
});

test('when the route is unknown, then 404 NOT_FOUND', async () => {
  const res = await t.http().get('/api/nothing-here');
  expect(res.status).toBe(404);
  expect(res.body).toEqual({ success: false, error: { code: 'NOT_FOUND', message: expect.any(String) } });
});

test('responses carry security headers and a request id', async () => {
  const res = await t.http().get('/healthz');
  expect(res.headers['x-content-type-options']).toBe('nosniff');
  expect(res.headers['x-powered-by']).toBeUndefined();
  expect(res.headers['x-request-id']).toMatch(/.+/);
});

test('healthz answers while the process is up; readyz when the database answers', async () => {
  expect((await t.http().get('/healthz')).status).toBe(200);
  expect((await t.http().get('/readyz')).body).toEqual({ success: true, data: { status: 'ready' } });
});

describe('failures inside', () => {
  let broken: TestApp;
  beforeAll(async () => {
    const failing = (inner: Platform): Platform => ({
      ...inner,
      canAccess: (p, s) => inner.canAccess(p, s),
      close: () => inner.close(),
      findSubaccount: async () => {
        throw new Error('connection string mongodb://user:hunter2@internal');
      },
      subaccountDb: (s) => inner.subaccountDb(s),
      findAgent: (d, a) => inner.findAgent(d, a),
      retellFor: (s) => inner.retellFor(s),
    });
    broken = await startTestApp({}, { platform: (db, retell) => failing(new MongoPlatform(db, retell)) });
  });
  afterAll(() => broken.close());

  test('when something unknown is thrown, then 500 INTERNAL_ERROR without its message, logged with stack and request id', async () => {
    const res = await broken
      .http()
      .get(igPath('65f000000000000000000001', 'a', 'status'))
      .set(superAdmin())
      .set('X-Request-Id', 'req-500-test');
    expect(res.status).toBe(500);
    expect(res.body).toEqual({
      success: false,
      error: { code: 'INTERNAL_ERROR', message: expect.any(String) },
    });
    expect(JSON.stringify(res.body)).not.toContain('hunter2');
    const line = broken.logs.map((l) => JSON.parse(l)).find((l) => l.err?.stack?.includes('hunter2'));
    expect(line).toBeDefined();
    expect(line.reqId).toBe('req-500-test');
    expect(line.level).toBe(50);
    const access = broken.logs
      .map((l) => JSON.parse(l))
      .find((l) => l.reqId === 'req-500-test' && l.res?.statusCode === 500);
    expect(access).toMatchObject({ level: 50, msg: 'request errored', req: { method: 'GET' } });
  });

  test('when the database is unreachable, then readyz answers 503', async () => {
    await broken.platformDb.close();
    const res = await broken.http().get('/readyz');
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('SERVICE_UNAVAILABLE');
  });
});

test('when a request carries Authorization and a body with accessToken, then neither reaches the log', async () => {
  const token = adminOf(sub).Authorization;
  await t
    .http()
    .post(connectPath)
    .set('Authorization', token)
    .send({ accessToken: 'IGAA-super-secret-token-value', appSecret: 'app-secret-value' });
  const all = t.logs.join('\n');
  expect(t.logs.length).toBeGreaterThan(0);
  expect(all).not.toContain(token.slice(7));
  expect(all).not.toContain('IGAA-super-secret-token-value');
  expect(all).not.toContain('app-secret-value');
});

test('the access log line names its request id once, the id the response carries', async () => {
  const res = await t.http().get('/healthz').set('X-Request-Id', 'req-access-line');
  expect(res.headers['x-request-id']).toBe('req-access-line');
  const line = t.logs.find((l) => l.includes('req-access-line') && l.includes('"statusCode"'));
  expect(line).toBeDefined();
  // A key written twice is valid-looking JSON that log pipelines read differently (first or last wins).
  expect(line!.match(/"reqId":/g)).toHaveLength(1);
  expect(JSON.parse(line!)).toMatchObject({ reqId: 'req-access-line', res: { statusCode: 200 } });
});

test('the access line names the path without its query string, where the verify token travels', async () => {
  await t
    .http()
    .get('/healthz?hub.mode=subscribe&hub.verify_token=verify-token-in-query')
    .set('X-Request-Id', 'req-query');
  const line = t.logs.find((l) => l.includes('req-query') && l.includes('"statusCode"'));
  expect(JSON.parse(line!)).toMatchObject({
    msg: 'request completed',
    level: 30,
    req: { method: 'GET', path: '/healthz' },
    responseTime: expect.any(Number),
  });
  expect(t.logs.join('\n')).not.toContain('verify-token-in-query');
});

test('when the client goes away before the answer, then the access line still names the request id', async () => {
  // A route that never answers, on the real app: the client gives up and the line says "request aborted".
  let reached = false;
  const hang = Router().get('/test-hang', () => void (reached = true));
  const server = http.createServer(createApp(t.deps, [hang]));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const req = http.get({ port, path: '/test-hang', headers: { 'X-Request-Id': 'req-gone-away' } });
    req.on('error', () => undefined);
    await waitFor('the request to reach the route', () => reached);
    req.destroy();
    const aborted = () => t.logs.find((l) => l.includes('req-gone-away') && l.includes('request aborted'));
    await waitFor('the aborted request to be logged', () => aborted() !== undefined);
    const line = aborted()!;
    expect(line.match(/"reqId":/g)).toHaveLength(1);
    expect(JSON.parse(line)).toMatchObject({ reqId: 'req-gone-away', req: { path: '/test-hang' } });
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
