import { Schema, Types, type Connection } from 'mongoose';
import { modelOn } from '../db/mongo';

/**
 * A note written before every send to Instagram and completed after it. Meta echoes each message a page
 * sends; the echo can arrive before the send call returns, or after a send that failed ambiguously. These
 * notes let an echo be recognised as ours (by mid, or by text while the send is in flight) instead of being
 * taken for a person typing in the Instagram app.
 */
export interface OutboundNote {
  _id: Types.ObjectId;
  key: string;
  agentId: string;
  userId: string;
  text?: string;
  attachmentUrl?: string;
  status: 'sending' | 'sent' | 'uncertain' | 'failed';
  mid?: string;
  createdAt: Date;
}

const schema = new Schema<OutboundNote>(
  {
    key: { type: String, required: true },
    agentId: { type: String, required: true },
    userId: { type: String, required: true },
    text: String,
    attachmentUrl: String,
    status: { type: String, required: true },
    mid: String,
    createdAt: { type: Date, required: true },
  },
  { collection: 'instagram_outbound', versionKey: false },
);
schema.index({ agentId: 1, key: 1 }, { unique: true });
schema.index({ agentId: 1, mid: 1 });
schema.index({ agentId: 1, userId: 1, status: 1, createdAt: -1 });

/** How long an in-flight or uncertain send may still be matched to an echo by its text. */
const MATCH_WINDOW_MS = 60 * 60_000;

export class OutboundRepo {
  private model(db: Connection) {
    return modelOn(db, 'InstagramOutbound', schema);
  }

  /** Notes a send about to happen; returns the existing note when this key was noted before (a retry). */
  async begin(
    db: Connection,
    note: Pick<OutboundNote, 'key' | 'agentId' | 'userId' | 'text' | 'attachmentUrl'>,
  ): Promise<OutboundNote> {
    const c = (await this.model(db)).collection;
    await c.updateOne(
      { agentId: note.agentId, key: note.key },
      { $setOnInsert: { _id: new Types.ObjectId(), ...note, status: 'sending', createdAt: new Date() } },
      { upsert: true },
    );
    return (await c.findOne({ agentId: note.agentId, key: note.key })) as unknown as OutboundNote;
  }

  async complete(
    db: Connection,
    agentId: string,
    key: string,
    set: { status: OutboundNote['status']; mid?: string },
  ): Promise<void> {
    await (await this.model(db)).collection.updateOne({ agentId, key }, { $set: set });
  }

  /**
   * Is this echo ours? By its mid, or else by claiming the oldest in-flight/uncertain note to the same
   * user with the same text (atomically, so two echoes never claim one note).
   */
  async claimEcho(
    db: Connection,
    agentId: string,
    userId: string,
    mid: string,
    text: string | undefined,
  ): Promise<boolean> {
    const c = (await this.model(db)).collection;
    if (await c.findOne({ agentId, mid })) return true;
    const filter: Record<string, unknown> = {
      agentId,
      userId,
      status: { $in: ['sending', 'uncertain'] },
      createdAt: { $gte: new Date(Date.now() - MATCH_WINDOW_MS) },
    };
    if (text !== undefined) filter.text = text;
    else filter.attachmentUrl = { $exists: true };
    const claimed = await c.findOneAndUpdate(
      filter,
      { $set: { status: 'sent', mid } },
      { sort: { createdAt: 1 } },
    );
    return Boolean(claimed);
  }

  async find(db: Connection, agentId: string, key: string): Promise<OutboundNote | undefined> {
    return (
      ((await (
        await this.model(db)
      ).collection.findOne({ agentId, key })) as unknown as OutboundNote | null) ?? undefined
    );
  }
}
