import { Schema, mongo, type Connection } from 'mongoose';
import { shardOf } from '../db/keys';
import { isDuplicateKey, modelOn } from '../db/mongo';
import { GroupCommit } from '../lib/group-commit';
import type { InboundEvent } from './inbound-event';

/**
 * The inbox: every acknowledged webhook event, stored before the 200 with its unique key as `_id`, so Meta's
 * redeliveries are no-ops and a crash after the ack loses nothing. Events are handled per thread
 * (agent × Instagram user) in timestamp order by whichever worker holds that thread's lease.
 *
 * Two places: `instagram_inbound_events` holds only what is still to do (pending) or given up on
 * (failed), so the worker's queries stay small however much history there is — on FerretDB every query
 * but `{ _id }` reads the whole collection. Handled events move to `instagram_inbound_handled_<0…63>`
 * (key and outcome only), keyed by the same `_id`: a redelivery that arrives after its event was handled is
 * recognised there by `_id` and dropped.
 */
export type InboxStatus = 'pending' | 'done' | 'failed' | 'ignored';

/** What a handler has already done for an event, so a retry after a crash resumes instead of repeating. */
export interface Progress {
  chatId?: string;
  /** The agent's answer, so a retry sends it rather than asking the agent again. (Parts already sent are
   * known by their outbound notes.) */
  agentReplies?: string[];
}

export interface StoredEvent {
  /** `${subaccountId}:${agentId}:${event.key}`: unique per Meta event. */
  _id: string;
  dedupeKey: string;
  subaccountId: string;
  agentId: string;
  threadKey: string;
  event: InboundEvent;
  status: InboxStatus;
  attempts: number;
  availableAt: Date;
  receivedAt: Date;
  doneAt?: Date;
  lastError?: string;
  progress?: Progress;
}

const fields = {
  _id: { type: String, required: true },
  dedupeKey: { type: String, required: true },
  subaccountId: { type: String, required: true },
  agentId: { type: String, required: true },
  threadKey: { type: String, required: true },
  event: { type: Schema.Types.Mixed, required: true },
  status: { type: String, required: true },
  attempts: { type: Number, default: 0 },
  availableAt: { type: Date, required: true },
  receivedAt: { type: Date, required: true },
  doneAt: Date,
  lastError: String,
  progress: { type: Schema.Types.Mixed },
};
const schema = new Schema<StoredEvent>(fields, {
  collection: 'instagram_inbound_events',
  versionKey: false,
  minimize: false,
});
schema.index({ status: 1, availableAt: 1 }); // the worker's poll
schema.index({ threadKey: 1, status: 1, 'event.timestamp': 1 }); // one thread's pending events in order

/**
 * A handled event as kept for deduplication (and a glance at what happened): its key, where it belonged,
 * what kind of event it was, and how it ended — not its content, which lives on in `chats`.
 */
export interface HandledEvent {
  _id: string;
  subaccountId: string;
  agentId: string;
  threadKey: string;
  event: Pick<InboundEvent, 'kind' | 'userId' | 'timestamp'> & { mid?: string };
  status: 'done' | 'ignored';
  attempts: number;
  receivedAt: Date;
  doneAt: Date;
}

/**
 * Handled events are spread over HANDLED_SHARDS collections by a hash of their `_id`: the redelivery check
 * is one `_id` lookup, and FerretDB 1.24 reads a whole table even for that, so each table stays small
 * however many events the retention period keeps.
 */
export const HANDLED_SHARDS = 64;
export const handledCollection = (i: number) => `instagram_inbound_handled_${i}`;
/** Which handled-events collection holds this key. */
export const handledShard = (id: string) => shardOf(id, HANDLED_SHARDS);
const handledSchemas = Array.from({ length: HANDLED_SHARDS }, (_, i) => {
  const s = new Schema<HandledEvent>(
    {
      _id: String,
      subaccountId: String,
      agentId: String,
      threadKey: String,
      event: Schema.Types.Mixed,
      status: String,
      attempts: Number,
      receivedAt: Date,
      doneAt: Date,
    },
    { collection: handledCollection(i), versionKey: false },
  );
  s.index({ doneAt: 1 }); // retention sweep
  return s;
});

interface LeaseDoc {
  _id: string;
  owner: string;
  leaseUntil: Date;
}
const leaseSchema = new Schema<LeaseDoc>(
  { _id: String, owner: String, leaseUntil: Date },
  { collection: 'instagram_thread_leases', versionKey: false },
);

export function threadKeyOf(subaccountId: string, agentId: string, userId: string): string {
  return `${subaccountId}:${agentId}:${userId}`;
}

export class InboxRepo {
  constructor(private readonly platformDb: Connection) {}

  events() {
    return modelOn(this.platformDb, 'InstagramInboundEvent', schema);
  }

  private handled(id: string) {
    const i = handledShard(id);
    return modelOn(this.platformDb, `InstagramInboundHandled${i}`, handledSchemas[i]!);
  }

  /** Handled events matching `filter`, across the shards (operations and tests; reads every shard). */
  async handledWhere(filter: Record<string, unknown>): Promise<HandledEvent[]> {
    const all = await Promise.all(
      Array.from({ length: HANDLED_SHARDS }, (_, i) =>
        this.platformDb.collection<HandledEvent>(handledCollection(i)).find(filter).toArray(),
      ),
    );
    return all.flat();
  }

  private leases() {
    return modelOn(this.platformDb, 'InstagramThreadLease', leaseSchema);
  }

  // The worker's commands go to the collections themselves: a handful of them run for every DM, and
  // mongoose's query layer adds ~5–10 % of CPU per command over the driver's (`npm run bench --
  // --only=commands`). The models above still create the indexes first.
  private async eventCollection() {
    return (await this.events()).collection as unknown as mongo.Collection<StoredEvent>;
  }

  private async leaseCollection() {
    return (await this.leases()).collection as unknown as mongo.Collection<LeaseDoc>;
  }

  private async handledCollectionOf(id: string) {
    return (await this.handled(id)).collection as unknown as mongo.Collection<HandledEvent>;
  }

  /**
   * Concurrent webhooks share one insert (group commit, see src/lib/group-commit.ts): FerretDB on SQLite
   * runs every write as a SQLite transaction, one at a time, so 64 deliveries at once were 64 inserts in a
   * queue (ack p99 ~127 ms). Deliveries that arrive while an insert is in flight go out together as the
   * next one: one transaction for many deliveries. A lone delivery is inserted at once.
   */
  private readonly inserts = new GroupCommit((docs: StoredEvent[]) => this.insertBatch(docs), {
    maxItems: 500,
  });

  /**
   * Stores new events; redeliveries (same key) are ignored. Resolves once the events are durable, with how
   * many were new; rejects (so the webhook answers 5xx and Meta redelivers) when any of them was refused.
   */
  async store(subaccountId: string, agentId: string, events: InboundEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    const now = new Date();
    const docs: StoredEvent[] = events.map((event) => ({
      _id: `${subaccountId}:${agentId}:${event.key}`,
      dedupeKey: `${subaccountId}:${agentId}:${event.key}`,
      subaccountId,
      agentId,
      threadKey: threadKeyOf(subaccountId, agentId, event.userId),
      event,
      status: 'pending' as const,
      attempts: 0,
      availableAt: now,
      receivedAt: now,
    }));
    const inserted = await this.inserts.submit(docs);
    return inserted.filter(Boolean).length;
  }

  /**
   * One unordered insert of a batch: per document, `true` inserted, `false` already stored (E11000: a
   * redelivery, or the same event twice in this batch), rejected for any other refusal. The driver reports
   * refusals as `writeErrors` indexed into `docs`. The rest count as written only when the server's
   * inserted count says all of them were (the driver stops after a sub-batch with errors, even unordered);
   * anything else — no write errors (network), a write-concern error, a count that does not add up — fails
   * the whole batch: its callers answer 5xx, and Meta's redelivery is deduplicated by `_id`.
   */
  private async insertBatch(docs: StoredEvent[]): Promise<PromiseSettledResult<boolean>[]> {
    const events = await this.eventCollection();
    if (docs.length === 1) {
      // A lone delivery (the common case when traffic is light): the plain insert, lighter than a bulk write.
      try {
        await events.insertOne(docs[0]!);
        return [{ status: 'fulfilled', value: true }];
      } catch (err) {
        if (isDuplicateKey(err)) return [{ status: 'fulfilled', value: false }];
        throw err;
      }
    }
    try {
      await events.insertMany(docs, { ordered: false });
      return docs.map(() => ({ status: 'fulfilled', value: true }));
    } catch (err) {
      if (!(err instanceof mongo.MongoBulkWriteError)) throw err;
      const writeErrors = ([] as mongo.WriteError[]).concat(err.writeErrors);
      const accounted = err.insertedCount + writeErrors.length === docs.length;
      if (writeErrors.length === 0 || !accounted || err.result.getWriteConcernError()) throw err;
      const refused = new Map(writeErrors.map((w) => [w.index, w]));
      return docs.map((_, i): PromiseSettledResult<boolean> => {
        const w = refused.get(i);
        if (!w) return { status: 'fulfilled', value: true };
        if (isDuplicateKey(w)) return { status: 'fulfilled', value: false };
        return { status: 'rejected', reason: err };
      });
    }
  }

  /** Threads with work due now, oldest first. */
  async dueThreads(limit: number, exclude: Set<string>): Promise<string[]> {
    const rows = await (
      await this.eventCollection()
    )
      .find({ status: 'pending', availableAt: { $lte: new Date() } }, { projection: { threadKey: 1 } })
      .sort({ availableAt: 1 })
      .limit(limit * 4)
      .toArray();
    const out: string[] = [];
    for (const r of rows) if (!exclude.has(r.threadKey) && !out.includes(r.threadKey)) out.push(r.threadKey);
    return out.slice(0, limit);
  }

  /**
   * The thread's pending events due before `until` wait until then: its oldest event is to be retried at
   * `until`, and the ones behind it cannot go first (per-user order). Without this the thread stays "due"
   * through them, and every poll claims it, finds its head not due and lets it go, until the retry.
   */
  async deferThread(threadKey: string, until: Date): Promise<void> {
    await (
      await this.eventCollection()
    ).updateMany(
      { threadKey, status: 'pending', availableAt: { $lt: until } },
      { $set: { availableAt: until } },
    );
  }

  /** The oldest `limit` pending events of a thread (by Meta's timestamp), due or not. */
  async pendingOfThread(threadKey: string, limit: number): Promise<StoredEvent[]> {
    return (await this.eventCollection())
      .find({ threadKey, status: 'pending' })
      .sort({ 'event.timestamp': 1, _id: 1 })
      .limit(limit)
      .toArray();
  }

  async saveProgress(id: string, progress: Progress): Promise<void> {
    await (await this.eventCollection()).updateOne({ _id: id }, { $set: { progress } });
  }

  /** Was an event with this key handled already? (A redelivery that came after it was handled.) */
  async isHandled(id: string): Promise<boolean> {
    return (
      (await (await this.handledCollectionOf(id)).findOne({ _id: id }, { projection: { _id: 1 } })) !== null
    );
  }

  /** Moves the event to the handled collections: its key and outcome, kept for deduplication. */
  async finish(stored: StoredEvent, status: 'done' | 'ignored'): Promise<void> {
    const e = stored.event;
    const kept: HandledEvent = {
      _id: stored._id,
      subaccountId: stored.subaccountId,
      agentId: stored.agentId,
      threadKey: stored.threadKey,
      event: { kind: e.kind, userId: e.userId, timestamp: e.timestamp, ...(e.mid ? { mid: e.mid } : {}) },
      status,
      attempts: stored.attempts,
      receivedAt: stored.receivedAt,
      doneAt: new Date(),
    };
    try {
      await (await this.handledCollectionOf(stored._id)).insertOne(kept);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err; // moved before a crash that left the pending copy behind
    }
    await this.dropPending(stored._id);
  }

  async dropPending(id: string): Promise<void> {
    await (await this.eventCollection()).deleteOne({ _id: id });
  }

  async retryLater(id: string, attempts: number, availableAt: Date, error: string): Promise<void> {
    await (
      await this.eventCollection()
    ).updateOne({ _id: id }, { $set: { attempts, availableAt, lastError: error } });
  }

  /** Given up on: stays in the inbox as `failed`, with its last error, for operators to see. */
  async fail(id: string, attempts: number, error: string): Promise<void> {
    await (
      await this.eventCollection()
    ).updateOne({ _id: id }, { $set: { status: 'failed', attempts, lastError: error, doneAt: new Date() } });
  }

  /**
   * Takes a thread's lease if it is free or expired; false when another worker holds it. Exactly one
   * contender wins (unique `_id`). `abandoned`: the lease was there and had expired, never released: its
   * holder crashed or lost it mid-event, so the thread's oldest event may have been started already.
   */
  async acquireLease(threadKey: string, owner: string, ms: number): Promise<false | 'free' | 'abandoned'> {
    const now = new Date();
    try {
      const res = await (
        await this.leaseCollection()
      ).updateOne(
        { _id: threadKey, leaseUntil: { $lt: now } },
        { $set: { owner, leaseUntil: new Date(now.getTime() + ms) } },
        { upsert: true },
      );
      if (res.upsertedCount === 1) return 'free';
      return res.modifiedCount === 1 ? 'abandoned' : false;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  /** Extends a lease we still hold; false when it was lost (expired and taken by another worker). */
  async renewLease(threadKey: string, owner: string, ms: number): Promise<boolean> {
    const res = await (
      await this.leaseCollection()
    ).updateOne({ _id: threadKey, owner }, { $set: { leaseUntil: new Date(Date.now() + ms) } });
    return res.matchedCount === 1;
  }

  /**
   * Deleted, not marked free: the leases collection then holds only leases in force, so the conditional
   * filters above (`{ _id, owner }`, `{ _id, leaseUntil }`), which FerretDB 1.24 serves by scanning the
   * collection, scan a handful of documents instead of one per thread ever seen.
   */
  async releaseLease(threadKey: string, owner: string): Promise<void> {
    await (await this.leaseCollection()).deleteOne({ _id: threadKey, owner });
  }

  /**
   * Gives a lease up as a crashed holder would: left in place, expired, instead of deleted, so that whoever
   * takes the thread next (another process, or this one) is told `'abandoned'` and runs its oldest event as
   * a rerun (Retell's chat read before the agent is asked). For a run whose failed attempt could not be
   * written: the stored event does not say that it ran. The next holder's release deletes it.
   */
  async abandonLease(threadKey: string, owner: string): Promise<void> {
    await (
      await this.leaseCollection()
    ).updateOne({ _id: threadKey, owner }, { $set: { leaseUntil: new Date(0) } });
  }

  /** How many events wait (pending), for status and benchmarks. */
  async backlog(): Promise<number> {
    return (await this.eventCollection()).countDocuments({ status: 'pending' });
  }

  /** Retention: handled events older than `olderThan` are deleted (dedupe needs them only while Meta may redeliver). */
  async sweep(olderThan: Date): Promise<number> {
    let removed = 0;
    for (let i = 0; i < HANDLED_SHARDS; i++) {
      const res = await this.platformDb
        .collection(handledCollection(i))
        .deleteMany({ doneAt: { $lt: olderThan } });
      removed += res.deletedCount;
    }
    return removed;
  }
}

/**
 * An echo already in the inbox for a thread with exactly this text, sent at or after `since` (ms): how an
 * ambiguous send failure is reconciled — if Meta echoed the text, the message was delivered. Only pending
 * events need looking at: the echo belongs to the same thread and comes after the send, so it waits behind
 * the event that is reconciling (and an echo handled earlier has claimed the outbound note instead).
 */
export async function findEchoOf(
  inbox: InboxRepo,
  threadKey: string,
  text: string,
  since: number,
): Promise<string | undefined> {
  const Events = await inbox.events();
  const doc = await Events.findOne(
    { threadKey, 'event.kind': 'echo', 'event.text': text, 'event.timestamp': { $gte: since } },
    { 'event.mid': 1 },
  ).lean<StoredEvent>();
  return doc?.event.mid;
}
