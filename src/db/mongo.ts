import mongoose, { type Connection, type Model, type Schema, type mongo } from 'mongoose';

// Mongoose captures a stack trace (`new Error().stack`) on every query it executes, only to improve the
// message of a "Query was already executed" error. That costs ~30–120 µs of CPU per query, on top of the
// driver's ~190 (`npm run bench -- --only=commands`): a few ms per DM. Every connection of this process is
// made on the default mongoose instance, so this one setting covers them all.
mongoose.set('skipOriginalStackTraces', true);

/**
 * Connections to FerretDB on SQLite. Every connection that writes races for SQLite's one write lock, and
 * the loser sleeps in SQLite's busy handler for longer and longer (up to 100 ms a try): with 50 connections
 * some writes waited many seconds. With two, the driver queues the commands in order
 * (docs/performance-history.md, session 8, 16 users: with 50 connections 3.3–5.0 turns/s and p99
 * 2.6–2.8 s; with 2 or 4, 10.6–14.0 turns/s and p99 1.2–1.6 s).
 */
export const FERRETDB_SQLITE_POOL_SIZE = 2;

/**
 * The driver's pool size for `uri`: the URI's own `maxPoolSize` when it has one (the operator's choice; the
 * driver would let an option given in code override it), otherwise `fallback`.
 */
export function poolSizeOption(uri: string, fallback: number): { maxPoolSize?: number } {
  return /[?&]maxPoolSize=/i.test(uri) ? {} : { maxPoolSize: fallback };
}

/**
 * The platform database: the one named in the URI, `platform` when the URI names none. `maxPoolSize`
 * (default 50) unless the URI sets one.
 */
export async function connectPlatform(uri: string, opts: { maxPoolSize?: number } = {}): Promise<Connection> {
  const hasDbName = /^mongodb(\+srv)?:\/\/[^/]+\/[^/?]+/.test(uri);
  const conn = mongoose.createConnection(uri, {
    dbName: hasDbName ? undefined : 'platform',
    serverSelectionTimeoutMS: 10_000,
    ...poolSizeOption(uri, opts.maxPoolSize ?? 50),
    autoIndex: true,
  });
  await conn.asPromise();
  return conn;
}

/**
 * Models are compiled per connection (one per tenant database), never on the global mongoose. Indexes are
 * created once per connection and model; `ready` resolves when they exist, so a unique index is in force
 * before the first write relies on it.
 */
const ready = new WeakMap<Connection, Map<string, Promise<unknown>>>();

export async function modelOn<T>(conn: Connection, name: string, schema: Schema<T>): Promise<Model<T>> {
  const model = (conn.models[name] as Model<T> | undefined) ?? conn.model<T>(name, schema);
  let perConn = ready.get(conn);
  if (!perConn) ready.set(conn, (perConn = new Map()));
  let init = perConn.get(name);
  if (!init) perConn.set(name, (init = model.init()));
  await init;
  return model;
}

/** The server refused a write because a unique index (or `_id`) already holds the key: E11000. */
export const isDuplicateKey = (err: unknown): boolean =>
  (err as { code?: number } | undefined)?.code === 11000;

/** `insertMany` (unordered) of documents that may exist: the indexes of those refused as duplicates. */
export async function insertManyRefused<T extends { _id: string }>(
  c: mongo.Collection<T>,
  docs: T[],
): Promise<number[]> {
  try {
    await c.insertMany(docs as never[], { ordered: false });
    return [];
  } catch (err) {
    const refused = (err as { writeErrors?: unknown }).writeErrors;
    const writeErrors = [refused ?? []].flat() as { code?: number; index: number }[];
    if (writeErrors.length === 0 || !writeErrors.every(isDuplicateKey)) throw err;
    return writeErrors.map((e) => e.index);
  }
}
