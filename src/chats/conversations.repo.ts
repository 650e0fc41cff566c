import { Schema, Types, type Connection, type mongo } from 'mongoose';
import { derivedObjectId } from '../db/keys';
import { isDuplicateKey, modelOn } from '../db/mongo';
import { KeyedGroupCommit, writeInGroups } from '../lib/group-commit';
import { KeyedMutex } from '../lib/keyed-mutex';
import type { TurnRole } from './chats.repo';

/**
 * One row per (agent, Instagram user), kept up to date as turns are written, so `/conversations` and the
 * 24-hour window never scan chats. Also holds the human-takeover pause.
 *
 * Every write is by `_id` alone, and the `_id` is derived from (agent, user): FerretDB 1.24 serves only an
 * exact `{ _id }` filter from an index and scans the collection for anything else. The preview moves only
 * forward in time without a conditional filter: `lastMessageKey` is "<ISO time> <role> <text>", and `$max`
 * keeps the greatest, i.e. the newest turn, atomically, however turns interleave.
 */
export interface ConversationRow {
  _id: Types.ObjectId;
  agentId: string;
  userId: string;
  username?: string;
  lastMessage: string;
  lastMessageRole: TurnRole;
  lastMessageAt: Date;
  lastInboundAt?: Date;
  messageCount: number;
  aiPausedUntil?: Date;
  /** The thread's current chat (`chats.chat_id`): where its next turn goes, unless ended or idle. */
  chatId?: string;
}

interface ConversationDoc extends Omit<ConversationRow, 'lastMessage' | 'lastMessageRole'> {
  /** `${ISO time}\u0000${role}\u0000${preview}`: fixed-width time first, so string order is time order. */
  lastMessageKey?: string;
  /** The recency page that lists this row (see RecencyDoc). */
  recencyPage?: number;
  /** Incremented by every write: orders the row's summaries in the recency pages. */
  v?: number;
}

/**
 * `GET /conversations` without a query over the rows: an agent's users listed in recency pages, each
 * holding up to RECENCY_PAGE_SIZE users' summaries (everything a listing shows), so a page of the listing
 * is one or two reads by `_id` — the only lookup FerretDB 1.24 serves without decoding a whole collection.
 * - The head `h:<agent>` is the newest page, number `top`. A turn puts its user's summary there (`$max`, see
 *   `entryOf`) and, if the user was listed in an older page `k`, removes it there (`$unset`); the row's
 *   `recencyPage` says where its summary lives.
 * - A head that reaches RECENCY_PAGE_SIZE users is copied to page `p:<agent>:<top>` and emptied, `top + 1`.
 * Every page then holds users whose last turn came after every user of the pages below, so reading the
 * head, then pages `top - 1` down to 0, each ordered by last message time, lists the users most recent
 * first. A pause or a new username updates the summary where it lives, without moving it.
 * Page writes are serialised per agent in this process (FerretDB does not apply an update atomically).
 */
interface RecencyDoc {
  _id: string;
  agent: string;
  top: number;
  /** Summaries by `entryKey(userId)`. */
  s?: Record<string, string>;
}
const recencySchema = new Schema<RecencyDoc>(
  { _id: String, agent: String, top: Number, s: Schema.Types.Mixed },
  { collection: 'instagram_conversation_recency', versionKey: false, minimize: false },
);
recencySchema.index({ agent: 1 }); // rebuildRecency only
export const RECENCY_PAGE_SIZE = 50;
const headId = (agentId: string) => `h:${agentId}`;
const pageId = (agentId: string, k: number) => `p:${agentId}:${k}`;
/** A field name for a user id: no `.`, no leading `$`, never numeric (an array index to some servers). */
const entryKey = (userId: string) => `u${encodeURIComponent(userId).replace(/\./g, '%2E')}`;

/**
 * A row's summary as a page holds it: its write version (the row's `v`, zero-padded) and the listed
 * fields as JSON. `$max` of two summaries keeps the later version however their writes interleave.
 */
function entryOf(d: ConversationDoc): string {
  const fields: Partial<ConversationDoc> = {
    userId: d.userId,
    username: d.username,
    lastMessageKey: d.lastMessageKey,
    lastMessageAt: d.lastMessageAt,
    lastInboundAt: d.lastInboundAt,
    messageCount: d.messageCount,
    aiPausedUntil: d.aiPausedUntil,
  };
  return `${String(d.v ?? 0).padStart(12, '0')}|${JSON.stringify(fields)}`;
}
function fromEntry(agentId: string, entry: string): ConversationDoc {
  const f = JSON.parse(entry.slice(entry.indexOf('|') + 1)) as Record<string, unknown>;
  const date = (v: unknown) => (typeof v === 'string' ? new Date(v) : undefined);
  const doc = {
    ...f,
    agentId,
    lastMessageAt: date(f.lastMessageAt),
    lastInboundAt: date(f.lastInboundAt),
    aiPausedUntil: date(f.aiPausedUntil),
  } as ConversationDoc;
  for (const k of ['lastInboundAt', 'aiPausedUntil', 'username'] as const)
    if (doc[k] === undefined) delete doc[k];
  return doc;
}

/** Where a page of /conversations ended: the recency page, and the last row's time-then-user key. */
export interface ConversationCursor {
  k: number;
  key: string;
}
const rowKey = (d: Pick<ConversationDoc, 'lastMessageAt' | 'userId'>) =>
  `${new Date(d.lastMessageAt).toISOString()}\u0000${d.userId}`;
export const encodeConversationCursor = (c: ConversationCursor) =>
  Buffer.from(JSON.stringify([c.k, c.key])).toString('base64url');
export function decodeConversationCursor(s: string): ConversationCursor | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(s, 'base64url').toString());
    if (!Array.isArray(v) || v.length !== 2) return undefined;
    const [k, key] = v as [unknown, unknown];
    if (!Number.isInteger(k) || (k as number) < 0 || typeof key !== 'string' || key.length > 200)
      return undefined;
    return { k: k as number, key };
  } catch {
    return undefined;
  }
}

const schema = new Schema<ConversationDoc>(
  {
    agentId: { type: String, required: true },
    userId: { type: String, required: true },
    username: String,
    lastMessageKey: String,
    lastMessageAt: Date,
    lastInboundAt: Date,
    messageCount: { type: Number, default: 0 },
    aiPausedUntil: Date,
    chatId: String,
    recencyPage: Number,
    v: Number,
  },
  { collection: 'instagram_conversations', versionKey: false },
);
schema.index({ agentId: 1, userId: 1 }, { unique: true });
schema.index({ agentId: 1, lastMessageAt: 1 }); // rebuildRecency only

export const PREVIEW_LENGTH = 100;

/** A one-line preview of at most PREVIEW_LENGTH characters (code points, never half an emoji). */
export function preview(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  const chars = Array.from(flat);
  return chars.length <= PREVIEW_LENGTH ? flat : `${chars.slice(0, PREVIEW_LENGTH - 1).join('')}…`;
}

/** The row's `_id`: the first 12 bytes of SHA-256 over (agent, user), as an ObjectId (cursors stay hex). */
export function conversationId(agentId: string, userId: string): Types.ObjectId {
  return derivedObjectId(`${agentId}\u0000${userId}`);
}

function fromDoc(doc: ConversationDoc): ConversationRow {
  const { lastMessageKey, ...rest } = doc;
  if (lastMessageKey === undefined) return rest as ConversationRow; // paused before anyone wrote
  const [, role, text] = lastMessageKey.split('\u0000');
  return { ...rest, lastMessage: text ?? '', lastMessageRole: role as TurnRole };
}

/** Process-wide: writes to one row run one at a time (FerretDB does not apply an update atomically). */
const rowWrites = new KeyedMutex();
const recencyWrites = new KeyedMutex();

export class ConversationsRepo {
  model(db: Connection) {
    return modelOn(db, 'InstagramConversation', schema);
  }

  private async rows(db: Connection) {
    return (await this.model(db)).collection as unknown as mongo.Collection<ConversationDoc>;
  }

  async get(db: Connection, agentId: string, userId: string): Promise<ConversationRow | undefined> {
    // The collection itself: read for every DM, and mongoose's query layer adds ~5–10 % of CPU per command.
    const doc = await (await this.rows(db)).findOne({ _id: conversationId(agentId, userId) });
    return doc ? fromDoc(doc) : undefined;
  }

  /**
   * Counts a new turn; moves the preview only forward in time (turns may be recorded out of order), and
   * the user to the top of the agent's listing. `repeat`: the turn may have been counted before (a retry
   * after a crash): everything but the count is brought up to date, which is idempotent.
   */
  async recordTurn(
    db: Connection,
    agentId: string,
    userId: string,
    turn: { role: TurnRole; text: string; at: Date; repeat?: boolean },
  ): Promise<void> {
    const max: Record<string, unknown> = {
      lastMessageAt: turn.at,
      lastMessageKey: `${turn.at.toISOString()}\u0000${turn.role}\u0000${preview(turn.text)}`,
    };
    if (turn.role === 'user') max.lastInboundAt = turn.at;
    const row = await this.write(db, agentId, userId, {
      ...(turn.repeat
        ? { $setOnInsert: { agentId, userId, messageCount: 1 } }
        : { $inc: { messageCount: 1 }, $setOnInsert: { agentId, userId } }),
      $max: max,
    });
    await this.moveToTop(db, row);
  }

  /** Makes `chatId` the thread's current chat (called as the chat document is created). */
  async setChat(db: Connection, agentId: string, userId: string, chatId: string): Promise<void> {
    await this.write(db, agentId, userId, {
      $set: { chatId },
      $setOnInsert: { agentId, userId, messageCount: 0 },
    });
  }

  async setUsername(db: Connection, agentId: string, userId: string, username: string): Promise<void> {
    const row = await this.write(db, agentId, userId, {
      $set: { username },
      $setOnInsert: { agentId, userId, messageCount: 0 },
    });
    await this.refreshEntry(db, row);
  }

  /** Pauses the AI for this user until `until` (or resumes it with `undefined`). */
  async setPause(db: Connection, agentId: string, userId: string, until: Date | undefined): Promise<void> {
    const update = until ? { $set: { aiPausedUntil: until } } : { $unset: { aiPausedUntil: '' } };
    const row = await this.write(db, agentId, userId, {
      ...update,
      $setOnInsert: { agentId, userId, messageCount: 0 },
    });
    await this.refreshEntry(db, row);
  }

  /** Pauses the AI until `until` unless it is already paused for longer (a person answering never shortens a pause). */
  async extendPause(db: Connection, agentId: string, userId: string, until: Date): Promise<void> {
    const row = await this.write(db, agentId, userId, {
      $max: { aiPausedUntil: until },
      $setOnInsert: { agentId, userId, messageCount: 0 },
    });
    await this.refreshEntry(db, row);
  }

  /**
   * Most recent first, `limit` users and the cursor of the next page, from the recency pages alone: the
   * head, then older pages, each page's summaries ordered by last message time. A user met again in an
   * older page (a copy a crash left behind) is listed once, where it was met first.
   */
  async page(
    db: Connection,
    agentId: string,
    opts: { limit: number; before?: ConversationCursor },
  ): Promise<{ rows: ConversationRow[]; next?: ConversationCursor }> {
    const pages = await this.recency(db);
    const head = await pages.findOne({ _id: headId(agentId) });
    if (!head) return { rows: [] };
    const out: { d: ConversationDoc; k: number; key: string }[] = [];
    const seen = new Set<string>();
    for (let k = Math.min(opts.before?.k ?? head.top, head.top); k >= 0 && out.length <= opts.limit; k--) {
      const page = k === head.top ? head : await pages.findOne({ _id: pageId(agentId, k) });
      const here = Object.values(page?.s ?? {})
        .map((e) => fromEntry(agentId, e))
        .filter((d) => d.lastMessageAt !== undefined && !seen.has(d.userId))
        .map((d) => ({ d, k, key: rowKey(d) }))
        .filter((r) => opts.before?.k !== k || r.key < opts.before.key)
        .sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
      for (const r of here) {
        seen.add(r.d.userId);
        out.push(r);
      }
    }
    const more = out.length > opts.limit;
    const rows = more ? out.slice(0, opts.limit) : out;
    const last = rows[rows.length - 1];
    return {
      rows: rows.map((r) => fromDoc({ ...r.d, _id: conversationId(agentId, r.d.userId) })),
      next: more && last ? { k: last.k, key: last.key } : undefined,
    };
  }

  /**
   * Puts the row's summary in the head (one write: the head's `top` and size come back with it); a user
   * listed in an older page moves out of it, and a full head becomes a page. Serialised per agent; moves
   * that queue behind one go out together as the next (every turn of an agent comes through here).
   */
  private async moveToTop(db: Connection, row: ConversationDoc): Promise<void> {
    await this.moves.submit(`${db.name}\u0000${row.agentId}`, [{ db, row }]);
  }

  /** At most a page of users per batch: a head then holds under two pages' worth before it rolls. */
  private readonly moves = new KeyedGroupCommit<{ db: Connection; row: ConversationDoc }, void>(
    (key, asks) =>
      recencyWrites.run(key, () =>
        writeInGroups(
          asks,
          (a) => a.db,
          async (db, mine) => {
            const failed = await this.moveAllToTop(
              db,
              mine.map((a) => a.row),
            );
            return mine.map((a) => {
              const reason = failed.get(a.row.userId);
              return reason === undefined
                ? { status: 'fulfilled', value: undefined }
                : { status: 'rejected', reason };
            });
          },
        ),
      ),
    { maxItems: RECENCY_PAGE_SIZE },
  );

  /**
   * moveToTop for several rows of one agent: one head write for all of them, then each row's own
   * follow-up. A follow-up that fails fails only its user's move (the others stand; the head then waits
   * for the next move to roll); the head write failing fails them all (nothing was written).
   */
  private async moveAllToTop(db: Connection, written: ConversationDoc[]): Promise<Map<string, unknown>> {
    const agentId = written[0]!.agentId;
    const latest = new Map<string, ConversationDoc>(); // per user, its latest version in this batch
    for (const r of written) {
      const had = latest.get(r.userId);
      if (!had || (r.v ?? 0) > (had.v ?? 0)) latest.set(r.userId, r);
    }
    const pages = await this.recency(db);
    const head = await pages.findOneAndUpdate(
      { _id: headId(agentId) },
      {
        $max: Object.fromEntries([...latest.values()].map((r) => [`s.${entryKey(r.userId)}`, entryOf(r)])),
        $setOnInsert: { agent: agentId, top: 0 },
      },
      { upsert: true, returnDocument: 'after' },
    );
    if (!head) throw new Error(`instagram_conversation_recency: ${headId(agentId)} not returned`);
    const failed = new Map<string, unknown>();
    let headChanged = false;
    for (const row of latest.values()) {
      // `row` may be older than a concurrent turn's move of this user: where it really was comes back from
      // the write that moves it (pages only ever go up, so a row already on top is never written).
      if (row.recencyPage === head.top) continue;
      const field = `s.${entryKey(row.userId)}`;
      try {
        const before = await this.write(
          db,
          agentId,
          row.userId,
          { $set: { recencyPage: head.top } },
          'before',
        );
        const was = before.recencyPage;
        if (was !== undefined && was !== head.top)
          await pages.updateOne({ _id: pageId(agentId, was) }, { $unset: { [field]: '' } });
        // A write since `row` (a pause, a name) whose refresh found the user not listed yet: its summary.
        if ((before.v ?? 0) > (row.v ?? 0)) {
          headChanged = true;
          await pages.updateOne({ _id: headId(agentId) }, { $max: { [field]: entryOf(before) } });
        }
      } catch (err) {
        failed.set(row.userId, err);
      }
    }
    const users = Object.keys(head.s ?? {});
    if (users.length >= RECENCY_PAGE_SIZE && failed.size === 0) {
      // What the head holds now: a summary written just above is in it, not in the `head` returned before.
      // (`top` in the filter: another process may have rolled it meanwhile.)
      const now = headChanged ? await pages.findOne({ _id: headId(agentId), top: head.top }) : head;
      if (now) {
        // Copied first, emptied second: a crash between the two copies it again next time.
        await pages.updateOne(
          { _id: pageId(agentId, head.top) },
          { $set: { agent: agentId, top: head.top, s: now.s } },
          { upsert: true },
        );
        await pages.updateOne(
          { _id: headId(agentId), top: head.top }, // another process may have emptied it already
          {
            $set: { top: head.top + 1 },
            $unset: Object.fromEntries(Object.keys(now.s ?? {}).map((u) => [`s.${u}`, ''])),
          },
        );
      }
    }
    return failed;
  }

  /** A listed user's pause or username changed: its summary is updated where it lives, not moved. */
  private async refreshEntry(db: Connection, written: ConversationDoc): Promise<void> {
    // No early return on `written.recencyPage`: a first turn's move may be waiting for the lock right now.
    const { agentId, userId } = written;
    await recencyWrites.run(`${db.name}\u0000${agentId}`, async () => {
      // Read again under the lock: a turn may have moved the user since this write.
      const row = await (await this.rows(db)).findOne({ _id: conversationId(agentId, userId) });
      if (row?.recencyPage === undefined) return;
      const pages = await this.recency(db);
      const head = await pages.findOne({ _id: headId(agentId) });
      const where = head?.top === row.recencyPage ? headId(agentId) : pageId(agentId, row.recencyPage);
      await pages.updateOne({ _id: where }, { $max: { [`s.${entryKey(userId)}`]: entryOf(row) } });
    });
  }

  /**
   * Rebuilds an agent's recency pages from its rows (oldest first into pages of RECENCY_PAGE_SIZE, the
   * newest in the head): for rows imported in bulk, and to repair pages after a lost write. Reads every
   * row of the agent: a maintenance step, not a request path.
   */
  async rebuildRecency(db: Connection, agentId: string): Promise<void> {
    const [pages, Rows] = [await this.recency(db), await this.model(db)];
    const rows = await Rows.find({ agentId, lastMessageAt: { $ne: null } })
      .sort({ lastMessageAt: 1, _id: 1 })
      .lean<ConversationDoc[]>();
    await pages.deleteMany({ agent: agentId });
    const chunks: ConversationDoc[][] = [];
    for (let i = 0; i < rows.length; i += RECENCY_PAGE_SIZE)
      chunks.push(rows.slice(i, i + RECENCY_PAGE_SIZE));
    const top = Math.max(chunks.length - 1, 0);
    const summaries = (chunk: ConversationDoc[] = []) =>
      Object.fromEntries(chunk.map((r) => [entryKey(r.userId), entryOf(r)]));
    await pages.insertMany([
      { _id: headId(agentId), agent: agentId, top, s: summaries(chunks[top]) },
      ...chunks
        .slice(0, top)
        .map((chunk, k) => ({ _id: pageId(agentId, k), agent: agentId, top: k, s: summaries(chunk) })),
    ]);
    // One update each: a bulkWrite of ~100+ updates never returns from FerretDB 1.24 (seen here).
    for (const [k, chunk] of chunks.entries())
      for (const r of chunk) await Rows.collection.updateOne({ _id: r._id }, { $set: { recencyPage: k } });
  }

  private async recency(db: Connection) {
    return (await modelOn(db, 'InstagramConversationRecency', recencySchema))
      .collection as unknown as mongo.Collection<RecencyDoc>;
  }

  /**
   * One update of a row, by `_id`, upserting it and counting its version (`v`); resolves with the row as
   * it is after the update (or was before it). Serialised per row in this process, and retried once when
   * two first writes for a row race to insert it (E11000).
   */
  private async write(
    db: Connection,
    agentId: string,
    userId: string,
    update: { $inc?: Record<string, number> } & Record<string, unknown>,
    returnDocument: 'before' | 'after' = 'after',
  ): Promise<ConversationDoc> {
    const c = await this.rows(db);
    const _id = conversationId(agentId, userId);
    const versioned = { ...update, $inc: { ...update.$inc, v: 1 } };
    const op = async () => {
      // FerretDB 1.24's findAndModify takes no projection; a row is small.
      const doc = await c.findOneAndUpdate({ _id }, versioned, { upsert: true, returnDocument });
      if (!doc && returnDocument === 'before') return { _id, agentId, userId } as ConversationDoc;
      if (!doc) throw new Error(`instagram_conversations: ${_id.toHexString()} not returned`);
      return doc;
    };
    return rowWrites.run(`${db.name}\u0000${_id.toHexString()}`, async () => {
      try {
        return await op();
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        return op();
      }
    });
  }
}
