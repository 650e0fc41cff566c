import { Schema, Types, type Connection } from 'mongoose';
import { modelOn } from '../db/mongo';
import type { TurnRole } from './chats.repo';

/**
 * One row per (agent, Instagram user), kept up to date as turns are written, so `/conversations` and the
 * 24-hour window never scan chats. Also holds the human-takeover pause.
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
}

const schema = new Schema<ConversationRow>(
  {
    agentId: { type: String, required: true },
    userId: { type: String, required: true },
    username: String,
    lastMessage: String,
    lastMessageRole: String,
    lastMessageAt: Date,
    lastInboundAt: Date,
    messageCount: { type: Number, default: 0 },
    aiPausedUntil: Date,
  },
  { collection: 'instagram_conversations', versionKey: false },
);
schema.index({ agentId: 1, userId: 1 }, { unique: true });
schema.index({ agentId: 1, lastMessageAt: -1, _id: -1 }); // GET /conversations

export const PREVIEW_LENGTH = 100;

/** A one-line preview of at most PREVIEW_LENGTH characters (code points, never half an emoji). */
export function preview(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  const chars = Array.from(flat);
  return chars.length <= PREVIEW_LENGTH ? flat : `${chars.slice(0, PREVIEW_LENGTH - 1).join('')}…`;
}

const isDuplicateKey = (err: unknown) => (err as { code?: number })?.code === 11000;

export class ConversationsRepo {
  model(db: Connection) {
    return modelOn(db, 'InstagramConversation', schema);
  }

  async get(db: Connection, agentId: string, userId: string): Promise<ConversationRow | undefined> {
    return (await (await this.model(db)).findOne({ agentId, userId }).lean<ConversationRow>()) ?? undefined;
  }

  /** Counts a new turn; moves the preview only forward in time (turns may be recorded out of order). */
  async recordTurn(
    db: Connection,
    agentId: string,
    userId: string,
    turn: { role: TurnRole; text: string; at: Date },
  ): Promise<void> {
    const c = (await this.model(db)).collection;
    const inc: Record<string, unknown> = { $inc: { messageCount: 1 } };
    if (turn.role === 'user') inc.$max = { lastInboundAt: turn.at };
    await this.upsert(() =>
      c.updateOne(
        { agentId, userId },
        { ...inc, $setOnInsert: { _id: new Types.ObjectId() } },
        { upsert: true },
      ),
    );
    await c.updateOne(
      { agentId, userId, $or: [{ lastMessageAt: { $lte: turn.at } }, { lastMessageAt: null }] },
      { $set: { lastMessage: preview(turn.text), lastMessageRole: turn.role, lastMessageAt: turn.at } },
    );
  }

  async setUsername(db: Connection, agentId: string, userId: string, username: string): Promise<void> {
    await (await this.model(db)).collection.updateOne({ agentId, userId }, { $set: { username } });
  }

  /** Pauses the AI for this user until `until` (or resumes it with `undefined`). */
  async setPause(db: Connection, agentId: string, userId: string, until: Date | undefined): Promise<void> {
    const c = (await this.model(db)).collection;
    const update = until ? { $set: { aiPausedUntil: until } } : { $unset: { aiPausedUntil: '' } };
    await this.upsert(() =>
      c.updateOne(
        { agentId, userId },
        { ...update, $setOnInsert: { _id: new Types.ObjectId(), messageCount: 0 } },
        { upsert: true },
      ),
    );
  }

  /** Pauses the AI until `until` unless it is already paused for longer (a person answering never shortens a pause). */
  async extendPause(db: Connection, agentId: string, userId: string, until: Date): Promise<void> {
    const c = (await this.model(db)).collection;
    await this.upsert(() =>
      c.updateOne(
        { agentId, userId },
        { $max: { aiPausedUntil: until }, $setOnInsert: { _id: new Types.ObjectId(), messageCount: 0 } },
        { upsert: true },
      ),
    );
  }

  /** Known usernames of these users, in one query (for a page of /messages). */
  async usernames(db: Connection, agentId: string, userIds: string[]): Promise<Map<string, string>> {
    if (userIds.length === 0) return new Map();
    const rows = await (
      await this.model(db)
    )
      .find({ agentId, userId: { $in: userIds } }, { userId: 1, username: 1 })
      .lean<Pick<ConversationRow, 'userId' | 'username'>[]>();
    return new Map(rows.flatMap((r) => (r.username ? [[r.userId, r.username] as const] : [])));
  }

  async page(
    db: Connection,
    agentId: string,
    opts: { limit: number; before?: { t: number; id: string } },
  ): Promise<{ rows: ConversationRow[]; next?: { t: number; id: string } }> {
    const filter: Record<string, unknown> = { agentId, lastMessageAt: { $ne: null } };
    if (opts.before) {
      const t = new Date(opts.before.t);
      filter.$or = [
        { lastMessageAt: { $lt: t } },
        { lastMessageAt: t, _id: { $lt: new Types.ObjectId(opts.before.id) } },
      ];
    }
    const rows = await (
      await this.model(db)
    )
      .find(filter)
      .sort({ lastMessageAt: -1, _id: -1 })
      .limit(opts.limit + 1)
      .lean<ConversationRow[]>();
    const more = rows.length > opts.limit;
    const page = more ? rows.slice(0, opts.limit) : rows;
    const last = page[page.length - 1];
    return {
      rows: page,
      next: more && last ? { t: last.lastMessageAt.getTime(), id: last._id.toHexString() } : undefined,
    };
  }

  /** Two first writers for one user race on the unique index: the loser simply applies its update again. */
  private async upsert(op: () => Promise<unknown>): Promise<void> {
    try {
      await op();
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      await op();
    }
  }
}
