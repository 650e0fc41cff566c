import mongoose, { type Connection } from 'mongoose';
import { poolSizeOption } from './mongo';

/**
 * Subaccount databases. Most live on the platform's server (`useDb`, sharing its pool); a subaccount with
 * its own `mongodbUri` gets a connection of its own, kept in a bounded least-recently-used cache and closed
 * when evicted or on shutdown.
 */
export class TenantDatabases {
  private readonly external = new Map<string, Promise<Connection>>();

  constructor(
    private readonly platform: Connection,
    private readonly maxExternal = 20,
  ) {}

  async get(subaccountId: string, databaseName?: string, mongodbUri?: string): Promise<Connection> {
    const name = databaseName || `subaccount_${subaccountId}`;
    if (!mongodbUri) return this.platform.useDb(name, { useCache: true });

    const key = `${mongodbUri}\u0000${name}`;
    let conn = this.external.get(key);
    if (conn) {
      this.external.delete(key); // re-insert: most recently used last
      this.external.set(key, conn);
      return conn;
    }
    conn = mongoose
      .createConnection(mongodbUri, {
        dbName: name,
        serverSelectionTimeoutMS: 10_000,
        ...poolSizeOption(mongodbUri, 10),
      })
      .asPromise();
    this.external.set(key, conn);
    conn.catch(() => this.external.delete(key));
    while (this.external.size > this.maxExternal) {
      const [oldestKey, oldest] = this.external.entries().next().value as [string, Promise<Connection>];
      this.external.delete(oldestKey);
      void oldest.then((c) => c.close()).catch(() => undefined);
    }
    return conn;
  }

  async close(): Promise<void> {
    const all = [...this.external.values()];
    this.external.clear();
    await Promise.all(all.map((p) => p.then((c) => c.close()).catch(() => undefined)));
  }
}
