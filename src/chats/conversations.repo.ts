import crypto from 'node:crypto';
import { Schema, Types, type Connection } from 'mongoose';
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
      .lean<ConversationDoc[]>();
    const more = rows.length > opts.limit;
    const page = (more ? rows.slice(0, opts.limit) : rows).map(fromDoc);
    const last = page[page.length - 1];
    return {
      rows: page,
      next: more && last ? { t: last.lastMessageAt.getTime(), id: last._id.toHexString() } : undefined,
    };
  }

  /** Two first writers for one user race on the `_id`: the loser simply applies its update again. */
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
