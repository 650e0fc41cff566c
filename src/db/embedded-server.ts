import path from 'node:path';
import { withTimeout } from '../lib/with-timeout';
import { resolveFerretdbBinary, startFerretdb, type RunningServer } from './ferretdb';

export type { RunningServer };

/**
 * A MongoDB-compatible server for when no MONGODB_URI is given: mongodb-memory-server where a mongod binary
 * can be had (its download needs the internet), otherwise FerretDB 1.24 on SQLite. With `dataDir` the data
 * survives restarts; used by `npm start` and by the test setup alike.
 */
export async function startEmbeddedServer(opts: {
  dataDir: string;
  persistent: boolean;
  log?: (line: string) => void;
}): Promise<RunningServer> {
  const log = opts.log ?? (() => undefined);
  const failures: string[] = [];
  if (process.env.SKIP_MONGOMS !== 'true') {
    try {
      return await startMongoMemoryServer(opts.dataDir, opts.persistent);
    } catch (err) {
      failures.push(`mongodb-memory-server: ${firstLine(err)}`);
    }
  }
  try {
    const bin = await resolveFerretdbBinary(log);
    return await startFerretdb(bin, path.join(opts.dataDir, 'ferretdb'));
  } catch (err) {
    failures.push(`ferretdb: ${firstLine(err)}`);
  }
  throw new Error(
    `No embedded database could be started (${failures.join('; ')}). Set MONGODB_URI to a MongoDB 6+ or FerretDB server, e.g. MONGODB_URI=mongodb://127.0.0.1:27017/platform`,
  );
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]!;
}

async function startMongoMemoryServer(dataDir: string, persistent: boolean): Promise<RunningServer> {
  const { MongoMemoryServer } = await import('mongodb-memory-server');
  const dbPath = path.join(dataDir, 'mongod');
  if (persistent) (await import('node:fs')).mkdirSync(dbPath, { recursive: true });
  // mongodb-memory-server prints a stack trace to the console when it cannot download mongod; we report
  // the failure ourselves, in one line, so keep its console quiet while it tries.
  const { warn, error } = console;
  console.warn = console.error = () => undefined;
  let server: InstanceType<typeof MongoMemoryServer>;
  try {
    server = await withTimeout(
      MongoMemoryServer.create({ instance: persistent ? { dbPath, storageEngine: 'wiredTiger' } : {} }),
      Number(process.env.MONGOMS_START_TIMEOUT_MS ?? 60_000),
    );
  } finally {
    Object.assign(console, { warn, error });
  }
  return {
    uri: server.getUri().replace(/\/$/, ''),
    kind: 'mongodb-memory-server',
    stop: async () => {
      await server.stop({ doCleanup: !persistent, force: false });
    },
  };
}
