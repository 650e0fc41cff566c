import type { Connection } from 'mongoose';
import {
  ConversationsRepo,
  RECENCY_PAGE_SIZE,
  type ConversationRow,
} from '../../src/chats/conversations.repo';
import { dropTestDatabase, openTestDatabase } from '../setup/db';

/** The per-user summary rows, against the run's real database server. */
let db: Connection;
const conversations = new ConversationsRepo();
beforeAll(async () => {
  db = await openTestDatabase('conversations');
});
afterAll(() => dropTestDatabase(db));

test('when turns, a pause and a username are written to one row at once, then none of the writes is lost', async () => {
  const at = (i: number) => new Date(Date.UTC(2026, 10, 21, 10, 0, i));
  const until = new Date(Date.now() + 3_600_000);

  await Promise.all([
    ...Array.from({ length: 30 }, (_, i) =>
      conversations.recordTurn(db, 'agent_1', 'u1', {
        role: i % 2 ? 'agent' : 'user',
        text: `t${i}`,
        at: at(i),
      }),
    ),
    conversations.extendPause(db, 'agent_1', 'u1', until),
    conversations.setUsername(db, 'agent_1', 'u1', 'jane'),
    conversations.setChat(db, 'agent_1', 'u1', 'chat_1'),
  ]);

  expect(await conversations.get(db, 'agent_1', 'u1')).toMatchObject({
    messageCount: 30,
    lastMessage: 't29',
    lastMessageAt: at(29),
    lastInboundAt: at(28),
    aiPausedUntil: until,
    username: 'jane',
    chatId: 'chat_1',
  });
});

describe('recency pages', () => {
  const minute = (i: number) => new Date(Date.UTC(2026, 10, 20, 0, i));
  const listAll = async (agentId: string, limit: number) => {
    const seen: string[] = [];
    let before: Awaited<ReturnType<ConversationsRepo['page']>>['next'];
    do {
      const page = await conversations.page(db, agentId, { limit, before });
      seen.push(...page.rows.map((r) => r.userId));
      before = page.next;
    } while (before);
    return seen;
  };

  test('when more users wrote than one recency page holds, then paging lists each user once, most recent first, and a user who writes again moves to the top', async () => {
    const users = Array.from({ length: RECENCY_PAGE_SIZE * 2 + 7 }, (_, i) => `u${i}`);
    for (const [i, u] of users.entries())
      await conversations.recordTurn(db, 'agent_r', u, { role: 'user', text: 'hi', at: minute(i) });

    expect(await listAll('agent_r', 7)).toEqual([...users].reverse());

    await conversations.recordTurn(db, 'agent_r', 'u3', { role: 'user', text: 'again', at: minute(500) });
    const after = await listAll('agent_r', 20);
    expect(after[0]).toBe('u3');
    expect(after).toHaveLength(users.length);
    expect(new Set(after).size).toBe(users.length);
  });

  const listed = async (agentId: string) => {
    const rows: Awaited<ReturnType<ConversationsRepo['page']>>['rows'] = [];
    let before: Awaited<ReturnType<ConversationsRepo['page']>>['next'];
    do {
      const page = await conversations.page(db, agentId, { limit: 30, before });
      rows.push(...page.rows);
      before = page.next;
    } while (before);
    return rows;
  };
  const summaryOf = (r: Partial<ConversationRow> | undefined) => ({
    userId: r?.userId,
    username: r?.username,
    lastMessage: r?.lastMessage,
    lastMessageAt: r?.lastMessageAt,
    lastInboundAt: r?.lastInboundAt,
    messageCount: r?.messageCount,
    aiPausedUntil: r?.aiPausedUntil,
  });

  test('when many users write at once, then each is listed once with what its row says', async () => {
    const users = Array.from({ length: RECENCY_PAGE_SIZE * 2 + 20 }, (_, i) => `c${i}`);
    await Promise.all(
      users.flatMap((u, i) => [
        conversations.recordTurn(db, 'agent_c', u, { role: 'user', text: `q ${u}`, at: minute(i) }),
        conversations.recordTurn(db, 'agent_c', u, { role: 'agent', text: `a ${u}`, at: minute(i + 1) }),
      ]),
    );

    const rows = await listed('agent_c');
    expect(rows.map((r) => r.userId).sort()).toEqual([...users].sort());
    for (const r of rows)
      expect(summaryOf(r)).toEqual(summaryOf(await conversations.get(db, 'agent_c', r.userId)));
    // Moves that queued together went out as one head write, at most a page of users each: no page holds
    // two pages' worth.
    const pages = await db
      .collection<{ s?: object }>('instagram_conversation_recency')
      .find({ agent: 'agent_c' })
      .toArray();
    for (const p of pages) expect(Object.keys(p.s ?? {}).length).toBeLessThan(2 * RECENCY_PAGE_SIZE);
  });

  test('when a listed user is paused, resumed or named, then the listing shows it and the order stays', async () => {
    const users = Array.from({ length: RECENCY_PAGE_SIZE + 10 }, (_, i) => `p${i}`);
    for (const [i, u] of users.entries())
      await conversations.recordTurn(db, 'agent_p', u, { role: 'user', text: 'hi', at: minute(i) });
    const order = (await listed('agent_p')).map((r) => r.userId);
    const until = new Date(Date.now() + 3_600_000);

    await conversations.setPause(db, 'agent_p', 'p1', until); // in an older page
    await conversations.extendPause(db, 'agent_p', 'p58', until); // in the head
    await conversations.setUsername(db, 'agent_p', 'p2', 'jane');
    await conversations.setPause(db, 'agent_p', 'p3', until);
    await conversations.setPause(db, 'agent_p', 'p3', undefined);

    const rows = await listed('agent_p');
    expect(rows.map((r) => r.userId)).toEqual(order);
    const byUser = new Map(rows.map((r) => [r.userId, r]));
    expect(byUser.get('p1')?.aiPausedUntil).toEqual(until);
    expect(byUser.get('p58')?.aiPausedUntil).toEqual(until);
    expect(byUser.get('p2')?.username).toBe('jane');
    expect(byUser.get('p3')?.aiPausedUntil).toBeUndefined();
  });

  test('when first turns and pauses of many users are written at once, then every listed user shows its pause', async () => {
    const users = Array.from({ length: 60 }, (_, i) => `f${i}`);
    const until = new Date(Date.now() + 3_600_000);
    await Promise.all(
      users.flatMap((u, i) => [
        conversations.recordTurn(db, 'agent_f', u, { role: 'user', text: 'hi', at: minute(i) }),
        conversations.setPause(db, 'agent_f', u, until),
      ]),
    );

    const rows = await listed('agent_f');
    expect(rows.map((r) => r.userId).sort()).toEqual([...users].sort());
    expect(rows.filter((r) => r.aiPausedUntil?.getTime() !== until.getTime()).map((r) => r.userId)).toEqual(
      [],
    );
  });

  test('when the pages are rebuilt from the rows, then the listing is the same', async () => {
    const before = await listAll('agent_r', 50);

    await conversations.rebuildRecency(db, 'agent_r');

    expect(await listAll('agent_r', 50)).toEqual(before);
  });
});
