import crypto from 'node:crypto';
import { Schema, type Connection, type mongo } from 'mongoose';
import { shardOf } from '../db/keys';
import { insertManyRefused, isDuplicateKey, modelOn } from '../db/mongo';
import { KeyedGroupCommit, writeInGroups } from '../lib/group-commit';
import type { TurnRole } from './chats.repo';

/**
 * One Instagram turn; `seq` is its place in the agent's and in the user's stream. A listing (`page`) gives
 * every field but `instagramMid`, which only the stored row keeps.
 */
export interface MessageRow {
  /** `${agentId}:${messageId}` (each part URI-encoded, which leaves real ids as they are). */
  _id: string;
  agentId: string;
  userId: string;
  chatId: string;
  messageId: string;
  role: TurnRole;
  content: string;
  attachments: { type: string; url?: string }[];
  timestamp: Date;
  status: 'received' | 'sent' | 'failed';
  instagramMid?: string;
  error?: string;
  /** The visitor's Instagram username when it was known as the turn was recorded. */
  username?: string;
  seq: { all: number; user: number };
}

export type NewMessage = Omit<MessageRow, '_id' | 'seq'>;

/** Turns per page of a stream: page `k` holds the seqs `k * PAGE_SIZE` to `k * PAGE_SIZE + PAGE_SIZE - 1`. */
export const PAGE_SIZE = 50;
/** Heads and pages are spread over this many collections (see MessagesRepo). */
export const SHARDS = 128;

const rowSchema = new Schema<MessageRow>(
  {
    _id: { type: String, required: true },
    agentId: { type: String, required: true },
    userId: { type: String, required: true },
    chatId: { type: String, required: true },
    messageId: { type: String, required: true },
    role: { type: String, required: true },
    content: { type: String, default: '' },
    attachments: { type: Schema.Types.Mixed, default: [] },
    timestamp: { type: Date, required: true },
    status: { type: String, required: true },
    instagramMid: String,
    error: String,
    username: String,
    seq: { all: { type: Number, required: true }, user: { type: Number, required: true } },
  },
  { collection: 'instagram_messages', versionKey: false },
);

/** A stream's head `{ _id: 'h:<stream>', n }` or one of its pages `{ _id: 'p:<stream>:<k>', items }`. */
interface StreamDoc {
  _id: string;
  /** Head: the last seq handed out in the stream. */
  n?: number;
  /** Page: each turn's canonical JSON (`itemOf`), in no particular order. */
  items?: string[];
}
const streamSchemas = Array.from(
  { length: SHARDS },
  (_, i) =>
    new Schema<StreamDoc>(
      { _id: { type: String, required: true }, n: Number, items: [String] },
      { collection: `instagram_message_streams_${i}`, versionKey: false },
    ),
);

/**
 * Where everything lives. A stream is the agent's turns (`a:<agent>`) or one user's (`u:<agent>:<user>`);
 * its head is `h:<stream>` and its page k is `p:<stream>:<k>`. Ids are URI-encoded, so `:` only separates.
 */
const enc = encodeURIComponent;
export const messageLayout = {
  rowId: (agentId: string, messageId: string) => `${enc(agentId)}:${enc(messageId)}`,
  agentStream: (agentId: string) => `a:${enc(agentId)}`,
  userStream: (agentId: string, userId: string) => `u:${enc(agentId)}:${enc(userId)}`,
  headId: (stream: string) => `h:${stream}`,
  pageNo: (seq: number) => Math.floor(seq / PAGE_SIZE),
  pageId: (stream: string, pageNo: number) => `p:${stream}:${pageNo}`,
  /** Which of the SHARDS collections holds a head or page: by a hash of its `_id`. */
  shard: (docId: string) => shardOf(docId, SHARDS),
};
const L = messageLayout;

const canonicalAttachments = (list: MessageRow['attachments'] | undefined) =>
  (list ?? []).map((a) => (a.url === undefined ? { type: a.type } : { type: a.type, url: a.url }));

/** A turn in a page: what a listing shows, by position (no field names: pages are read whole). */
type Item = [
  seqAll: number,
  seqUser: number,
  messageId: string,
  userId: string,
  chatId: string,
  role: TurnRole,
  content: string,
  attachments: MessageRow['attachments'],
  time: number,
  status: MessageRow['status'],
  error?: string | null,
  username?: string,
];

/**
 * The one stored form of a turn in a page, as JSON text: a retry, a concurrent duplicate and `importRows`
 * all build it from the stored row, so they add the identical string and `$addToSet` keeps one. Both
 * streams hold the same string.
 */
export function itemOf(r: Omit<MessageRow, '_id' | 'agentId'>): string {
  const item: Item = [
    r.seq.all,
    r.seq.user,
    r.messageId,
    r.userId,
    r.chatId,
    r.role,
    r.content ?? '',
    canonicalAttachments(r.attachments),
    new Date(r.timestamp).getTime(),
    r.status,
  ];
  if (r.error != null || r.username != null) item.push(r.error ?? null);
  if (r.username != null) item.push(r.username);
  return JSON.stringify(item);
}

function rowOfItem(agentId: string, text: string): MessageRow {
  const [all, user, messageId, userId, chatId, role, content, attachments, time, status, error, username] =
    JSON.parse(text) as Item;
  const row: MessageRow = {
    _id: L.rowId(agentId, messageId),
    agentId,
    userId,
    chatId,
    messageId,
    role,
    content,
    attachments,
    timestamp: new Date(time),
    status,
    seq: { all, user },
  };
  if (error != null) row.error = error;
  if (username !== undefined) row.username = username;
  return row;
}

/** The stored row: the turn's fields in canonical form plus its seqs. */
function toRow(m: NewMessage, seq: MessageRow['seq']): MessageRow {
  const row: MessageRow = {
    _id: L.rowId(m.agentId, m.messageId),
    agentId: m.agentId,
    userId: m.userId,
    chatId: m.chatId,
    messageId: m.messageId,
    role: m.role,
    content: m.content ?? '',
    attachments: canonicalAttachments(m.attachments),
    timestamp: m.timestamp,
    status: m.status,
    seq,
  };
  if (m.instagramMid !== undefined) row.instagramMid = m.instagramMid;
  if (m.error !== undefined) row.error = m.error;
  if (m.username !== undefined) row.username = m.username;
  return row;
}

/**
 * Where a page of `/messages` ended: `t` is the last turn's seq in the listed stream, `id` a tie-breaker (a
 * hash of its message id) should two turns ever share a seq. A cursor belongs to the listing (with or
 * without `userId`) that returned it.
 */
export interface Cursor {
  t: number;
  id: string;
}
export const encodeCursor = (c: Cursor) => Buffer.from(`${c.t}.${c.id}`).toString('base64url');
export function decodeCursor(s: string): Cursor | undefined {
  const m = /^(\d{1,16})\.([0-9a-f]{24})$/.exec(Buffer.from(s, 'base64url').toString());
  return m ? { t: Number(m[1]), id: m[2]! } : undefined;
}
const tieOf = (messageId: string) => crypto.createHash('sha256').update(messageId).digest('hex').slice(0, 24);

/** The collection holding this head or page. */
async function streamCollection(db: Connection, docId: string) {
  const i = L.shard(docId);
  return (await modelOn(db, `InstagramMessageStream${i}`, streamSchemas[i]!))
    .collection as unknown as mongo.Collection<StreamDoc>;
}

/** An upsert that two first writers may race to create: the loser's duplicate-key error is retried once. */
async function upsertRacing<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    return op();
  }
}

/**
 * Process-wide group commits per head and per page: one document's updates run one at a time (FerretDB
 * does not apply an update atomically), and those that queued meanwhile go out as one. Every turn of an
 * agent goes through the agent stream's head and newest page, so with many users at once this turns n
 * queued updates into one. (A batch is keyed by database name; its asks are written per connection.)
 */
function perStreamDoc<A extends { db: Connection; _id: string }, R>(
  write: (streams: mongo.Collection<StreamDoc>, _id: string, asks: A[]) => Promise<R[]>,
) {
  return new KeyedGroupCommit<A, R>((_key, asks) =>
    writeInGroups(
      asks,
      (a) => a.db,
      async (db, mine) => {
        const _id = mine[0]!._id;
        const results = await write(await streamCollection(db, _id), _id, mine);
        return results.map((value) => ({ status: 'fulfilled', value }));
      },
    ),
  );
}
const headWrites = perStreamDoc<{ db: Connection; _id: string; count: number }, number>(
  async (heads, _id, asks) => {
    const total = asks.reduce((sum, a) => sum + a.count, 0);
    const head = await upsertRacing(() =>
      heads.findOneAndUpdate({ _id }, { $inc: { n: total } }, { upsert: true, returnDocument: 'after' }),
    );
    if (head?.n === undefined) throw new Error(`instagram_message_streams: ${_id} not returned`);
    let last = head.n - total;
    return asks.map((a) => (last += a.count));
  },
);
const pageWrites = perStreamDoc<{ db: Connection; _id: string; items: string[] }, void>(
  async (pages, _id, adds) => {
    const items = [...new Set(adds.flatMap((a) => a.items))];
    await upsertRacing(() =>
      pages.updateOne({ _id }, { $addToSet: { items: { $each: items } } }, { upsert: true }),
    );
    return adds.map(() => undefined);
  },
);

/**
 * The messages index: one entry per Instagram turn, beside `chats` (the platform's record), written with
 * every turn by the TurnRecorder; what `/messages` pages through, newest first in record order.
 *
 * Every read and write is by `_id`: FerretDB 1.24 (SQLite) hands SQLite only an exact `{ _id }` filter and
 * reads and decodes the whole collection in FerretDB for anything else (a sort, `$in`, a range, two keys).
 * - `instagram_messages`: a row per turn, `_id` `${agentId}:${messageId}`, the idempotency anchor, with the
 *   turn's seq in its two streams, the agent's and the (agent, user)'s.
 * - `instagram_message_streams_<0…127>`: per stream a head `{ _id: 'h:<stream>', n }`, the last seq handed
 *   out (`$inc`), and per PAGE_SIZE seqs a page `{ _id: 'p:<stream>:<k>', items }`, the turns as canonical
 *   JSON (`itemOf`), added with `$addToSet`.
 * Even for `{ _id }` SQLite reads the whole table (FerretDB's `_id` index is not the expression its query
 * uses), and an update reads it twice, so a lookup costs in proportion to the collection: heads and pages
 * are spread over SHARDS collections by a hash of their `_id`, and items are strings (a sub-document takes
 * twice the room in FerretDB's JSON). The rows are only read on a repeat and by `has`.
 * A listing reads the head, then pages downwards; seqs left unused (a retry, a crash) are gaps it skips.
 * Heads and pages are updated one at a time per document in this process, and updates that queue meanwhile
 * go out as one (`headWrites`, `pageWrites`); several processes on one FerretDB can still lose a concurrent
 * update (docs/DECISIONS.md).
 */
export class MessagesRepo {
  model(db: Connection) {
    return modelOn(db, 'InstagramMessage', rowSchema);
  }

  /**
   * Records the turn unless it is recorded; true only for the call that stored its row. `claim`, then
   * `list`: a crash between the two is completed by the retry, which lists the turn once.
   */
  async insert(db: Connection, m: NewMessage): Promise<boolean> {
    const { row, fresh } = await this.claim(db, m);
    await this.list(db, row);
    return fresh;
  }

  /**
   * The turn's row, inserted unless stored: `fresh` only for the call that stored it (the turn's unique-key
   * claim). Seqs first, then the row; a repeat finds the stored row and uses its seqs (the new ones stay
   * unused gaps).
   */
  async claim(db: Connection, m: NewMessage): Promise<{ row: MessageRow; fresh: boolean }> {
    const [all, user] = await Promise.all([
      this.allocate(db, L.agentStream(m.agentId), 1),
      this.allocate(db, L.userStream(m.agentId, m.userId), 1),
    ]);
    const row = toRow(m, { all, user });
    const stored = await this.insertRow(db, row);
    return { row: stored ?? row, fresh: stored === undefined };
  }

  /** Adds a claimed row's turn to both its streams' pages (idempotent: `$addToSet` of its canonical item). */
  async list(db: Connection, row: MessageRow): Promise<void> {
    const item = itemOf(row);
    await Promise.all(
      streamsOf(row).map(([s, seq]) => this.addItems(db, L.pageId(s, L.pageNo(seq)), [item])),
    );
  }

  /** Whether this turn is recorded (one `_id` lookup). */
  async has(db: Connection, agentId: string, messageId: string): Promise<boolean> {
    return (await (await this.model(db)).exists({ _id: L.rowId(agentId, messageId) })) !== null;
  }

  /**
   * Newest first by seq (record order) from the agent's stream or, with `userId`, that user's; the cursor is
   * the last turn's seq, so turns recorded meanwhile (higher seqs) never shift a page.
   */
  async page(
    db: Connection,
    agentId: string,
    opts: { userId?: string; limit: number; before?: Cursor },
  ): Promise<{ rows: MessageRow[]; next?: Cursor }> {
    const stream = opts.userId === undefined ? L.agentStream(agentId) : L.userStream(agentId, opts.userId);
    const which = opts.userId === undefined ? 'all' : 'user';
    const headId = L.headId(stream);
    const head = await (await streamCollection(db, headId)).findOne({ _id: headId });
    if (head?.n === undefined) return { rows: [] };
    const { before } = opts;
    const top = Math.min(head.n, before?.t ?? Infinity);
    const want = opts.limit + 1;
    const found = new Map<string, { row: MessageRow; seq: number; tie: string }>();
    let next = L.pageNo(top); // the highest page not read yet
    while (next >= 0 && found.size < want) {
      // As many pages at once as hold what is missing were there no gaps.
      const onNext = Math.min(top, (next + 1) * PAGE_SIZE - 1) - Math.max(1, next * PAGE_SIZE) + 1;
      const count = 1 + Math.max(0, Math.ceil((want - found.size - onNext) / PAGE_SIZE));
      const nos = Array.from({ length: Math.min(count, next + 1) }, (_, i) => next - i);
      next -= nos.length;
      const docs = await Promise.all(
        nos.map(async (k) => {
          const _id = L.pageId(stream, k);
          return (await streamCollection(db, _id)).findOne({ _id });
        }),
      );
      for (const item of docs.flatMap((d) => d?.items ?? [])) {
        const row = rowOfItem(agentId, item);
        const seq = row.seq[which];
        const tie = tieOf(row.messageId);
        if (before && (seq > before.t || (seq === before.t && tie >= before.id))) continue;
        if (!found.has(row.messageId)) found.set(row.messageId, { row, seq, tie });
      }
    }
    const sorted = [...found.values()].sort((x, y) =>
      x.seq !== y.seq ? y.seq - x.seq : x.tie < y.tie ? 1 : x.tie > y.tie ? -1 : 0,
    );
    const page = sorted.slice(0, opts.limit);
    const last = page[page.length - 1];
    return {
      rows: page.map((f) => f.row),
      next: sorted.length > opts.limit && last ? { t: last.seq, id: last.tie } : undefined,
    };
  }

  /**
   * Bulk recording (seeding, backfill), in record order: one `$inc` per stream for all its rows, rows and
   * new pages by `insertMany`, the pages already begun by `$addToSet`. Stores exactly what `insert` stores,
   * and like it, a row already recorded keeps its seqs and is listed once. Returns the rows it stored.
   */
  async importRows(db: Connection, input: NewMessage[]): Promise<number> {
    if (input.length === 0) return 0;
    const streams = new Map<string, number[]>();
    const add = (stream: string, i: number) => {
      let list = streams.get(stream);
      if (!list) streams.set(stream, (list = []));
      list.push(i);
    };
    input.forEach((m, i) => {
      add(L.agentStream(m.agentId), i);
      add(L.userStream(m.agentId, m.userId), i);
    });
    const seqs = input.map(() => ({ all: 0, user: 0 }));
    const before = new Map<string, number>(); // the stream's last seq before this import
    await forEachLimit([...streams], 16, async ([stream, rows]) => {
      const last = await this.allocate(db, stream, rows.length);
      const first = last - rows.length + 1;
      before.set(stream, first - 1);
      const which = stream.startsWith('a:') ? 'all' : 'user';
      rows.forEach((i, k) => (seqs[i]![which] = first + k));
    });

    let rows = input.map((m, i) => toRow(m, seqs[i]!));
    const Rows = (await this.model(db)).collection as unknown as mongo.Collection<MessageRow>;
    const repeated = new Set<number>();
    for (let at = 0; at < rows.length; at += 5000) {
      const chunk = rows.slice(at, at + 5000);
      for (const k of await insertManyRefused(Rows, chunk)) repeated.add(at + k);
    }
    if (repeated.size > 0) {
      const stored = new Map<string, MessageRow>();
      await forEachLimit([...repeated], 16, async (i) => {
        const row = await Rows.findOne({ _id: rows[i]!._id });
        if (!row) throw new Error(`instagram_messages: ${rows[i]!._id} refused but not found`);
        stored.set(row._id, row);
      });
      rows = rows.map((r) => stored.get(r._id) ?? r);
    }

    // Items per page, and whether the page can only be new (all its seqs were handed out by this import).
    const pages = new Map<string, { items: string[]; fresh: boolean }>();
    for (const row of rows) {
      const item = itemOf(row);
      for (const [stream, seq] of streamsOf(row)) {
        const k = L.pageNo(seq);
        const _id = L.pageId(stream, k);
        let p = pages.get(_id);
        if (!p) {
          const fresh = Math.max(1, k * PAGE_SIZE) > (before.get(stream) ?? Infinity);
          pages.set(_id, (p = { items: [], fresh }));
        }
        if (!p.items.includes(item)) p.items.push(item);
      }
    }
    const byShard = new Map<number, Required<Omit<StreamDoc, 'n'>>[]>();
    const grow: Required<Omit<StreamDoc, 'n'>>[] = [];
    for (const [_id, p] of pages) {
      if (!p.fresh) grow.push({ _id, items: p.items });
      else {
        const shard = L.shard(_id);
        let docs = byShard.get(shard);
        if (!docs) byShard.set(shard, (docs = []));
        docs.push({ _id, items: p.items });
      }
    }
    for (const docs of byShard.values()) {
      const c = await streamCollection(db, docs[0]!._id);
      for (let at = 0; at < docs.length; at += 500) {
        const chunk = docs.slice(at, at + 500);
        // A page someone else began meanwhile (a turn recorded beside the import, a retried import).
        for (const k of await insertManyRefused(c, chunk)) grow.push(chunk[k]!);
      }
    }
    await forEachLimit(grow, 16, (p) => this.addItems(db, p._id, p.items));
    return rows.length - repeated.size;
  }

  /** Hands out `count` seqs of a stream; returns the last of them (the first is `last - count + 1`). */
  private async allocate(db: Connection, stream: string, count: number): Promise<number> {
    const _id = L.headId(stream);
    const [last] = await headWrites.submit(`${db.name}\u0000${_id}`, [{ db, _id, count }]);
    return last!;
  }

  /** Inserts the row; on a repeat returns the stored row instead (whose seqs then count). */
  private async insertRow(db: Connection, row: MessageRow): Promise<MessageRow | undefined> {
    const Rows = (await this.model(db)).collection as unknown as mongo.Collection<MessageRow>;
    try {
      await Rows.insertOne(row);
      return undefined;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const stored = await Rows.findOne({ _id: row._id });
    if (!stored) throw new Error(`instagram_messages: ${row._id} refused as a duplicate but not found`);
    return stored;
  }

  private async addItems(db: Connection, pageId: string, items: string[]): Promise<void> {
    await pageWrites.submit(`${db.name}\u0000${pageId}`, [{ db, _id: pageId, items }]);
  }
}

const streamsOf = (r: MessageRow): [string, number][] => [
  [L.agentStream(r.agentId), r.seq.all],
  [L.userStream(r.agentId, r.userId), r.seq.user],
];

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let at = 0;
  const worker = async () => {
    while (at < items.length) await fn(items[at++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
