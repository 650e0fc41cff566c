import crypto from 'node:crypto';
import { Schema, Types, type Connection, type mongo } from 'mongoose';
import { isDuplicateKey, modelOn } from '../db/mongo';
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
}

/**
 * `GET /conversations` without a query over the rows: an agent's users in recency pages, `_id`
 * `p:<agent>:<k>`, each listing up to RECENCY_PAGE_SIZE users, and a head `h:<agent>` naming the newest
 * page (`top`). A turn moves its user into the newest page (`$addToSet` there, `$pull` from the page it
 * was in); a full newest page opens the next. Every page holds users whose last move came after every
 * user of the page below, so reading pages from `top` down and ordering each page's rows by time lists
 * the rows most recent first — each a read by `_id`, the only lookup FerretDB 1.24 serves from an index.
 */
interface RecencyDoc {
  _id: string;
  agent: string;
  top: number;
  users: string[];
}
const recencySchema = new Schema<RecencyDoc>(
  { _id: String, agent: String, top: Number, users: [String] },
  { collection: 'instagram_conversation_recency', versionKey: false },
);
recencySchema.index({ agent: 1 }); // rebuildRecency only
export const RECENCY_PAGE_SIZE = 50;
const headId = (agentId: string) => `h:${agentId}`;
const pageId = (agentId: string, k: number) => `p:${agentId}:${k}`;

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
  return new Types.ObjectId(
    crypto.createHash('sha256').update(`${agentId}\u0000${userId}`).digest().subarray(0, 12),
  );
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

  async get(db: Connection, agentId: string, userId: string): Promise<ConversationRow | undefined> {
    const doc = await (
      await this.model(db)
    )
      .findById(conversationId(agentId, userId))
      .lean<ConversationDoc>();
    return doc ? fromDoc(doc) : undefined;
  }

  /** Counts a new turn; moves the preview only forward in time (turns may be recorded out of order). */
  async recordTurn(
    db: Connection,
    agentId: string,
    userId: string,
    turn: { role: TurnRole; text: string; at: Date },
  ): Promise<void> {
    const max: Record<string, unknown> = {
      lastMessageAt: turn.at,
      lastMessageKey: `${turn.at.toISOString()}\u0000${turn.role}\u0000${preview(turn.text)}`,
    };
    if (turn.role === 'user') max.lastInboundAt = turn.at;
    await this.write(db, agentId, userId, {
      $inc: { messageCount: 1 },
      $max: max,
      $setOnInsert: { agentId, userId },
    });
    await this.touch(db, agentId, userId);
  }

  /** Makes `chatId` the thread's current chat (called as the chat document is created). */
  async setChat(db: Connection, agentId: string, userId: string, chatId: string): Promise<void> {
    await this.write(db, agentId, userId, {
      $set: { chatId },
      $setOnInsert: { agentId, userId, messageCount: 0 },
    });
  }

  async setUsername(db: Connection, agentId: string, userId: string, username: string): Promise<void> {
    await this.write(db, agentId, userId, {
      $set: { username },
      $setOnInsert: { agentId, userId, messageCount: 0 },
    });
  }

  /** Pauses the AI for this user until `until` (or resumes it with `undefined`). */
  async setPause(db: Connection, agentId: string, userId: string, until: Date | undefined): Promise<void> {
    const update = until ? { $set: { aiPausedUntil: until } } : { $unset: { aiPausedUntil: '' } };
    await this.write(db, agentId, userId, {
      ...update,
      $setOnInsert: { agentId, userId, messageCount: 0 },
    });
  }

  /** Pauses the AI until `until` unless it is already paused for longer (a person answering never shortens a pause). */
  async extendPause(db: Connection, agentId: string, userId: string, until: Date): Promise<void> {
    await this.write(db, agentId, userId, {
      $max: { aiPausedUntil: until },
      $setOnInsert: { agentId, userId, messageCount: 0 },
    });
  }

  /**
   * Most recent first, `limit` rows and the cursor of the next page, from the recency pages: the newest
   * page first, each page's rows fetched by `_id` and ordered by their last message time. A row found
   * in a page it has since left (a copy a concurrent move left behind) is skipped there.
   */
  async page(
    db: Connection,
    agentId: string,
    opts: { limit: number; before?: ConversationCursor },
  ): Promise<{ rows: ConversationRow[]; next?: ConversationCursor }> {
    const [pages, Rows] = [await this.recency(db), await this.model(db)];
    const top = (await pages.findOne({ _id: headId(agentId) }))?.top ?? 0;
    const out: ConversationDoc[] = [];
    for (let k = opts.before?.k ?? top; k >= 0 && out.length <= opts.limit; k--) {
      const page = await pages.findOne({ _id: pageId(agentId, k) });
      if (!page?.users?.length) continue;
      const docs = await Promise.all(
        page.users.map((u) => Rows.findById(conversationId(agentId, u)).lean<ConversationDoc>()),
      );
      const here = docs
        .filter((d): d is ConversationDoc => d?.recencyPage === k && d.lastMessageAt != null)
        .map((d) => ({ d, key: rowKey(d) }))
        .filter((r) => opts.before?.k !== k || r.key < opts.before.key)
        .sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
      for (const r of here) out.push({ ...r.d, recencyPage: k });
    }
    const more = out.length > opts.limit;
    const rows = more ? out.slice(0, opts.limit) : out;
    const last = rows[rows.length - 1];
    return {
      rows: rows.map(fromDoc),
      next: more && last ? { k: last.recencyPage!, key: rowKey(last) } : undefined,
    };
  }

  /**
   * Moves the user's row to the newest recency page unless it is there already (most turns of a
   * conversation in full flow cost one read). Serialised per agent in this process: the head and the
   * pages are shared by all of the agent's users.
   */
  private async touch(db: Connection, agentId: string, userId: string): Promise<void> {
    await recencyWrites.run(`${db.name}\u0000${agentId}`, async () => {
      const [pages, Rows] = [await this.recency(db), await this.model(db)];
      const row = await Rows.findById(conversationId(agentId, userId), { recencyPage: 1 }).lean<{
        recencyPage?: number;
      }>();
      const top = (await pages.findOne({ _id: headId(agentId) }))?.top ?? 0;
      if (row?.recencyPage === top) return;
      const after = await pages.findOneAndUpdate(
        { _id: pageId(agentId, top) },
        { $addToSet: { users: userId }, $setOnInsert: { agent: agentId, top } },
        { upsert: true, returnDocument: 'after' },
      );
      await this.write(db, agentId, userId, { $set: { recencyPage: top } });
      if (row?.recencyPage !== undefined && row.recencyPage !== top)
        await pages.updateOne({ _id: pageId(agentId, row.recencyPage) }, { $pull: { users: userId } });
      if ((after?.users.length ?? 0) >= RECENCY_PAGE_SIZE)
        await pages.updateOne(
          { _id: headId(agentId) },
          { $max: { top: top + 1 }, $setOnInsert: { agent: agentId } },
          { upsert: true },
        );
    });
  }

  /**
   * Rebuilds an agent's recency pages from its rows (oldest first into pages of RECENCY_PAGE_SIZE): for
   * rows imported in bulk, and to repair pages after a lost write (see `touch`). Reads every row of the
   * agent: a maintenance step, not a request path.
   */
  async rebuildRecency(db: Connection, agentId: string): Promise<void> {
    const [pages, Rows] = [await this.recency(db), await this.model(db)];
    const rows = await Rows.find({ agentId, lastMessageAt: { $ne: null } }, { userId: 1, lastMessageAt: 1 })
      .sort({ lastMessageAt: 1, _id: 1 })
      .lean<ConversationDoc[]>();
    await pages.deleteMany({ agent: agentId });
    const chunks: string[][] = [];
    for (let i = 0; i < rows.length; i += RECENCY_PAGE_SIZE)
      chunks.push(rows.slice(i, i + RECENCY_PAGE_SIZE).map((r) => r.userId));
    const top = Math.max(chunks.length - 1, 0);
    await pages.insertMany([
      { _id: headId(agentId), agent: agentId, top, users: [] },
      ...chunks.map((users, k) => ({ _id: pageId(agentId, k), agent: agentId, top: k, users })),
    ]);
    // One update each: a bulkWrite of ~100+ updates never returns from FerretDB 1.24 (seen here).
    for (const [k, users] of chunks.entries())
      for (const u of users)
        await Rows.collection.updateOne({ _id: conversationId(agentId, u) }, { $set: { recencyPage: k } });
  }

  private async recency(db: Connection) {
    return (await modelOn(db, 'InstagramConversationRecency', recencySchema))
      .collection as unknown as mongo.Collection<RecencyDoc>;
  }

  /**
   * One update of a row, by `_id`, upserting it: serialised per row in this process, and retried once
   * when two first writes for a row race to insert it (E11000).
   */
  private async write(db: Connection, agentId: string, userId: string, update: object): Promise<void> {
    const c = (await this.model(db)).collection;
    const _id = conversationId(agentId, userId);
    const op = () => c.updateOne({ _id }, update, { upsert: true });
    await rowWrites.run(`${db.name}\u0000${_id.toHexString()}`, async () => {
      try {
        await op();
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        await op();
      }
    });
  }
}
