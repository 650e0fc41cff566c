import { startHarness, type ConnectedAgent, type Harness } from '../setup/harness';
import { anInstagramDm } from '../factories/instagram';
import { HOUR, storedTurns } from '../factories/turns';
import { userOf } from '../setup/tokens';
import { PREVIEW_LENGTH } from '../../src/chats/conversations.repo';

let h: Harness;
let shared: ConnectedAgent; // for tests that store nothing
beforeAll(async () => {
  h = await startHarness();
  shared = await h.connectAgent();
});
afterAll(() => h.close());

const get = (a: ConnectedAgent, query = '') =>
  h.t
    .http()
    .get(a.path(`conversations${query}`))
    .set(userOf(a.sub.id));
const iso = (ms: number) => new Date(ms).toISOString();

test('when three visitors wrote at different times, then one row each, most recent first, with the right 24-hour window state', async () => {
  const a = await h.connectAgent();
  const now = Date.now();
  const open = h.aVisitor('open_23h');
  const closed = h.aVisitor('closed_25h');
  const fresh = h.aVisitor('fresh');
  await storedTurns(h, a, closed, [{ role: 'user', content: 'old question', at: now - 25 * HOUR }], {
    username: 'closed_25h',
  });
  await storedTurns(
    h,
    a,
    open,
    [
      { role: 'user', content: 'first', at: now - 23 * HOUR - 1000 },
      { role: 'user', content: 'question', at: now - 23 * HOUR },
      { role: 'agent', content: 'our answer', at: now - 22 * HOUR },
    ],
    { username: 'open_23h' },
  );
  await h.deliver(a, [anInstagramDm({ userId: fresh, accountId: a.accountId, text: 'Hi there' })]);
  await h.drain(); // the DM and the agent's reply, through the pipeline

  const res = await get(a);

  expect(res.status).toBe(200);
  const rows = res.body.data.conversations;
  expect(rows.map((r: { userId: string }) => r.userId)).toEqual([fresh, open, closed]);
  expect(rows[0]).toMatchObject({
    username: 'fresh',
    lastMessage: 'Echo: Hi there',
    windowOpen: true,
    messageCount: 2,
    aiPausedUntil: null,
  });
  expect(rows[1]).toEqual({
    userId: open,
    username: 'open_23h',
    lastMessage: 'our answer',
    lastMessageRole: 'agent',
    lastMessageAt: iso(now - 22 * HOUR),
    lastInboundAt: iso(now - 23 * HOUR),
    windowOpen: true,
    windowExpiresAt: iso(now + HOUR),
    messageCount: 3,
    aiPausedUntil: null,
  });
  expect(rows[2]).toMatchObject({
    userId: closed,
    lastInboundAt: iso(now - 25 * HOUR),
    windowOpen: false,
    windowExpiresAt: iso(now - HOUR),
    messageCount: 1,
  });
  expect(res.body.data.nextCursor).toBeNull();
});

test('when messages are long, then previews are never longer than PREVIEW_LENGTH characters and never cut an emoji in half', async () => {
  const a = await h.connectAgent();
  const long = 'Hello! '.repeat(50) + 'end';
  const emoji = '👍🏽'.repeat(80);
  await storedTurns(h, a, h.aVisitor(), [{ role: 'user', content: long }]);
  await storedTurns(h, a, h.aVisitor(), [{ role: 'user', content: emoji }]);
  await storedTurns(h, a, h.aVisitor(), [{ role: 'user', content: 'line one\n\n   line two' }]);

  const res = await get(a);

  const previews: string[] = res.body.data.conversations.map((r: { lastMessage: string }) => r.lastMessage);
  expect(previews).toHaveLength(3);
  for (const p of previews) expect(Array.from(p).length).toBeLessThanOrEqual(PREVIEW_LENGTH);
  expect(previews).toContain('line one line two');
  const cut = previews.find((p) => p.startsWith('Hello!'))!;
  expect(cut.endsWith('…')).toBe(true);
  expect(long.replace(/\s+/g, ' ').startsWith(cut.slice(0, -1))).toBe(true);
  const emojiPreview = previews.find((p) => p.startsWith('👍'))!;
  expect(emojiPreview).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/); // no lone high surrogate
});

test('when paging with limit=2 through five conversations, then each appears exactly once, most recent first', async () => {
  const a = await h.connectAgent();
  const now = Date.now();
  const users: string[] = [];
  for (let i = 0; i < 5; i++) {
    const u = h.aVisitor();
    users.push(u);
    // The last two share a last-message time: the order between them rests on the tie-breaker (userId).
    await storedTurns(h, a, u, [{ role: 'user', at: now - HOUR + Math.min(i, 3) * 1000 }]);
  }
  const pageThrough = async (between?: () => Promise<void>) => {
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const res = await get(a, `?limit=2${cursor ? `&before=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      pages.push(res.body.data.conversations.map((r: { userId: string }) => r.userId));
      cursor = res.body.data.nextCursor;
      if (cursor) await between?.();
    } while (cursor);
    return pages;
  };

  // Tied rows come in descending userId order.
  const tied = [users[3]!, users[4]!].sort((x, y) => (x < y ? 1 : -1));
  expect(await pageThrough()).toEqual([tied, [users[2], users[1]], [users[0]]]);

  // A visitor further down writes again while the operator pages: the row moves to the top (seen on the
  // next first page) and never shows up twice.
  let wrote = false;
  const pages = await pageThrough(async () => {
    if (!wrote) await storedTurns(h, a, users[1]!, [{ role: 'user' }]);
    wrote = true;
  });
  expect(pages).toEqual([tied, [users[2], users[0]]]);
  const first = await get(a, '?limit=2');
  expect(first.body.data.conversations[0].userId).toBe(users[1]);
});

test.each([
  ['limit=0', 'query.limit'],
  ['limit=201', 'query.limit'],
  ['before=xyz', 'query.before'],
  ['userId=123', 'query.userId'],
])('when the query has %s, then 400 VALIDATION_ERROR naming %s', async (query, field) => {
  const res = await get(shared, `?${query}`);
  expect(res.status).toBe(400);
  expect(res.body.error.details.map((d: { field: string }) => d.field)).toContain(field);
});

test('when nobody wrote yet, then an empty list', async () => {
  const res = await get(shared);
  expect(res.body).toEqual({ success: true, data: { conversations: [], nextCursor: null } });
});

test('when an older turn is recorded after a newer one, then the preview and times stay on the newer one', async () => {
  const a = await h.connectAgent();
  const u = h.aVisitor();
  const now = Date.now();
  await storedTurns(h, a, u, [
    { role: 'user', content: 'the newest words', at: now - 1000 },
    { role: 'agent', content: 'an older answer recorded late', at: now - 60_000 },
  ]);
  const row = (await get(a, '')).body.data.conversations.find((r: { userId: string }) => r.userId === u);
  expect(row).toMatchObject({ lastMessage: 'the newest words', messageCount: 2 });
  expect(new Date(row.lastMessageAt).getTime()).toBe(now - 1000);
  expect(new Date(row.lastInboundAt).getTime()).toBe(now - 1000);
});
