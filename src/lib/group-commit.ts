/**
 * Group commit: callers that want to write while a write is in flight wait together and go out as ONE
 * write when it finishes. On a database that serializes writes (FerretDB on SQLite runs each write as a
 * SQLite transaction, one at a time) n concurrent one-document writes queue up one behind the other; as a
 * group they cost one transaction, so the wait of the last caller is ~2 writes instead of ~n.
 *
 * - A caller that finds nothing in flight is written at once: no timer, no added latency when alone.
 * - Each caller resolves once the write that carried its items has returned (is durable), with the
 *   write's result for each of its items, in order.
 * - `write` returns one settled result per item (same order as its input), so a refusal of one item
 *   (e.g. a bad document) rejects only the caller that submitted it. A `write` that throws rejects every
 *   caller of that batch, and only them.
 * - A batch holds at most `maxItems` items; a caller's items are never split across batches (a caller
 *   with more than `maxItems` goes alone). At most `maxInFlight` batches are written at a time.
 */
export interface GroupCommitOptions {
  /** Bound on the items of one write (a single larger caller still goes out whole, alone). */
  maxItems?: number;
  /** Writes in flight at a time; the next batch forms while they run. */
  maxInFlight?: number;
}

interface Job<T, R> {
  items: T[];
  resolve(results: R[]): void;
  reject(err: unknown): void;
}

export class GroupCommit<T, R> {
  private readonly queue: Job<T, R>[] = [];
  private inFlight = 0;
  private readonly maxItems: number;
  private readonly maxInFlight: number;

  constructor(
    private readonly write: (items: T[]) => Promise<PromiseSettledResult<R>[]>,
    o: GroupCommitOptions = {},
  ) {
    this.maxItems = o.maxItems ?? 500;
    this.maxInFlight = o.maxInFlight ?? 1;
  }

  /** Writes `items` with whoever else is waiting; resolves with their results once written. */
  submit(items: T[]): Promise<R[]> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<R[]>((resolve, reject) => {
      this.queue.push({ items, resolve, reject });
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      let count = this.queue[0]!.items.length;
      let jobs = 1;
      while (jobs < this.queue.length && count + this.queue[jobs]!.items.length <= this.maxItems)
        count += this.queue[jobs++]!.items.length;
      this.inFlight++;
      void this.commit(this.queue.splice(0, jobs));
    }
  }

  private async commit(jobs: Job<T, R>[]): Promise<void> {
    const items = jobs.flatMap((j) => j.items);
    let settled: PromiseSettledResult<R>[];
    try {
      settled = await this.write(items);
      if (settled.length !== items.length)
        throw new Error(`group commit: ${settled.length} results for ${items.length} items`);
    } catch (err) {
      settled = items.map(() => ({ status: 'rejected', reason: err })); // every item of the batch failed
    }
    // The next batch goes out before this one's callers are answered.
    this.inFlight--;
    this.flush();
    let at = 0;
    for (const j of jobs) {
      const mine = settled.slice(at, (at += j.items.length));
      const refused = mine.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (refused) j.reject(refused.reason);
      else j.resolve(mine.map((s) => (s as PromiseFulfilledResult<R>).value));
    }
  }
}

/**
 * A group commit per key (one document, typically): writes for one key go out one batch at a time, in
 * order, so a key's writes never overlap (what FerretDB needs, see KeyedMutex) while those that queue
 * behind a write go out together as the next one. Keys with nothing pending hold no memory.
 */
export class KeyedGroupCommit<T, R> {
  private readonly groups = new Map<string, { commit: GroupCommit<T, R>; waiting: number }>();

  constructor(
    private readonly write: (key: string, items: T[]) => Promise<PromiseSettledResult<R>[]>,
    private readonly o: Omit<GroupCommitOptions, 'maxInFlight'> = {},
  ) {}

  async submit(key: string, items: T[]): Promise<R[]> {
    let group = this.groups.get(key);
    if (!group) {
      const commit = new GroupCommit<T, R>((batch) => this.write(key, batch), { ...this.o, maxInFlight: 1 });
      this.groups.set(key, (group = { commit, waiting: 0 }));
    }
    group.waiting++;
    try {
      return await group.commit.submit(items);
    } finally {
      if (--group.waiting === 0) this.groups.delete(key);
    }
  }
}

/**
 * A batch's items split by `groupOf` (compared by identity), written one group after the other; a group
 * whose write throws rejects only its own items. For batches keyed by a database name whose items carry
 * their connection: a batch may, rarely, mix a tenant connection being replaced with its successor.
 */
export async function writeInGroups<T, G, R>(
  items: T[],
  groupOf: (item: T) => G,
  write: (group: G, items: T[]) => Promise<PromiseSettledResult<R>[]>,
): Promise<PromiseSettledResult<R>[]> {
  const groups = new Map<G, number[]>();
  items.forEach((item, i) => {
    const g = groupOf(item);
    const at = groups.get(g);
    if (at) at.push(i);
    else groups.set(g, [i]);
  });
  const out: PromiseSettledResult<R>[] = new Array(items.length);
  for (const [g, at] of groups) {
    let settled: PromiseSettledResult<R>[];
    try {
      settled = await write(
        g,
        at.map((i) => items[i]!),
      );
    } catch (reason) {
      settled = at.map(() => ({ status: 'rejected', reason }));
    }
    at.forEach((i, k) => (out[i] = settled[k]!));
  }
  return out;
}
