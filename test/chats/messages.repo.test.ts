import { mongo, type Connection } from 'mongoose';
import {
  itemOf,
  messageLayout as L,
  MessagesRepo,
  PAGE_SIZE,
  SHARDS,
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

/** Takes the turn's item out of both of its streams' pages: the state a crash before the page writes leaves. */
async function unlist(row: MessageRow): Promise<void> {
  const streams: [string, number][] = [
    [L.agentStream(row.agentId), row.seq.all],
    [L.userStream(row.agentId, row.userId), row.seq.user],
  ];
  for (const [stream, seq] of streams) {
    const _id = L.pageId(stream, L.pageNo(seq));
    await streamDocs(_id).updateOne({ _id }, { $pull: { items: itemOf(row) } });
  }
}

async function storedRow(agentId: string, messageId: string): Promise<MessageRow> {
  const row = await (await repo.model(db)).findById(L.rowId(agentId, messageId)).lean<MessageRow>();
  if (!row) throw new Error(`no row ${messageId}`);
  return row;
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

test('when the process died after storing the row and before writing the pages, then the retry lists the turn exactly once', async () => {
  const agentId = anAgent();
  const turns = [0, 1, 2].map((i) => aTurn(agentId, '222', i));
  for (const t of turns) await repo.insert(db, t);
  const row = await storedRow(agentId, turns[1]!.messageId);
  await unlist(row); // the row is stored, neither page holds it
  expect(await listAll(agentId, 10)).toEqual(['ig_222_2', 'ig_222_0']);

  expect(await repo.insert(db, turns[1]!)).toBe(false);

  expect(await listAll(agentId, 10)).toEqual(['ig_222_2', 'ig_222_1', 'ig_222_0']);
  expect(await listAll(agentId, 1, '222')).toEqual(['ig_222_2', 'ig_222_1', 'ig_222_0']);
  expect((await storedRow(agentId, 'ig_222_1')).seq).toEqual(row.seq); // it kept its place
});

test('when the process died between the two page writes, then the retry completes the other stream and duplicates neither', async () => {
  const agentId = anAgent();
  const turn = aTurn(agentId, '333', 0);
  await repo.insert(db, turn);
  const row = await storedRow(agentId, turn.messageId);
  const userPage = L.pageId(L.userStream(agentId, '333'), L.pageNo(row.seq.user));
  await streamDocs(userPage).updateOne({ _id: userPage }, { $pull: { items: itemOf(row) } });

  await repo.insert(db, turn);

  expect(await listAll(agentId, 10)).toEqual([turn.messageId]);
  expect(await listAll(agentId, 10, '333')).toEqual([turn.messageId]);
  const agentPage = L.pageId(L.agentStream(agentId), L.pageNo(row.seq.all));
  expect((await streamDocs(agentPage).findOne({ _id: agentPage }))?.items).toEqual([itemOf(row)]);
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

test('when the stream head was lost and seqs repeat, then paging still visits every turn once', async () => {
  const agentId = anAgent();
  for (let i = 0; i < 5; i++) await repo.insert(db, aTurn(agentId, '666', i));
  const head = L.headId(L.agentStream(agentId));
  await streamDocs(head).deleteOne({ _id: head });
  for (let i = 5; i < 8; i++) await repo.insert(db, aTurn(agentId, '666', i)); // seqs 1–3 again

  const listed = await listAll(agentId, 1);

  expect([...listed].sort()).toEqual(Array.from({ length: 8 }, (_, i) => `ig_666_${i}`).sort());
});

test('when rows are imported in bulk, then rows, heads and pages are exactly what one insert per turn writes', async () => {
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
    // The same turns through `insert`, the repeat included (its unused seqs are the same gap).
    for (const t of [...turns.slice(0, 3), ...turns.slice(2)]) await repo.insert(reference, t);

    for (const name of ['instagram_messages', ...shardNames()])
      expect(await dump(db, name, agentId)).toEqual(await dump(reference, name, agentId));
    expect(await listAll(agentId, 9)).toEqual(turns.map((t) => t.messageId).reverse());
    expect(await listAll(agentId, 9, '701')).toEqual(
      turns
        .slice(50, 100)
        .map((t) => t.messageId)
        .reverse(),
    );
  } finally {
    await dropTestDatabase(reference);
  }
});

const shardNames = () => Array.from({ length: SHARDS }, (_, i) => `instagram_message_streams_${i}`);

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

  // Concurrent inserts of one agent share its head and newest pages: queued updates go out together.
  const headWrites = jest.spyOn(mongo.Collection.prototype, 'findOneAndUpdate');
  await Promise.all(turns.map((t) => repo.insert(db, t)));
  const agentHead = L.headId(L.agentStream(agentId));
  const agentHeadWrites = headWrites.mock.calls.filter(([q]) => (q as { _id?: string })._id === agentHead);
  headWrites.mockRestore();
  expect(agentHeadWrites.length).toBeGreaterThan(0);
  expect(agentHeadWrites.length).toBeLessThan(turns.length); // one `$inc` per batch, not per turn

  const rows = await Promise.all(turns.map((t) => storedRow(agentId, t.messageId)));
  expect(new Set(rows.map((r) => r.seq.all)).size).toBe(turns.length);
  expect(Math.max(...rows.map((r) => r.seq.all))).toBe(turns.length);
  expect((await listAll(agentId, 7)).sort()).toEqual(turns.map((t) => t.messageId).sort());
  expect(await listAll(agentId, 2, 'u3')).toEqual([4, 3, 2, 1, 0].map((i) => `ig_u3_${i}`));
});
