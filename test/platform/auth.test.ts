import jwt from 'jsonwebtoken';
import { startTestApp, type TestApp } from '../setup/app';
import { aSubaccount, anAgent, igPath } from '../factories/platform';
import { bearer, tokenFor, TEST_JWT_SECRET } from '../setup/tokens';

let t: TestApp;
let sub: string;
let agent: string;
let statusPath: string;
let connectPath: string;

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());
beforeEach(async () => {
  const s = await aSubaccount(t.platformDb);
  sub = s.id;
  agent = await anAgent(t.platformDb, s);
  statusPath = igPath(sub, agent, 'status');
  connectPath = igPath(sub, agent, 'connect');
});

const unauthenticated = (res: { status: number; body: { error: { code: string } } }) => {
  expect(res.status).toBe(401);
  expect(res.body.error.code).toBe('UNAUTHORIZED');
};

describe('when the bearer token is missing or not trustworthy, then 401', () => {
  test('no Authorization header', async () => unauthenticated(await t.http().get(statusPath)));

  test('malformed token', async () =>
    unauthenticated(await t.http().get(statusPath).set(bearer('not.a.jwt'))));

  test('signed with another secret', async () => {
    const forged = jwt.sign({ userId: 'x', role: 'super_admin' }, 'some-other-secret-value', {
      algorithm: 'HS256',
    });
    unauthenticated(await t.http().get(statusPath).set(bearer(forged)));
  });

  test('alg none', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ userId: 'x', role: 'super_admin' })).toString('base64url');
    unauthenticated(
      await t
        .http()
        .get(statusPath)
        .set(bearer(`${header}.${payload}.`)),
    );
  });

  test('HS512 with the right secret is still refused (HS256 only)', async () => {
    const other = jwt.sign({ userId: 'x', role: 'super_admin' }, TEST_JWT_SECRET, { algorithm: 'HS512' });
    unauthenticated(await t.http().get(statusPath).set(bearer(other)));
  });

  test('expired', async () => {
    const expired = tokenFor({ role: 'super_admin' }, { expiresIn: -10 });
    const res = await t.http().get(statusPath).set(bearer(expired));
    unauthenticated(res);
    expect(res.body.error.message).toMatch(/expired/);
  });

  test('no role claim', async () => {
    const noRole = jwt.sign({ userId: 'x' }, TEST_JWT_SECRET, { algorithm: 'HS256' });
    unauthenticated(await t.http().get(statusPath).set(bearer(noRole)));
  });
});

describe('when the token is valid but does not reach, then 403', () => {
  test('a token for another subaccount', async () => {
    const res = await t
      .http()
      .get(statusPath)
      .set(bearer(tokenFor({ role: 'admin', subaccountIds: ['65f000000000000000000000'] })));
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ success: false, error: { code: 'FORBIDDEN', message: expect.any(String) } });
  });

  test('a user may not connect (admin role needed)', async () => {
    const res = await t
      .http()
      .post(connectPath)
      .set(bearer(tokenFor({ role: 'user', subaccountIds: [sub] })))
      .send({});
    expect(res.status).toBe(403);
  });

  test('403 comes before 404: no access to an unknown subaccount says nothing about it', async () => {
    const res = await t
      .http()
      .get(igPath('65f0000000000000000000ff', agent, 'status'))
      .set(bearer(tokenFor({ role: 'admin', subaccountIds: [sub] })));
    expect(res.status).toBe(403);
  });
});

describe('when the token reaches the subaccount, then the route runs', () => {
  test('super_admin reaches any subaccount without listing it', async () => {
    const res = await t
      .http()
      .get(statusPath)
      .set(bearer(tokenFor({ role: 'super_admin' })));
    expect([401, 403, 404]).not.toContain(res.status);
  });

  test('a user listed on the subaccount may read; `id` is accepted for userId', async () => {
    const token = jwt.sign({ id: 'u1', role: 'user', subaccountIds: [sub] }, TEST_JWT_SECRET, {
      algorithm: 'HS256',
    });
    const res = await t.http().get(statusPath).set(bearer(token));
    expect([401, 403, 404]).not.toContain(res.status);
  });
});
