import type { Connection } from 'mongoose';
import { connectPlatform } from '../../src/db/mongo';
import { testDbUri, uniqueName } from '../setup/db';

/** How many connections the process opens to its database: ours by default, the operator's when set. */
const opened: Connection[] = [];
afterAll(() => Promise.all(opened.map((c) => c.close())));

const poolOf = async (uri: string, opts?: { maxPoolSize?: number }) => {
  const conn = await connectPlatform(uri, opts);
  opened.push(conn);
  await conn.db!.admin().ping();
  return conn.getClient().options.maxPoolSize;
};

const uri = () => testDbUri(uniqueName('pool'));
const withParam = (u: string, param: string) => `${u}${u.includes('?') ? '&' : '?'}${param}`;

test('without a maxPoolSize in the URI, then the pool holds 50 connections, or what the caller asks', async () => {
  expect(await poolOf(uri())).toBe(50);
  expect(await poolOf(uri(), { maxPoolSize: 2 })).toBe(2);
});

test("when the URI sets maxPoolSize, then it wins over the process's own choice", async () => {
  expect(await poolOf(withParam(uri(), 'maxPoolSize=3'))).toBe(3);
  expect(await poolOf(withParam(uri(), 'maxPoolSize=7'), { maxPoolSize: 2 })).toBe(7);
});
