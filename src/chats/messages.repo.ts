import { Schema, Types, type Connection } from 'mongoose';
import { isDuplicateKey, modelOn } from '../db/mongo';
import type { TurnRole } from './chats.repo';

/**
 * One document per Instagram turn, beside `chats`: what `/messages` pages through (newest first, from an
 * index) and where an outbound Instagram message id is looked up when its echo arrives. Written with every
 * turn by the TurnRecorder; `chats` stays the platform's record.
 */
export interface MessageRow {
  _id: Types.ObjectId;
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
}

const schema = new Schema<MessageRow>(
  {
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
  },
  { collection: 'instagram_messages', versionKey: false },
);
schema.index({ agentId: 1, messageId: 1 }, { unique: true });
schema.index({ agentId: 1, timestamp: -1, _id: -1 }); // GET /messages
schema.index({ agentId: 1, userId: 1, timestamp: -1, _id: -1 }); // GET /messages?userId=, window checks
schema.index({ agentId: 1, instagramMid: 1 }); // echo recognition

export interface Cursor {
  t: number;
  id: string;
}
export const encodeCursor = (c: Cursor) => Buffer.from(`${c.t}.${c.id}`).toString('base64url');
export function decodeCursor(s: string): Cursor | undefined {
  const m = /^(\d{1,16})\.([0-9a-f]{24})$/.exec(Buffer.from(s, 'base64url').toString());
  return m ? { t: Number(m[1]), id: m[2]! } : undefined;
}

export class MessagesRepo {
  model(db: Connection) {
    return modelOn(db, 'InstagramMessage', schema);
  }

  /**
   * Inserts the row unless it exists; true when it was new. A plain insert that the unique
   * (agentId, messageId) index refuses for a repeat: no query at all, where an upsert would scan the whole
   * collection on FerretDB (which only pushes `{ _id }` filters down to SQLite).
   */
  async insert(db: Connection, row: Omit<MessageRow, '_id'>): Promise<boolean> {
    try {
      await (await this.model(db)).collection.insertOne({ _id: new Types.ObjectId(), ...row });
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  async findByMid(db: Connection, agentId: string, mid: string): Promise<MessageRow | undefined> {
    return (
      (await (await this.model(db)).findOne({ agentId, instagramMid: mid }).lean<MessageRow>()) ?? undefined
    );
  }

  async lastInboundAt(db: Connection, agentId: string, userId: string): Promise<Date | undefined> {
    const row = await (
      await this.model(db)
    )
      .findOne({ agentId, userId, role: 'user' }, { timestamp: 1 })
      .sort({ timestamp: -1, _id: -1 })
      .lean<MessageRow>();
    return row?.timestamp;
  }

  /** Newest first; the cursor is the last row's (timestamp, _id), so turns written meanwhile never shift a page. */
  async page(
    db: Connection,
    agentId: string,
    opts: { userId?: string; limit: number; before?: Cursor },
  ): Promise<{ rows: MessageRow[]; next?: Cursor }> {
    const filter: Record<string, unknown> = { agentId };
    if (opts.userId) filter.userId = opts.userId;
    if (opts.before) {
      const t = new Date(opts.before.t);
      filter.$or = [
        { timestamp: { $lt: t } },
        { timestamp: t, _id: { $lt: new Types.ObjectId(opts.before.id) } },
      ];
    }
    const rows = await (
      await this.model(db)
    )
      .find(filter)
      .sort({ timestamp: -1, _id: -1 })
      .limit(opts.limit + 1)
      .lean<MessageRow[]>();
    const more = rows.length > opts.limit;
    const page = more ? rows.slice(0, opts.limit) : rows;
    const last = page[page.length - 1];
    return {
      rows: page,
      next: more && last ? { t: last.timestamp.getTime(), id: last._id.toHexString() } : undefined,
    };
  }
}
