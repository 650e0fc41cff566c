import crypto from 'node:crypto';
import { logContext, type Logger } from '../lib/logger';
import type { InboxRepo, Progress, StoredEvent } from './inbound-event.repo';

export interface WorkerOptions {
  /** Threads (agent × Instagram user) handled at once by this process; one user's events are never parallel. */
  concurrency: number;
  leaseMs: number;
  pollMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Handled events are kept this long for deduplication, then swept. */
  retentionMs: number;
}

export const DEFAULT_WORKER_OPTIONS: WorkerOptions = {
  concurrency: 64,
  leaseMs: 30_000,
  pollMs: 500,
  maxAttempts: 8,
  backoffBaseMs: 1_000,
  backoffMaxMs: 5 * 60_000,
  retentionMs: 7 * 24 * 3_600_000,
};

export interface HandlerContext {
  saveProgress(progress: Progress): Promise<void>;
  /**
   * An earlier run of this event may have got as far as asking the agent: `retry` after a failed attempt
   * (its error is `lastError`), `takeover` when its thread was taken from a holder that crashed or lost its
   * lease while handling it.
   */
  rerun?: 'retry' | 'takeover';
  /**
   * Resolves while this worker still holds the event's thread; otherwise rejects with `LeaseLost`, and the
   * event is left to whoever holds the thread now. Called before every ask of the agent (a step that
   * cannot be taken back; a part sent twice is prevented by its outbound note instead). Renews the lease
   * first when a third of it has passed.
   */
  ensureHeld(): Promise<void>;
}

/** The thread's lease ran out (its renewals failed) or was taken: this worker must not act on it. */
export class LeaseLost extends Error {
  override readonly name = 'LeaseLost';
  constructor() {
    super('the thread lease ran out before this step');
  }
}

export type EventHandler = (stored: StoredEvent, ctx: HandlerContext) => Promise<'done' | 'ignored'>;
/** Deletes what is older than `olderThan` somewhere; resolves with how many documents it removed. */
export type RetentionSweep = (olderThan: Date) => Promise<number>;

/** A thread's pending events are read this many at a time. */
const THREAD_BATCH = 16;

/** Errors say whether a retry can help (`transient`, `retryable`); anything that does not say is retried. */
function isTransient(err: unknown): boolean {
  const e = err as { transient?: boolean; retryable?: boolean } | undefined;
  return e?.transient ?? e?.retryable ?? true;
}

/**
 * A failed attempt whose retry or failure could not be written (the database is in trouble): the stored
 * event does not say that it ran, so its thread's lease is abandoned rather than released.
 */
class AttemptNotWritten extends Error {
  override readonly name = 'AttemptNotWritten';
  constructor(attemptError: string, writeError: unknown) {
    const why = String((writeError as Error)?.message ?? writeError);
    super(`the failed attempt (${attemptError}) could not be written: ${why}`, { cause: writeError });
  }
}

const notWritten =
  (attemptError: string) =>
  (writeError: unknown): never => {
    throw new AttemptNotWritten(attemptError, writeError);
  };

/**
 * Claims stored events with a lease per thread, handles one thread's events one at a time in timestamp
 * order, retries transient failures with exponential backoff and jitter, and marks an event failed (kept,
 * with its last error) after `maxAttempts`. Correct with several processes on one database: a thread is
 * only ever handled by the holder of its lease, and an expired lease (a crashed holder) is taken over.
 */
export class InboundWorker {
  readonly id = `worker-${crypto.randomBytes(6).toString('hex')}`;
  private readonly opts: WorkerOptions;
  private readonly active = new Map<string, Promise<void>>();
  private running = false;
  private ticking = false;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private lastSweep = 0;
  /**
   * Threads in hand that this process's webhook stored something for since their pending events were
   * last read. Their run reads again under the lease it holds, instead of releasing it for the next poll
   * to claim again (three commands: release, poll, claim). A visitor often writes while the answer to
   * their last message is still being recorded. Events stored through another process are found by the
   * poll after the release, as before.
   */
  private readonly fresh = new Set<string>();

  /**
   * Threads whose last run ended outside the handler's own outcome (the write of a retry or of a failure
   * threw, a read failed, or the lease ran out: the database is in trouble), and when they may be claimed
   * again. Their event's attempts could not be counted, so without this pause this process would claim the
   * thread again at once and run the handler in a loop for as long as the trouble lasts (and, after a lease
   * ran out, before any other process could). One poll interval; entries go once past.
   */
  private readonly cooling = new Map<string, number>();

  /**
   * Events whose failed attempt could not be written (the retry or failure write threw), with the attempt's
   * error: their next run here is still a rerun (`HandlerContext.rerun`), though the stored event does not
   * say so. Bounded; an entry goes when its event is next written. (The run also abandons its lease, which
   * tells whoever takes the thread next, any process, that its oldest event is a rerun: `AttemptNotWritten`.
   * This entry still counts when the event is not the thread's oldest.)
   */
  private readonly unwritten = new Map<string, { attempts: number; error: string }>();

  constructor(
    private readonly inbox: InboxRepo,
    private readonly handler: EventHandler,
    private readonly logger: Logger,
    opts: Partial<WorkerOptions> = {},
    /** Swept with the handled events, with the same retention (the outbound notes of every tenant). */
    private readonly sweeps: RetentionSweep[] = [],
  ) {
    this.opts = { ...DEFAULT_WORKER_OPTIONS, ...opts };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.timer = setInterval(() => this.notify(), this.opts.pollMs);
    this.timer.unref();
    this.notify();
  }

  /**
   * Stops claiming new threads and waits for the ones in hand to finish the event each is handling; the
   * events behind it stay pending for the next start (or another process), so a shutdown waits for one
   * event per thread, not for a thread's whole backlog.
   */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.active.values()]);
  }

  /**
   * Something was stored (for `threadKeys`, when known): look for work now rather than at the next poll.
   * When every thread named is in hand, there is nothing to claim: each reads on under its lease, and a
   * thread that is finishing polls as it releases (see `tick`), so no poll is spent here. (Other work that
   * comes due meanwhile, a retry or an event stored by another process, waits for the next poll.)
   */
  notify(threadKeys: Iterable<string> = []): void {
    if (!this.running) return;
    let allInHand = true;
    let any = false;
    for (const key of threadKeys) {
      any = true;
      if (this.active.has(key)) this.fresh.add(key);
      else allInHand = false;
    }
    if (any && allInHand) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    void this.tick()
      .catch((err: unknown) => this.logger.error({ err }, 'worker poll failed'))
      .finally(() => {
        this.ticking = false;
        if (this.again) {
          this.again = false;
          this.notify();
        }
      });
  }

  /** Resolves when no event is pending any more (tests, shutdown, benchmarks). */
  async drain(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const wasRunning = this.running;
    this.running = true;
    try {
      for (;;) {
        await this.tick();
        await Promise.allSettled([...this.active.values()]);
        if (this.active.size === 0 && (await this.inbox.backlog()) === 0) return;
        if (Date.now() > deadline) throw new Error(`worker did not drain within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      this.running = wasRunning;
    }
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    await this.maybeSweep();
    const free = this.opts.concurrency - this.active.size;
    if (free <= 0) return;
    const now = Date.now();
    for (const [key, until] of this.cooling) if (until <= now) this.cooling.delete(key);
    const threads = await this.inbox.dueThreads(
      free,
      new Set([...this.active.keys(), ...this.cooling.keys()]),
    );
    for (const threadKey of threads) {
      if (!this.running) return; // stopped while the poll was out: claim nothing more
      if (this.active.has(threadKey)) continue;
      const askedAt = performance.now(); // the lease runs from before it was asked for
      const lease = await this.inbox.acquireLease(threadKey, this.id, this.opts.leaseMs);
      if (!lease) continue;
      const run = this.runThread(threadKey, lease === 'abandoned', askedAt)
        .then(
          () => true,
          (err: unknown) => {
            this.logger.error({ err, threadKey }, 'thread run failed');
            this.cooling.set(threadKey, Date.now() + this.opts.pollMs);
            return false;
          },
        )
        .then((ok) => {
          // Together, so that `fresh` only ever names threads in hand: what was stored for this one after
          // its last read is found by the poll below (after a failed run, by the next timed poll).
          this.active.delete(threadKey);
          this.fresh.delete(threadKey);
          if (ok) this.notify();
        });
      this.active.set(threadKey, run);
    }
  }

  /**
   * `abandoned`: the lease was taken over from a holder that never released it (see `acquireLease`).
   * `leasedAt`: `performance.now()` from before the lease was asked for.
   */
  private async runThread(threadKey: string, abandoned: boolean, leasedAt: number): Promise<void> {
    let lost = false;
    // Held for a full lease from `leasedAt`; renewed by the heartbeat, and before an event when a third of
    // the lease has passed since (so a thread of many events never starts one on a lease about to run out).
    // Elapsed time by the monotonic clock: a wall clock set back would stretch the lease.
    let renewedAt = leasedAt;
    const every = Math.max(50, this.opts.leaseMs / 3);
    const renew = async () => {
      const at = performance.now();
      const held = await this.inbox.renewLease(threadKey, this.id, this.opts.leaseMs);
      if (held) renewedAt = Math.max(renewedAt, at);
      lost ||= !held;
    };
    let renewing: Promise<void> = Promise.resolve();
    const heartbeat = setInterval(() => {
      renewing = renew().catch(() => undefined);
    }, every);
    // Our own clock decides: a lease not renewed for its whole length may be someone else's by now.
    const ensureHeld = async () => {
      if (performance.now() - renewedAt >= every) await renew().catch(() => undefined);
      if (lost || performance.now() - renewedAt >= this.opts.leaseMs) throw new LeaseLost();
    };
    // Abandoned rather than released (left expired in place): the stored event may not say that it ran.
    let abandon = false;
    try {
      // The thread's pending events, oldest first, a batch at a time. One that is not due, or that is to be
      // retried later, holds back the ones after it (per-user order). Events stored while the batch is
      // handled are read next when this process stored them (`fresh`); otherwise the poll after the
      // release finds them (releasing the thread notifies the worker).
      let more = true;
      while (more && !lost && this.running) {
        this.fresh.delete(threadKey);
        const batch = await this.inbox.pendingOfThread(threadKey, THREAD_BATCH);
        more = batch.length === THREAD_BATCH;
        for (const next of batch) {
          if (next.availableAt.getTime() > Date.now()) {
            // Held back by its oldest event's retry: the events behind it wait as long, so no poll
            // claims the thread again before then.
            await this.inbox.deferThread(threadKey, next.availableAt);
            return;
          }
          if (performance.now() - renewedAt >= every) await renew();
          if (lost || !this.running) return;
          // Only the oldest pending event can have been in the previous holder's hands.
          const handled = await this.handleOne(next, abandoned, ensureHeld);
          abandoned = false;
          if (!handled) return;
        }
        more ||= this.fresh.has(threadKey);
      }
    } catch (err) {
      // A failed attempt not written: the next holder must know the event ran. A lease that ran out: the
      // event may or may not have been asked about by this run, or by the holder before it (when this run
      // was itself a takeover), so the next holder must read before it asks, as this one would have.
      abandon = err instanceof AttemptNotWritten || err instanceof LeaseLost;
      if (!(err instanceof LeaseLost)) throw err;
      this.cooling.set(threadKey, Date.now() + this.opts.pollMs);
    } finally {
      clearInterval(heartbeat);
      await renewing; // a renewal still out must not land after the release
      // A lease taken by another worker is not ours to touch. Should the write fail, an abandoned lease
      // expires in place, which says the same.
      if (!lost)
        await (
          abandon ? this.inbox.abandonLease(threadKey, this.id) : this.inbox.releaseLease(threadKey, this.id)
        ).catch(() => undefined);
    }
  }

  /**
   * Handles one event; false when it stays pending (to be retried later), which holds its thread back.
   * Throws `LeaseLost` (the handler stopped: the lease ran out) and `AttemptNotWritten`.
   */
  private async handleOne(
    stored: StoredEvent,
    takenOver: boolean,
    ensureHeld: () => Promise<void>,
  ): Promise<boolean> {
    // Only while the stored event has not moved on (another process may have written a later attempt).
    const missed = this.unwritten.get(stored._id);
    if (missed && missed.attempts === stored.attempts) stored.lastError = missed.error;
    const ctx: HandlerContext = {
      rerun: takenOver ? 'takeover' : stored.attempts > 0 || missed !== undefined ? 'retry' : undefined,
      ensureHeld,
      saveProgress: (progress) => {
        stored.progress = progress;
        return this.inbox.saveProgress(stored._id, progress);
      },
    };
    const logCtx = {
      subaccountId: stored.subaccountId,
      agentId: stored.agentId,
      eventId: String(stored._id),
    };
    return logContext.run(logCtx, async () => {
      try {
        if (await this.inbox.isHandled(stored._id)) {
          // Meta delivered it again after it was handled: acknowledged at intake, dropped here.
          await this.inbox.dropPending(stored._id);
          return true;
        }
        const outcome = await this.handler(stored, ctx);
        await this.inbox.finish(stored, outcome);
        this.unwritten.delete(stored._id);
        return true;
      } catch (err) {
        if (err instanceof LeaseLost) {
          // Not written as an attempt: the event may be in another worker's hands now. The run ends and
          // abandons the lease, so that a next holder that finds it expired runs the event as a rerun.
          this.logger.warn(
            { kind: stored.event.kind },
            'thread lease ran out: the event is left to its next holder',
          );
          throw err;
        }
        const attempts = stored.attempts + 1;
        const message = String((err as Error)?.message ?? err).slice(0, 500);
        // Until this attempt is written (below): should the write throw, the next run still knows.
        this.unwritten.delete(stored._id);
        this.unwritten.set(stored._id, { attempts: stored.attempts, error: message });
        if (this.unwritten.size > 10_000) this.unwritten.delete(this.unwritten.keys().next().value!);
        if (!isTransient(err) || attempts >= this.opts.maxAttempts) {
          await this.inbox.fail(stored._id, attempts, message).catch(notWritten(message));
          this.unwritten.delete(stored._id);
          this.logger.error({ err, attempts, kind: stored.event.kind }, 'inbound event failed');
          return true;
        } else {
          const delay = Math.min(this.opts.backoffMaxMs, this.opts.backoffBaseMs * 2 ** (attempts - 1));
          // Never sooner than the service asked (a rate limit's Retry-After).
          const asked = Math.min(
            this.opts.backoffMaxMs,
            (err as { retryAfterMs?: number }).retryAfterMs ?? 0,
          );
          const jittered = Math.max(asked, delay / 2 + Math.random() * (delay / 2));
          await this.inbox
            .retryLater(stored._id, attempts, new Date(Date.now() + jittered), message)
            .catch(notWritten(message));
          this.unwritten.delete(stored._id);
          this.logger.warn(
            { attempts, retryInMs: Math.round(jittered), error: message },
            'inbound event will be retried',
          );
          return false;
        }
      }
    });
  }

  private async maybeSweep(): Promise<void> {
    if (Date.now() - this.lastSweep < 3_600_000) return;
    this.lastSweep = Date.now();
    await this.sweep();
  }

  /**
   * Retention, now (the worker does it hourly): handled events, and what the extra sweeps keep, older
   * than `retentionMs` are deleted. A failing sweep is logged and does not stop the others.
   */
  async sweep(): Promise<number> {
    const olderThan = new Date(Date.now() - this.opts.retentionMs);
    let removed = 0;
    for (const sweep of [(d: Date) => this.inbox.sweep(d), ...this.sweeps]) {
      try {
        removed += await sweep(olderThan);
      } catch (err) {
        this.logger.error({ err }, 'retention sweep failed');
      }
    }
    if (removed) this.logger.info({ removed }, 'retention sweep');
    return removed;
  }
}
