import { startHarness, type ConnectedAgent, type Harness } from '../setup/harness';
import { anAttachmentDm } from '../factories/instagram';
import { HOUR, storedTurns } from '../factories/turns';
import { userOf } from '../setup/tokens';
import type { TurnRole } from '../../src/chats/chats.repo';

let h: Harness;
let shared: ConnectedAgent; // for tests that store nothing
beforeAll(async () => {
  h = await startHarness();
  shared = await h.connectAgent();
});
afterAll(() => h.close());

const get = (a: ConnectedAgent, query: string) =>
  h.t
    .http()
    .get(a.path(`messages${query}`))
    .set(userOf(a.sub.id));

interface Item {
  messageId: string;
  timestamp: string;
  userId: string;
}

/** Follows nextCursor from the first page to the last, calling `between` before each next page. */
async function allPages(a: ConnectedAgent, query: string, between?: (page: number) => Promise<void>) {
  const pages: Item[][] = [];
  let cursor: string | null = null;
  do {
    const res = await get(a, `?${query}${cursor ? `&before=${encodeURIComponent(cursor)}` : ''}`);
    expect(res.status).toBe(200);
    pages.push(res.body.data.messages);
    cursor = res.body.data.nextCursor;
    if (cursor && between) await between(pages.length);
  } while (cursor && pages.length < 100);
  return pages;
}

/**
 * 30 turns over three visitors, oldest first, with some sharing a timestamp. Returns them newest first, as
 * /messages must list them: in record order, the last recorded first.
 */
async function thirtyTurns(a: ConnectedAgent): Promise<{ ids: string[]; users: string[] }> {
  const names = ['ann', 'bob', 'cy'];
  const users = names.map((n) => h.aVisitor(n));
  const base = Date.now() - 2 * HOUR;
  const written: string[] = [];
  for (let i = 0; i < 30; i++) {
    const role: TurnRole = i % 2 ? 'agent' : 'user';
    const at = base + Math.floor(i / 3) * 1000; // three turns per second: ties
    const { messageIds } = await storedTurns(h, a, users[i % 3]!, [{ role, content: `turn ${i}`, at }], {
      username: names[i % 3],
    });
    written.push(messageIds[0]!);
  }
  // Newest first is the reverse of the order they were recorded in, ties in time included.
  return { ids: written.reverse(), users };
}

test('when paging with limit=2 through 30 turns, then each turn is visited exactly once, newest (last recorded) first', async () => {
  const a = await h.connectAgent();
  const { ids } = await thirtyTurns(a);

  const pages = await allPages(a, 'limit=2');

  expect(pages).toHaveLength(15);
  expect(pages.every((p) => p.length === 2)).toBe(true);
  expect(pages.flat().map((m) => m.messageId)).toEqual(ids);
});

test('when new turns are written between page requests, then the pages still visit each earlier turn exactly once, without gaps', async () => {
  const a = await h.connectAgent();
  const { ids, users } = await thirtyTurns(a);
  const later: string[] = [];

  const pages = await allPages(a, 'limit=2', async (page) => {
    // New DMs and replies arrive while the operator scrolls back.
    const { messageIds } = await storedTurns(h, a, users[page % 3]!, [
      { role: 'user', content: `new ${page}` },
      { role: 'agent', content: `reply ${page}` },
    ]);
    later.push(...messageIds);
  });

  const seen = pages.flat().map((m) => m.messageId);
  expect(seen).toEqual(ids);
  expect(seen.some((id) => later.includes(id))).toBe(false);
  // …and a fresh first page starts with the newest of them.
  const first = await get(a, '?limit=2');
  expect(first.body.data.messages.map((m: Item) => m.messageId)).toEqual([later.at(-1), later.at(-2)]);
});

test('when filtered by userId, then only that visitor’s turns are listed, each item in the contract’s shape', async () => {
  const a = await h.connectAgent();
  const { users } = await thirtyTurns(a);

  const pages = await allPages(a, `userId=${users[1]}&limit=3`);

  const items = pages.flat() as unknown as Record<string, unknown>[];
  expect(items).toHaveLength(10);
  expect(new Set(items.map((m) => m.userId))).toEqual(new Set([users[1]]));
  expect(Object.keys(items[0]!).sort()).toEqual(
    [
      'attachments',
      'chatId',
      'content',
      'messageId',
      'role',
      'status',
      'timestamp',
      'userId',
      'username',
    ].sort(),
  );
  expect(items[0]).toMatchObject({
    username: 'bob',
    chatId: expect.any(String),
    attachments: [],
    timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
  });
  const timestamps = items.map((m) => Date.parse(m.timestamp as string));
  expect([...timestamps].sort((x, y) => y - x)).toEqual(timestamps);
});

test('when a turn is recorded after later ones (an older timestamp), then it is listed by record order: first', async () => {
  const a = await h.connectAgent();
  const visitor = h.aVisitor('late');
  const now = Date.now();
  const { messageIds } = await storedTurns(h, a, visitor, [
    { role: 'user', content: 'second', at: now - 1000 },
    { role: 'agent', content: 'third', at: now },
    { role: 'user', content: 'first, recorded late', at: now - 2000 },
  ]);

  const res = await get(a, '');

  expect(res.body.data.messages.map((m: Item) => m.messageId)).toEqual([...messageIds].reverse());
});

test('when a visitor sent an attachment through the webhook, then /messages lists it with its attachments and status received', async () => {
  const a = await h.connectAgent();
  const visitor = h.aVisitor('pic_sender');
  const url = 'https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1';
  await h.deliver(a, [anAttachmentDm('image', url, { userId: visitor, accountId: a.accountId })]);
  await h.drain();

  const res = await get(a, `?userId=${visitor}`);

  const user = res.body.data.messages.find((m: { role: string }) => m.role === 'user');
  expect(user).toMatchObject({ userId: visitor, status: 'received', attachments: [{ type: 'image', url }] });
  expect(res.body.data.nextCursor).toBeNull();
});

test('when nothing was stored yet, then an empty page with no cursor', async () => {
  const a = await h.connectAgent();
  const res = await get(a, '');
  expect(res.status).toBe(200);
  expect(res.body.data).toEqual({ messages: [], nextCursor: null });
});

test.each([
  ['limit=0', 'query.limit'],
  ['limit=201', 'query.limit'],
  ['limit=abc', 'query.limit'],
  ['limit=2.5', 'query.limit'],
  ['before=not-a-cursor', 'query.before'],
  ['userId=jane', 'query.userId'],
  ['userId[$gt]=', 'query.userId[$gt]'],
  ['sort=asc', 'query.sort'],
])('when the query has %s, then 400 VALIDATION_ERROR naming %s', async (query, field) => {
  const res = await get(shared, `?${query}`);
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe('VALIDATION_ERROR');
  expect(res.body.error.details.map((d: { field: string }) => d.field)).toContain(field);
});
