import { Schema, type Connection, type mongo } from 'mongoose';
import { isDuplicateKey, modelOn } from '../db/mongo';
import { withTimeout } from '../lib/with-timeout';

/**
 * A note written before every send to Instagram and completed after it. Meta echoes each message a page
 * sends; the echo can arrive before the send call returns, or after a send that failed ambiguously. These
 * notes let an echo be recognised as ours (by mid, or by text while the send is in flight) instead of being
 * taken for a person typing in the Instagram app.
 */
export interface OutboundNote {
  /** `agentId:key`: begun, completed and re-read by `_id` alone (the mids beside them: `midId`). */
  _id: string;
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
    _id: String,
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
schema.index({ agentId: 1, userId: 1, status: 1, createdAt: -1 });
schema.index({ createdAt: 1 }); // retention sweep

/**
 * The Instagram message ids of what we sent live in the same collection as `{ _id: 'mid:<agentId>:<mid>',
 * createdAt }`: recognising the echo of our own message is then one lookup by `_id` (the only filter
 * FerretDB 1.24 serves from an index), not a scan, and completing a note is one `update` command that
 * registers the mid and then completes the note (two statements, in order). They hold none of a note's
 * fields, so no query for notes matches them; they are swept with the notes.
 */
const midId = (agentId: string, mid: string) => `mid:${agentId}:${mid}`;
/** The write that registers a mid (an upsert: registering it twice leaves one entry). */
const midRegistration = (agentId: string, mid: string) => ({
  filter: { _id: midId(agentId, mid) },
  update: { $setOnInsert: { createdAt: new Date() } },
  upsert: true,
});

/** How long an in-flight or uncertain send may still be matched to an echo by its text. */
const MATCH_WINDOW_MS = 60 * 60_000;

const noteId = (agentId: string, key: string) => `${agentId}:${key}`;

/** How many of this process's latest sent mids it remembers (a few MB at most). */
const RECENT_MIDS = 20_000;

/** The longest an echo's acknowledgement waits for its send's note to be completed (then it is stored). */
const COMPLETION_WAIT_MS = 2_000;

export class OutboundRepo {
  /**
   * The latest mids this process sent (by `midId`, oldest first): Meta echoes each of them, and an
   * echo found here is ours beyond doubt, so intake acknowledges it without storing it (WebhookService).
   * An echo of another process's send, or one that beats its send's answer, is not here: it takes the
   * stored path and is recognised there.
   */
  private readonly recent = new Set<string>();
  /** Notes being completed right now, by `agentId:mid` (Meta answered with the mid; the note is not written yet). */
  private readonly completing = new Map<string, Promise<unknown>>();

  /**
   * Whether this process sent the message with this mid and has completed its note. An echo that comes
   * while the note is being completed (Meta echoes at once, often before the note's two writes return)
   * waits for them: once they are written the echo has nothing left to do; if they fail (or take longer
   * than COMPLETION_WAIT_MS) it is not ours here and is stored, as a retry of the send needs it.
   */
  async sentHere(agentId: string, mid: string): Promise<boolean> {
    const id = midId(agentId, mid);
    const completing = this.completing.get(id);
    if (completing) await withTimeout(completing, COMPLETION_WAIT_MS).catch(() => undefined);
    return this.recent.has(id);
  }

  /** A note of ours is completed with this mid: its echo, when it comes, has nothing left to do. */
  private noteSentHere(agentId: string, mid: string): void {
    this.recent.add(midId(agentId, mid));
    if (this.recent.size > RECENT_MIDS) this.recent.delete(this.recent.values().next().value!);
  }

  private async notes(db: Connection) {
    return (await modelOn(db, 'InstagramOutbound', schema))
      .collection as unknown as mongo.Collection<OutboundNote>;
  }

  private async rememberMid(db: Connection, agentId: string, mid: string): Promise<void> {
    const { filter, update, upsert } = midRegistration(agentId, mid);
    try {
      await (await this.notes(db)).updateOne(filter, update, { upsert });
    } catch (err) {
      // Two registrations raced to insert it: it is registered.
      if (!isDuplicateKey(err)) throw err;
    }
  }

  /** Did we send the message with this mid? (One lookup by `_id`.) */
  async isOurs(db: Connection, agentId: string, mid: string): Promise<boolean> {
    const c = await this.notes(db);
    return (await c.findOne({ _id: midId(agentId, mid) }, { projection: { _id: 1 } })) !== null;
  }

  /**
   * Notes a send about to happen; returns the existing note when this key was noted before (a retry),
   * with `created: false`. A plain insert, which the unique `_id` refuses for a repeat: the first attempt,
   * by far the common case, needs no query.
   */
  async begin(
    db: Connection,
    note: Pick<OutboundNote, 'key' | 'agentId' | 'userId' | 'text' | 'attachmentUrl'>,
  ): Promise<{ note: OutboundNote; created: boolean }> {
    const c = await this.notes(db);
    const fresh: OutboundNote = {
      _id: noteId(note.agentId, note.key),
      ...note,
      status: 'sending',
      createdAt: new Date(),
    };
    try {
      await c.insertOne(fresh);
      return { note: fresh, created: true };
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    return { note: (await c.findOne({ _id: fresh._id })) as unknown as OutboundNote, created: false };
  }

  /** Completes the note; while its writes run, `sentHere` for its mid waits for them (registered at once). */
  complete(
    db: Connection,
    agentId: string,
    key: string,
    set: { status: OutboundNote['status']; mid?: string },
  ): Promise<void> {
    const writes = this.writeCompletion(db, agentId, key, set);
    if (!set.mid) return writes;
    const id = midId(agentId, set.mid);
    this.completing.set(id, writes);
    const forget = () => {
      if (this.completing.get(id) === writes) this.completing.delete(id);
    };
    writes.then(forget, forget);
    return writes;
  }

  private async writeCompletion(
    db: Connection,
    agentId: string,
    key: string,
    set: { status: OutboundNote['status']; mid?: string },
  ): Promise<void> {
    const c = await this.notes(db);
    const complete = { filter: { _id: noteId(agentId, key) }, update: { $set: set } };
    if (!set.mid) {
      await c.updateOne(complete.filter, complete.update);
      return;
    }
    // The mid is registered before the note is completed (an echo in between is ours by mid): one ordered
    // command. It is remembered in memory (its echo then dropped at intake) only once the note says `sent`
    // with it, so a retry after a failure here finds its echo stored, not dropped, and never sends the part
    // again.
    try {
      await c.bulkWrite(
        [{ updateOne: midRegistration(agentId, set.mid) }, { updateOne: complete }] as never,
        {
          ordered: true,
        },
      );
    } catch (err) {
      // An echo's claim registered the mid meanwhile (its insert won the race): the note still needs completing.
      if (!isDuplicateKey(err)) throw err;
      await c.updateOne(complete.filter, complete.update);
    }
    this.noteSentHere(agentId, set.mid);
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
    const c = await this.notes(db);
    if (await this.isOurs(db, agentId, mid)) return true;
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
    if (claimed) {
      await this.rememberMid(db, agentId, mid);
      this.noteSentHere(agentId, mid); // the claim completed the note
    }
    return Boolean(claimed);
  }

  /**
   * Retention: notes and mids older than `olderThan` are deleted. Both are needed only while Meta may
   * still echo or redeliver, and while a send may still be retried (minutes); kept as long as the handled
   * events that deduplicate redeliveries.
   */
  async sweep(db: Connection, olderThan: Date): Promise<number> {
    return (await (await this.notes(db)).deleteMany({ createdAt: { $lt: olderThan } })).deletedCount;
  }

  async find(db: Connection, agentId: string, key: string): Promise<OutboundNote | undefined> {
    return (
      ((await (
        await this.notes(db)
      ).findOne({ _id: noteId(agentId, key) })) as unknown as OutboundNote | null) ?? undefined
    );
  }
}
