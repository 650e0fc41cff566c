import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mongoose from 'mongoose';
import { FERRETDB_VERSION, freePort, resolveFerretdbBinary, startFerretdb } from '../../src/db/ferretdb';

/**
 * The databases a bench can run on: `ferretdb` (the project's own embedded default, FerretDB 1.24 on
 * SQLite, resolved and started the way `npm start` does), `mongo-java` (mongo-java-server's in-memory
 * backend, built from Maven Central under bench/mongo-java: the "is it the database" comparison), and `uri`
 * (MONGODB_URI, e.g. a real MongoDB).
 */
export type DbKind = 'ferretdb' | 'mongo-java' | 'uri';

export interface BenchDb {
  kind: DbKind;
  /** Server URI without a database name. */
  uri: string;
  version: string;
  /** The server's process when the bench started it (not for `uri`): its CPU time is measured. */
  pid?: number;
  stop(): Promise<void>;
}

const run = promisify(execFile);
const MONGO_JAVA_DIR = path.join(__dirname, '..', 'mongo-java');

export async function startDb(kind: DbKind): Promise<BenchDb> {
  if (kind === 'uri') {
    const raw = process.env.MONGODB_URI;
    if (!raw) throw new Error('--db=uri needs MONGODB_URI');
    const uri = raw.replace(/\/[^/?]*(\?.*)?$/, '');
    return { kind, uri, version: await serverVersion(uri), stop: async () => undefined };
  }
  if (kind === 'ferretdb') {
    const bin = await resolveFerretdbBinary((l) => process.stderr.write(`${l}\n`));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igc-bench-ferret-'));
    const s = await startFerretdb(bin, dir);
    return {
      kind,
      uri: s.uri,
      version: `FerretDB ${FERRETDB_VERSION} (SQLite backend)`,
      pid: s.pid,
      stop: async () => {
        await s.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  return startMongoJava();
}

/** Builds (once) and starts mongo-java-server; throws with the reason when Java or Maven cannot. */
async function startMongoJava(): Promise<BenchDb> {
  const lib = path.join(MONGO_JAVA_DIR, 'target', 'lib');
  const classes = path.join(MONGO_JAVA_DIR, 'target', 'classes');
  if (!fs.existsSync(path.join(classes, 'bench', 'Main.class'))) {
    process.stderr.write('building mongo-java-server comparison (mvn package, once)…\n');
    await run('mvn', ['-q', '-B', 'package', '-DskipTests'], { cwd: MONGO_JAVA_DIR, timeout: 600_000 });
  }
  const port = await freePort();
  const child = spawn(
    'java',
    ['-Xmx4g', '-cp', `${classes}${path.delimiter}${lib}/*`, 'bench.Main', String(port)],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mongo-java-server exited: ${stderr}`);
    if (await canConnect(port)) break;
    if (Date.now() > deadline) throw new Error('mongo-java-server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const uri = `mongodb://127.0.0.1:${port}`;
  const jar =
    fs.readdirSync(lib).find((f) => f.startsWith('mongo-java-server-') && !f.includes('core')) ?? '';
  const v = /(\d+\.\d+\.\d+)/.exec(jar)?.[1] ?? '?';
  return {
    kind: 'mongo-java',
    uri,
    version: `mongo-java-server ${v} (in-memory backend; reports MongoDB ${await serverVersion(uri)})`,
    pid: child.pid,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL'); // in memory: nothing to flush, and its shutdown hook can hang
      }),
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function serverVersion(uri: string): Promise<string> {
  const c = await mongoose.createConnection(`${uri}/admin`, { serverSelectionTimeoutMS: 10_000 }).asPromise();
  try {
    const info = await c.db!.admin().command({ buildInfo: 1 });
    return String(info.version);
  } finally {
    await c.close();
  }
}
