/**
 * A small in-process cache with a time-to-live and a size bound (oldest entries go first). Used for the
 * tenant lookups every webhook and every inbound event repeat (subaccount, agent, connection): on FerretDB
 * each lookup that is not by `_id` scans its collection, so a few seconds of caching removes most of the
 * database round trips of the hot paths. Entries are dropped in-process when this process changes them;
 * another process sees the change when its entry expires (see docs/performance-history.md, session 1).
 */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly max = 10_000,
  ) {}

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.until <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V): void {
    if (this.ttlMs <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { value, until: Date.now() + this.ttlMs });
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
  }

  /** Forgets `key`, and a load of it in flight will not be cached (it may have read the old value). */
  delete(key: string): void {
    this.entries.delete(key);
    this.loading.delete(key);
  }

  private readonly loading = new Map<string, Promise<V | undefined>>();

  /**
   * Looks up `key`, loading (and caching) it when absent; `undefined` results are never cached. Callers
   * that miss while a load of the same key is in flight share it: when an entry expires under load, one
   * query goes to the database, not one per request (on FerretDB each of these is a collection scan).
   */
  async getOrLoad(key: string, load: () => Promise<V | undefined>): Promise<V | undefined> {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const pending = this.loading.get(key);
    if (pending) return pending;
    const loaded = load().then(
      (value) => {
        if (this.loading.get(key) === loaded) {
          this.loading.delete(key);
          if (value !== undefined) this.set(key, value);
        }
        return value;
      },
      (err: unknown) => {
        if (this.loading.get(key) === loaded) this.loading.delete(key);
        throw err;
      },
    );
    this.loading.set(key, loaded);
    return loaded;
  }
}
