import { mongo, type Connection } from 'mongoose';
import {
  entryOf,
  itemOf,
  messageLayout as L,
  MessagesRepo,
  PAGE_SIZE,
  type Cursor,
  type MessageRow,
  type NewMessage,
} from '../../src/chats/messages.repo';
import { dropTestDatabase, openTestDatabase } from '../setup/db';

/** The messages index (rows, stream heads, pages), against the run's real database server. */
let db: Connection;
const repo = new MessagesRepo();
let agentCounter = 0;
const anAgent = () => `agent_${++agentCounter}_${Date.now().toString(36)}`;
beforeAll(async () => {
  db = await openTestDatabase('messages');
});
afterAll(() => dropTestDatabase(db));

const t0 = Date.UTC(2026, 10, 21, 10, 0, 0);
function aTurn(agentId: string, userId: string, i: number, o: Partial<NewMessage> = {}): NewMessage {
  return {
    agentId,
    userId,
    chatId: `chat_${userId}`,
    messageId: `ig_${userId}_${i}`,
    role: i % 2 ? 'agent' : 'user',
    content: `turn ${i}`,
    attachments: [],
    timestamp: new Date(t0 + i * 1000),
    status: i % 2 ? 'sent' : 'received',
    ...o,
  };
}

/** Every turn of a listing, following the cursors with this page size; also checks each page's size. */
async function listAll(agentId: string, limit: number, userId?: string): Promise<string[]> {
  const ids: string[] = [];
  let before: Cursor | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const { rows, next } = await repo.page(db, agentId, { userId, limit, before });
    if (next) expect(rows).toHaveLength(limit);
    ids.push(...rows.map((r) => r.messageId));
    if (!next) return ids;
    before = next;
  }
  throw new Error('the cursors never ended');
}

/** The collection of a stream's head or page. */
const streamDocs = (docId: string) =>
  db.collection<{ _id: string; n?: number; items?: string[] }>(`instagram_message_streams_${L.shard(docId)}`);
const bumpHead = (stream: string, by: number) =>
  streamDocs(L.headId(stream)).updateOne({ _id: L.headId(stream) }, { $inc: { n: by } });

/** The head of a stream as stored. */
const headOf = async (stream: string) => streamDocs(L.headId(stream)).findOne({ _id: L.headId(stream) });

/** Takes the turn's entry out of a stream's head (and its seq with it): as if it had never been pushed. */
async function unlist(stream: string, row: NewMessage): Promise<void> {
  const _id = L.headId(stream);
  const res = await streamDocs(_id).updateOne({ _id }, { $pull: { items: entryOf(row) }, $inc: { n: -1 } });
  expect(res.modifiedCount).toBe(1);
}

test('when the same turn is inserted again, then it is listed once and only the first insert returns true', async () => {
  const agentId = anAgent();
  const turn = aTurn(agentId, '111', 0);

  const results = [await repo.insert(db, turn), await repo.insert(db, turn), await repo.insert(db, turn)];

  expect(results).toEqual([true, false, false]);
  expect(await listAll(agentId, 10)).toEqual([turn.messageId]);
  expect(await listAll(agentId, 10, '111')).toEqual([turn.messageId]);
  expect(await repo.has(db, agentId, turn.messageId)).toBe(true);
  expect(await repo.has(db, agentId, 'ig_never_recorded')).toBe(false);
});

test('when a turn is recorded with the username known then, then it is listed with it, and a repeat that knows another keeps the first', async () => {
  const agentId = anAgent();
  const named = aTurn(agentId, '222', 0, { username: 'jane' });
  const unnamed = aTurn(agentId, '222', 1);

  await repo.insert(db, unnamed);
  await repo.insert(db, named);
  await repo.insert(db, { ...named, username: 'jane_renamed' }); // a retry after the profile changed

  const { rows } = await repo.page(db, agentId, { limit: 10 });
  expect(rows.map((r) => [r.messageId, r.username])).toEqual([
    [named.messageId, 'jane'],
    [unnamed.messageId, undefined],
  ]);
  expect((await repo.page(db, agentId, { userId: '222', limit: 10 })).rows).toHaveLength(2);
});

test('when ids contain the separator, then the streams of different agents and users never mix', async () => {
  const suffix = Date.now().toString(36);
  const one = aTurn(`ag${suffix}:1`, '2', 0, { messageId: 'ig_same' });
  const other = aTurn(`ag${suffix}`, '1:2', 0, { messageId: 'ig_same' });

  expect(await repo.insert(db, one)).toBe(true);
  expect(await repo.insert(db, other)).toBe(true);

  const listed = async (agentId: string, userId?: string) =>
    (await repo.page(db, agentId, { limit: 10, userId })).rows.map((r) => [r.agentId, r.userId]);
  expect(await listed(one.agentId)).toEqual([[one.agentId, '2']]);
  expect(await listed(one.agentId, '2')).toEqual([[one.agentId, '2']]);
  expect(await listed(other.agentId, '1:2')).toEqual([[other.agentId, '1:2']]);
});

test('when the same turn is inserted three times at once, then exactly one insert returns true and it is listed once', async () => {
  const agentId = anAgent();
  await repo.insert(db, aTurn(agentId, '111', 0));
  const turn = aTurn(agentId, '111', 1);

  const results = await Promise.all([1, 2, 3].map(() => repo.insert(db, turn)));

  expect(results.filter(Boolean)).toHaveLength(1);
  expect(await listAll(agentId, 1)).toEqual([turn.messageId, 'ig_111_0']);
  expect(await listAll(agentId, 1, '111')).toEqual([turn.messageId, 'ig_111_0']);
});

test('when the process died after storing the row and before listing it, then the retry lists the turn once, as recorded then', async () => {
  const agentId = anAgent();
  const turns = [0, 1, 2].map((i) => aTurn(agentId, '222', i));
  await repo.insert(db, turns[0]!);
  await repo.claim(db, turns[1]!); // the row is stored, neither stream lists it
  await repo.insert(db, turns[2]!);
  expect(await listAll(agentId, 10)).toEqual(['ig_222_2', 'ig_222_0']);

  expect(await repo.insert(db, turns[1]!)).toBe(false);

  // Listed where it was recorded in the end: record order, not Meta's timestamps.
  expect(await listAll(agentId, 10)).toEqual(['ig_222_1', 'ig_222_2', 'ig_222_0']);
  expect(await listAll(agentId, 1, '222')).toEqual(['ig_222_1', 'ig_222_2', 'ig_222_0']);
  expect(await repo.insert(db, turns[1]!)).toBe(false);
  expect(await listAll(agentId, 10)).toHaveLength(3);
});

test('when the process died between the two head writes, then the retry completes the other stream and duplicates neither', async () => {
  const agentId = anAgent();
  const turn = aTurn(agentId, '333', 0);
  await repo.insert(db, turn);
  await unlist(L.userStream(agentId, '333'), turn);
  expect(await listAll(agentId, 10, '333')).toEqual([]);

  await repo.insert(db, turn);

  expect(await listAll(agentId, 10)).toEqual([turn.messageId]);
  expect(await listAll(agentId, 10, '333')).toEqual([turn.messageId]);
  expect((await headOf(L.agentStream(agentId)))?.items).toEqual([entryOf(turn)]);
});

test('when a stream passes PAGE_SIZE turns, then its head is rolled into pages and every turn is still listed once, in order', async () => {
  const agentId = anAgent();
  const turns = Array.from({ length: PAGE_SIZE * 2 + 7 }, (_, i) => aTurn(agentId, '123', i));
  for (const t of turns) await repo.insert(db, t);

  const head = await headOf(L.agentStream(agentId));
  expect(head?.n).toBe(turns.length);
  expect(head?.items?.length).toBeLessThan(PAGE_SIZE);
  const page0 = L.pageId(L.agentStream(agentId), 0);
  expect((await streamDocs(page0).findOne({ _id: page0 }))?.items).toContain(itemOf(1, entryOf(turns[0]!)));
  const newestFirst = turns.map((t) => t.messageId).reverse();
  for (const limit of [1, 13, PAGE_SIZE, 500]) expect(await listAll(agentId, limit)).toEqual(newestFirst);
  expect(await listAll(agentId, 9, '123')).toEqual(newestFirst);
});

test('when a roll stopped after writing the pages, before emptying the head, then each turn is listed once and the next roll completes it', async () => {
  const agentId = anAgent();
  const stream = L.agentStream(agentId);
  for (let i = 0; i < 10; i++) await repo.insert(db, aTurn(agentId, '124', i));
  // What the roll writes first: every head entry to its page, with its seq.
  const head = (await headOf(stream))!;
  const page0 = L.pageId(stream, 0);
  const items = head.items!.map((e, i) => itemOf(head.n! - head.items!.length + 1 + i, e));
  await streamDocs(page0).updateOne(
    { _id: page0 },
    { $addToSet: { items: { $each: items } } },
    { upsert: true },
  );

  const expected = Array.from({ length: 10 }, (_, i) => `ig_124_${9 - i}`);
  expect(await listAll(agentId, 3)).toEqual(expected);

  const more = Array.from({ length: PAGE_SIZE }, (_, i) => aTurn(agentId, '124', 10 + i));
  for (const t of more) await repo.insert(db, t);
  expect(await listAll(agentId, 7)).toEqual([...more.map((t) => t.messageId).reverse(), ...expected]);
  const page0Items = (await streamDocs(page0).findOne({ _id: page0 }))!.items!;
  expect(new Set(page0Items).size).toBe(page0Items.length); // the roll added no item twice
});

test('when pages were written by an earlier version (both seqs in each item), then they are listed with the turns recorded since', async () => {
  const agentId = anAgent();
  const old = [0, 1, 2].map((i) => aTurn(agentId, '125', i));
  // The earlier layout: the heads hold only `n`, each page item `[seqAll, seqUser, ...entry]` in both streams.
  for (const stream of [L.agentStream(agentId), L.userStream(agentId, '125')]) {
    const pageId = L.pageId(stream, 0);
    await streamDocs(pageId).insertOne({
      _id: pageId,
      items: old.map((t, i) => `[${i + 1},${i + 1},${entryOf(t).slice(1)}`),
    });
    await streamDocs(L.headId(stream)).insertOne({ _id: L.headId(stream), n: 3 });
  }
  await repo.insert(db, aTurn(agentId, '125', 3));

  const expected = ['ig_125_3', 'ig_125_2', 'ig_125_1', 'ig_125_0'];
  expect(await listAll(agentId, 2)).toEqual(expected);
  expect(await listAll(agentId, 2, '125')).toEqual(expected);
});

test('when seqs were handed out and never used (gaps, even whole pages), then paging still visits every turn once, newest first', async () => {
  const agentId = anAgent();
  const written: string[] = [];
  for (let i = 0; i < 130; i++) {
    const user = String(100 + (i % 3));
    const turn = aTurn(agentId, user, i, { messageId: `ig_gap_${i}` });
    await repo.insert(db, turn);
    written.push(turn.messageId);
    // Seqs a crashed or repeated insert took: a few, and once more than a whole page.
    const skip = i === 60 ? PAGE_SIZE * 2 + 3 : i % 7 === 0 ? 2 : 0;
    if (skip) {
      await bumpHead(L.agentStream(agentId), skip);
      await bumpHead(L.userStream(agentId, user), skip);
    }
  }
  const newestFirst = [...written].reverse();

  for (const limit of [1, 7, PAGE_SIZE, 200]) expect(await listAll(agentId, limit)).toEqual(newestFirst);
  expect(await listAll(agentId, 4, '101')).toEqual(newestFirst.filter((id) => Number(id.slice(7)) % 3 === 1));
});

test('when turns are recorded after the first page was read, then the next pages still continue where it ended', async () => {
  const agentId = anAgent();
  for (let i = 0; i < 70; i++) await repo.insert(db, aTurn(agentId, '444', i));

  const first = await repo.page(db, agentId, { limit: 30 });
  for (let i = 70; i < 75; i++) await repo.insert(db, aTurn(agentId, '444', i));
  const rest = await repo.page(db, agentId, { limit: 100, before: first.next });

  const ids = [...first.rows, ...rest.rows].map((r) => r.messageId);
  expect(ids).toEqual(Array.from({ length: 70 }, (_, i) => `ig_444_${69 - i}`));
  expect(rest.next).toBeUndefined();
});

test('when many turns of one agent are recorded at once, then none is lost from either stream', async () => {
  const agentId = anAgent();
  const turns = Array.from({ length: 120 }, (_, i) => aTurn(agentId, String(500 + (i % 4)), i));

  const results = await Promise.all(turns.map((t) => repo.insert(db, t)));

  expect(results.every(Boolean)).toBe(true);
  const listed = await listAll(agentId, 25);
  expect([...listed].sort()).toEqual(turns.map((t) => t.messageId).sort());
  for (const user of ['500', '501', '502', '503']) expect(await listAll(agentId, 200, user)).toHaveLength(30);
});

test('when rows are imported in bulk, then the rows and every listing are exactly what one insert per turn writes', async () => {
  const reference = await openTestDatabase('messages_import');
  try {
    const agentId = anAgent();
    const turns = Array.from({ length: 140 }, (_, i) =>
      aTurn(agentId, String(700 + Math.floor(i / 50)), i, {
        // each optional field both present and absent
        ...(i % 5 === 0 ? { instagramMid: `mid_${i}` } : {}),
        ...(i % 11 === 0 ? { status: 'failed' as const, error: 'Meta refused' } : {}),
        ...(i % 13 === 0
          ? { attachments: [{ type: 'image', url: `https://x.test/${i}` }, { type: 'audio' }] }
          : {}),
      }),
    );
    // Three turns recorded one by one, then two batches: the first repeats an already recorded turn,
    // the second continues pages the first one began.
    for (const t of turns.slice(0, 3)) await repo.insert(db, t);
    expect(await repo.importRows(db, turns.slice(2, 61))).toBe(58);
    expect(await repo.importRows(db, turns.slice(61))).toBe(79);
    // The same turns through `insert`, the repeat included.
    for (const t of [...turns.slice(0, 3), ...turns.slice(2)]) await repo.insert(reference, t);

    expect(await dump(db, 'instagram_messages', agentId)).toEqual(
      await dump(reference, 'instagram_messages', agentId),
    );
    const newestFirst = turns.map((t) => t.messageId).reverse();
    for (const c of [db, reference]) {
      const all = await listAllOn(c, agentId, 9);
      expect(all.map((r) => r.messageId)).toEqual(newestFirst);
      expect(all.map((r) => r.seq.all)).toEqual(turns.map((_, i) => turns.length - i)); // no gaps
      expect((await listAllOn(c, agentId, 9, '701')).map((r) => r.messageId)).toEqual(
        turns
          .slice(50, 100)
          .map((t) => t.messageId)
          .reverse(),
      );
    }
    const listed = async (c: Connection) => (await listAllOn(c, agentId, 200)).map((r) => ({ ...r, seq: 0 }));
    expect(await listed(db)).toEqual(await listed(reference)); // every field of every turn
  } finally {
    await dropTestDatabase(reference);
  }
});

/** Every turn of a listing on a given database. */
async function listAllOn(
  c: Connection,
  agentId: string,
  limit: number,
  userId?: string,
): Promise<MessageRow[]> {
  const rows: MessageRow[] = [];
  let before: Cursor | undefined;
  do {
    const page = await repo.page(c, agentId, { userId, limit, before });
    rows.push(...page.rows);
    before = page.next;
  } while (before);
  return rows;
}

/** The agent's documents of a collection, sorted by `_id`, page items sorted. */
async function dump(c: Connection, name: string, agentId: string) {
  const docs = await c.collection<{ _id: string; items?: string[] }>(name).find({}).toArray();
  return docs
    .filter((d) => d._id.includes(encodeURIComponent(agentId)))
    .map((d) => (d.items ? { ...d, items: [...d.items].sort() } : d))
    .sort((x, y) => (x._id < y._id ? -1 : 1));
}

test('when many users turns are recorded at once, then each gets its own seq in the agent stream and every turn is listed once', async () => {
  const agentId = anAgent();
  const turns = Array.from({ length: 8 }, (_, u) =>
    [0, 1, 2, 3, 4].map((i) => aTurn(agentId, `u${u}`, i)),
  ).flat();

  // Concurrent inserts of one agent share its head: queued updates go out together.
  const headWrites = jest.spyOn(mongo.Collection.prototype, 'updateOne');
  await Promise.all(turns.map((t) => repo.insert(db, t)));
  const agentHead = L.headId(L.agentStream(agentId));
  const agentHeadWrites = headWrites.mock.calls.filter(([q]) => (q as { _id?: string })._id === agentHead);
  headWrites.mockRestore();
  expect(agentHeadWrites.length).toBeGreaterThan(0);
  expect(agentHeadWrites.length).toBeLessThan(turns.length); // one push per batch, not per turn

  const rows = (await repo.page(db, agentId, { limit: 100 })).rows;
  expect(new Set(rows.map((r) => r.seq.all)).size).toBe(turns.length);
  expect(Math.max(...rows.map((r) => r.seq.all))).toBe(turns.length);
  expect((await listAll(agentId, 7)).sort()).toEqual(turns.map((t) => t.messageId).sort());
  // One user's turns written at once are listed in the order their writes landed (the worker writes a
  // thread's turns one after the other).
  expect((await listAll(agentId, 2, 'u3')).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `ig_u3_${i}`));
});
