import crypto from 'node:crypto';
import { Schema, type Connection, type mongo } from 'mongoose';
import { shardOf } from '../db/keys';
import { insertManyRefused, isDuplicateKey, modelOn } from '../db/mongo';
import { KeyedGroupCommit, writeInGroups } from '../lib/group-commit';
import { KeyedMutex } from '../lib/keyed-mutex';
import type { TurnRole } from './chats.repo';

/**
 * One Instagram turn as a listing gives it; `seq` is its place in the agent's and in the user's stream
 * (a listing of one stream knows only that stream's). The stored row holds the turn without seqs, plus
 * `instagramMid`.
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
/** A row of `instagram_messages`: the turn's unique-key claim (rows written by earlier versions also have `seq`). */
export type StoredMessage = NewMessage & { _id: string; seq?: MessageRow['seq'] };

/** Turns per page of a stream: page `k` holds the seqs `k * PAGE_SIZE` to `k * PAGE_SIZE + PAGE_SIZE - 1`. */
export const PAGE_SIZE = 50;
/** Heads and pages are spread over this many collections (see MessagesRepo). */
export const SHARDS = 128;

const rowSchema = new Schema<StoredMessage>(
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
    seq: { all: Number, user: Number },
  },
  { collection: 'instagram_messages', versionKey: false },
);

/**
 * A stream's head `{ _id: 'h:<stream>', n, items }` or one of its pages `{ _id: 'p:<stream>:<k>', items }`.
 * A head's `items` are the stream's newest turns in seq order, without their seqs: the last one's seq is
 * `n`, the one before it `n - 1`, and so on (`$inc` of `n` and `$push` of the items are one update).
 * A page's items carry their seq.
 */
interface StreamDoc {
  _id: string;
  /** Head: the last seq handed out in the stream. */
  n?: number;
  /** Head: `entryOf` each newest turn, oldest first. Page: `itemOf` each turn, in no particular order. */
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
  streamOfHead: (headId: string) => headId.slice('h:'.length),
  pageNo: (seq: number) => Math.floor(seq / PAGE_SIZE),
  pageId: (stream: string, pageNo: number) => `p:${stream}:${pageNo}`,
  /** Which of the SHARDS collections holds a head or page: by a hash of its `_id`. */
  shard: (docId: string) => shardOf(docId, SHARDS),
};
const L = messageLayout;

const canonicalAttachments = (list: MessageRow['attachments'] | undefined) =>
  (list ?? []).map((a) => (a.url === undefined ? { type: a.type } : { type: a.type, url: a.url }));

/** A turn as a stream holds it: what a listing shows, by position (no field names: read whole). */
type Entry = [
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

/** The one stored form of a turn in a head, as JSON text: both of its streams' heads hold the same string. */
export function entryOf(r: NewMessage): string {
  const entry: Entry = [
    r.messageId,
    r.userId,
    r.chatId,
    r.role,
    r.content ?? '',
    canonicalAttachments(r.attachments),
    new Date(r.timestamp).getTime(),
    r.status,
  ];
  if (r.error != null || r.username != null) entry.push(r.error ?? null);
  if (r.username != null) entry.push(r.username);
  return JSON.stringify(entry);
}

/** A page's item: the head entry with its seq in front (`[seq, ...entry]`). */
export const itemOf = (seq: number, entry: string) => `[${seq},${entry.slice(1)}`;

/** The message id of a head entry or page item, without parsing the rest. */
const messageIdOf = (text: string) => {
  const v = JSON.parse(text) as unknown[];
  return typeof v[0] === 'string' ? v[0] : typeof v[1] === 'string' ? v[1] : (v[2] as string);
};

/**
 * A turn of a listing from a page item, or from a head entry and the seq it stands at. Pages written
 * by earlier versions hold `[seqAll, seqUser, ...entry]`, one string for both streams: read as they are.
 */
function rowOf(agentId: string, which: 'all' | 'user', text: string, headSeq?: number): MessageRow {
  const v = JSON.parse(text) as unknown[];
  let seq = headSeq ?? 0;
  let at = 0;
  if (headSeq === undefined) {
    const legacy = typeof v[1] === 'number';
    seq = (legacy && which === 'user' ? v[1] : v[0]) as number;
    at = legacy ? 2 : 1;
  }
  const [messageId, userId, chatId, role, content, attachments, time, status, error, username] = v.slice(
    at,
  ) as Entry;
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
    seq: { all: which === 'all' ? seq : 0, user: which === 'user' ? seq : 0 },
  };
  if (error != null) row.error = error;
  if (username !== undefined) row.username = username;
  return row;
}

/** The stored row: the turn's fields in canonical form. */
function toRow(m: NewMessage): StoredMessage {
  const row: StoredMessage = {
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
 * agent goes through the agent stream's head, so with many users at once this turns n queued updates
 * into one. (A batch is keyed by database name; its asks are written per connection.)
 */
function perStreamDoc<A extends { db: Connection; _id: string }>(
  write: (db: Connection, docs: mongo.Collection<StreamDoc>, _id: string, asks: A[]) => Promise<void>,
) {
  return new KeyedGroupCommit<A, void>((_key, asks) =>
    writeInGroups(
      asks,
      (a) => a.db,
      async (db, mine) => {
        const _id = mine[0]!._id;
        await write(db, await streamCollection(db, _id), _id, mine);
        return mine.map(() => ({ status: 'fulfilled', value: undefined }));
      },
    ),
  );
}

/**
 * Entries this process pushed to each head since it last rolled it, by `db\0headId`: a head is rolled
 * after PAGE_SIZE of them. Bounded: a count forgotten (or lost with a restart) only lets that head grow
 * to under twice PAGE_SIZE before it rolls; with several processes, each rolls after its own PAGE_SIZE.
 */
const pushedSinceRoll = new Map<string, number>();
const MAX_COUNTED_HEADS = 100_000;

const headWrites = perStreamDoc<{ db: Connection; _id: string; entries: string[] }>(
  async (db, heads, _id, asks) => {
    const entries = asks.flatMap((a) => a.entries);
    await upsertRacing(() =>
      heads.updateOne(
        { _id },
        { $inc: { n: entries.length }, $push: { items: { $each: entries } } },
        { upsert: true },
      ),
    );
    const key = `${db.name}\u0000${_id}`;
    const pushed = (pushedSinceRoll.get(key) ?? 0) + entries.length;
    pushedSinceRoll.delete(key); // re-inserted last: the map's order is least recently pushed first
    if (pushed < PAGE_SIZE) {
      pushedSinceRoll.set(key, pushed);
      if (pushedSinceRoll.size > MAX_COUNTED_HEADS)
        pushedSinceRoll.delete(pushedSinceRoll.keys().next().value!);
      return;
    }
    await rollHead(db, heads, _id); // inside the batch: no push to this head overlaps it in this process
  },
);

const pageWrites = perStreamDoc<{ db: Connection; _id: string; items: string[] }>(
  async (_db, pages, _id, adds) => {
    const items = [...new Set(adds.flatMap((a) => a.items))];
    await upsertRacing(() =>
      pages.updateOne({ _id }, { $addToSet: { items: { $each: items } } }, { upsert: true }),
    );
  },
);

const addItems = (db: Connection, pageId: string, items: string[]) =>
  pageWrites.submit(`${db.name}\u0000${pageId}`, [{ db, _id: pageId, items }]);

/**
 * Moves a head's entries to the pages of their seqs, then empties it unless it changed meanwhile (another
 * process pushed: its entries keep their seqs, so the next roll writes the same items again, which
 * `$addToSet` keeps once). Pages first, head second: a reader that finds the head emptied finds the pages
 * written, and a crash in between leaves each turn in both (a listing shows it once).
 */
async function rollHead(db: Connection, heads: mongo.Collection<StreamDoc>, _id: string): Promise<void> {
  const head = await heads.findOne({ _id });
  const entries = head?.items ?? [];
  if (!head?.n || entries.length === 0) return;
  await writeItems(db, L.streamOfHead(_id), headItems(head));
  await heads.updateOne({ _id, n: head.n }, { $set: { items: [] } });
}

/** A head's entries as page items, each with its seq. */
function headItems(head: StreamDoc): [number, string][] {
  const entries = head.items ?? [];
  const first = (head.n ?? 0) - entries.length + 1;
  return entries.map((e, i) => [first + i, e]);
}

/** Entries with their seqs (`[seq, entry]`) as page items, by page number. */
function byPage(entries: [number, string][]): Map<number, string[]> {
  const pages = new Map<number, string[]>();
  for (const [seq, entry] of entries) {
    const k = L.pageNo(seq);
    const list = pages.get(k);
    if (list) list.push(itemOf(seq, entry));
    else pages.set(k, [itemOf(seq, entry)]);
  }
  return pages;
}

/** Adds entries (`[seq, entry]`) of a stream to their pages. */
async function writeItems(db: Connection, stream: string, entries: [number, string][]): Promise<void> {
  await Promise.all([...byPage(entries)].map(([k, items]) => addItems(db, L.pageId(stream, k), items)));
}

/**
 * The messages index: one entry per Instagram turn, beside `chats` (the platform's record), written with
 * every turn by the TurnRecorder; what `/messages` pages through, newest first in record order.
 *
 * Every read and write is by `_id`: FerretDB 1.24 (SQLite) hands SQLite only an exact `{ _id }` filter and
 * reads and decodes the whole collection in FerretDB for anything else (a sort, `$in`, a range, two keys).
 * - `instagram_messages`: a row per turn, `_id` `${agentId}:${messageId}`, the idempotency anchor.
 * - `instagram_message_streams_<0…127>`: per stream (the agent's, and each (agent, user)'s) a head
 *   `{ _id: 'h:<stream>', n, items }` and per PAGE_SIZE seqs a page `{ _id: 'p:<stream>:<k>', items }`.
 *   A turn is one `$inc` of `n` and `$push` of its entry to each of its two heads: its seq is its place in
 *   the head (the last entry's seq is `n`), never read back. Every PAGE_SIZE entries this process pushed to
 *   a head, the head is rolled: its entries go to their pages (with their seqs, `$addToSet`) and it is
 *   emptied. So a turn costs three writes (the row and two heads) and no read.
 * Even for `{ _id }` SQLite reads the whole table (FerretDB's `_id` index is not the expression its query
 * uses), and an update reads it twice, so a lookup costs in proportion to the collection: heads and pages
 * are spread over SHARDS collections by a hash of their `_id`, and entries are strings (a sub-document
 * takes twice the room in FerretDB's JSON). The rows are only read on a repeat and by `has`.
 * A listing reads the head, then pages downwards; seqs never used (a lost head, a bulk import's crash) are
 * gaps it skips, and a turn met twice is listed once.
 * Heads and pages are updated one at a time per document in this process, and updates that queue meanwhile
 * go out as one (`headWrites`, `pageWrites`); several processes on one FerretDB can still lose a concurrent
 * update (docs/DECISIONS.md).
 */
export class MessagesRepo {
  model(db: Connection) {
    return modelOn(db, 'InstagramMessage', rowSchema);
  }

  private async rows(db: Connection) {
    return (await this.model(db)).collection as unknown as mongo.Collection<StoredMessage>;
  }

  /**
   * Records the turn unless it is recorded; true only for the call that stored its row. `claim`, then
   * `list`: a crash between the two is completed by the retry, which lists the turn once.
   */
  async insert(db: Connection, m: NewMessage): Promise<boolean> {
    return oneTurnAtATime(db, m.agentId, m.messageId, async () => {
      const { row, fresh } = await this.claim(db, m);
      await this.list(db, row, { fresh });
      return fresh;
    });
  }

  /**
   * The turn's row, inserted unless stored: `fresh` only for the call that stored it (the turn's unique-key
   * claim). On a repeat, the stored row.
   */
  async claim(db: Connection, m: NewMessage): Promise<{ row: StoredMessage; fresh: boolean }> {
    const row = toRow(m);
    const stored = await this.insertRow(db, row);
    return { row: stored ?? row, fresh: stored === undefined };
  }

  /**
   * Adds a claimed row's turn to both its streams. `fresh` (its row was just inserted): it cannot be in
   * them yet. Otherwise (a retry after a crash) each stream's head and newest two pages are looked at
   * first, and the turn is added where it is missing: at the head, i.e. as recorded now.
   */
  async list(db: Connection, row: StoredMessage, opts: { fresh: boolean }): Promise<void> {
    const entry = entryOf(row);
    await Promise.all(
      streamsOf(row).map(async (stream) => {
        if (!opts.fresh && (await this.inStream(db, stream, row.messageId))) return;
        const _id = L.headId(stream);
        await headWrites.submit(`${db.name}\u0000${_id}`, [{ db, _id, entries: [entry] }]);
      }),
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
    const take = (row: MessageRow) => {
      const seq = row.seq[which];
      const tie = tieOf(row.messageId);
      if (before && (seq > before.t || (seq === before.t && tie >= before.id))) return;
      const had = found.get(row.messageId);
      if (!had || had.seq < seq) found.set(row.messageId, { row, seq, tie });
    };
    for (const [seq, entry] of headItems(head)) take(rowOf(agentId, which, entry, seq));
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
      for (const item of docs.flatMap((d) => d?.items ?? [])) take(rowOf(agentId, which, item));
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
   * Bulk recording (seeding, backfill), in record order: rows by `insertMany`, and per stream its head
   * rolled and its `n` advanced past the new turns in one update, then their items written to the pages
   * (new pages by `insertMany`). Lists what `insert` lists, in the same order; a row already recorded is
   * listed once (if a crash left it unlisted, at the head, as a retried `insert` would). Returns the rows
   * it stored.
   */
  async importRows(db: Connection, input: NewMessage[]): Promise<number> {
    if (input.length === 0) return 0;
    const Rows = await this.rows(db);
    const rows = input.map(toRow);
    const repeated = new Set<number>();
    for (let at = 0; at < rows.length; at += 5000) {
      const chunk = rows.slice(at, at + 5000);
      for (const k of await insertManyRefused(Rows, chunk)) repeated.add(at + k);
    }
    const streams = new Map<string, string[]>(); // each stream's new entries, in record order
    rows.forEach((row, i) => {
      if (repeated.has(i)) return;
      const entry = entryOf(row);
      for (const stream of streamsOf(row)) {
        const list = streams.get(stream);
        if (list) list.push(entry);
        else streams.set(stream, [entry]);
      }
    });
    await forEachLimit([...streams], 16, ([stream, entries]) => this.appendBlock(db, stream, entries));
    await forEachLimit([...repeated], 16, async (i) => {
      const stored = await Rows.findOne({ _id: rows[i]!._id });
      if (!stored) throw new Error(`instagram_messages: ${rows[i]!._id} refused but not found`);
      await this.list(db, stored, { fresh: false });
    });
    return rows.length - repeated.size;
  }

  /**
   * Appends many entries to a stream (importRows): the head's own entries go to their pages and the head is
   * emptied with its `n` advanced past the block, in one update conditional on `n` (tried again when a turn
   * came meanwhile); then the block's items, new pages inserted whole.
   */
  private async appendBlock(db: Connection, stream: string, entries: string[]): Promise<void> {
    const _id = L.headId(stream);
    const heads = await streamCollection(db, _id);
    let first: number | undefined;
    for (let attempt = 0; first === undefined; attempt++) {
      if (attempt === 20) throw new Error(`instagram_message_streams: ${_id} kept changing`);
      const head = await heads.findOne({ _id });
      if (!head) {
        try {
          await heads.insertOne({ _id, n: entries.length, items: [] });
          first = 1;
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
        }
        continue;
      }
      await writeItems(db, stream, headItems(head));
      const n = head.n ?? 0;
      const res = await heads.updateOne({ _id, n }, { $set: { items: [] }, $inc: { n: entries.length } });
      if (res.matchedCount === 1) first = n + 1;
    }
    const start = first;
    // A page wholly above the head's old `n` can only be new (unless a crashed import of these began it).
    const fresh: StreamDoc[] = [];
    const grow: [string, string[]][] = [];
    for (const [k, items] of byPage(entries.map((entry, i) => [start + i, entry]))) {
      const pageId = L.pageId(stream, k);
      if (Math.max(1, k * PAGE_SIZE) >= start) fresh.push({ _id: pageId, items });
      else grow.push([pageId, items]);
    }
    const byShard = new Map<number, StreamDoc[]>();
    for (const doc of fresh) {
      const shard = L.shard(doc._id);
      const docs = byShard.get(shard);
      if (docs) docs.push(doc);
      else byShard.set(shard, [doc]);
    }
    for (const docs of byShard.values()) {
      const c = await streamCollection(db, docs[0]!._id);
      for (let at = 0; at < docs.length; at += 500) {
        const chunk = docs.slice(at, at + 500);
        for (const k of await insertManyRefused(c as mongo.Collection<StreamDoc>, chunk))
          grow.push([chunk[k]!._id, chunk[k]!.items!]);
      }
    }
    await forEachLimit(grow, 16, async ([pageId, items]) => {
      await addItems(db, pageId, items);
    });
  }

  /** Whether a stream lists this turn: in its head or its newest two pages (where a retry's turn is). */
  private async inStream(db: Connection, stream: string, messageId: string): Promise<boolean> {
    const headId = L.headId(stream);
    const head = await (await streamCollection(db, headId)).findOne({ _id: headId });
    if (!head) return false;
    if ((head.items ?? []).some((e) => messageIdOf(e) === messageId)) return true;
    const k = L.pageNo(head.n ?? 0);
    const pages = await Promise.all(
      [k, k - 1]
        .filter((no) => no >= 0)
        .map(async (no) => {
          const _id = L.pageId(stream, no);
          return (await streamCollection(db, _id)).findOne({ _id });
        }),
    );
    return pages.some((p) => (p?.items ?? []).some((i) => messageIdOf(i) === messageId));
  }

  /** Inserts the row; on a repeat returns the stored row instead. */
  private async insertRow(db: Connection, row: StoredMessage): Promise<StoredMessage | undefined> {
    const Rows = await this.rows(db);
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
}

/**
 * Process-wide: the recording of one turn (claim, then list) runs one call at a time. A repeat looks at the
 * streams before adding the turn; were it to look while the first call's heads are still being written,
 * it would add the turn a second time. (Another process recording the very same turn at the same moment
 * can still list it twice: that needs a thread lease lost mid-turn.)
 */
const turnRecordings = new KeyedMutex();
export const oneTurnAtATime = <T>(
  db: Connection,
  agentId: string,
  messageId: string,
  section: () => Promise<T>,
) => turnRecordings.run(`${db.name}\u0000${L.rowId(agentId, messageId)}`, section);

const streamsOf = (r: Pick<NewMessage, 'agentId' | 'userId'>): string[] => [
  L.agentStream(r.agentId),
  L.userStream(r.agentId, r.userId),
];

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let at = 0;
  const worker = async () => {
    while (at < items.length) await fn(items[at++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
