import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const FERRETDB_VERSION = 'v1.24.2';
const MODULE = 'github.com/FerretDB/FerretDB';

/** Where a built binary is kept between runs (and between clones on one machine). */
export function ferretdbCachePath(): string {
  const base = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache');
  return path.join(base, 'instagram-connector', `ferretdb-${FERRETDB_VERSION}`, 'ferretdb');
}

async function isFerretdb(bin: string): Promise<boolean> {
  try {
    const { stdout } = await run(bin, ['--version'], { timeout: 10_000 });
    return stdout.includes('version:');
  } catch {
    return false;
  }
}

async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Finds a FerretDB binary: FERRETDB_BIN, `ferretdb` on PATH, the cache, or builds it with Go.
 *
 * `go install …@v1.24.2` is the documented way, but on machines whose module proxy refuses the module's
 * version list, its deprecation check fails; so we fetch the exact version with `go mod download` and build
 * the command inside the module's own source tree, with the version file its build normally generates.
 */
export async function resolveFerretdbBinary(log: (line: string) => void = () => undefined): Promise<string> {
  const candidates = [process.env.FERRETDB_BIN, await onPath('ferretdb'), ferretdbCachePath()];
  for (const c of candidates) if (c && fs.existsSync(c) && (await isFerretdb(c))) return c;

  const go = await onPath('go');
  if (!go) throw new Error('no ferretdb binary and no Go toolchain to build one');
  const target = ferretdbCachePath();
  log(`building FerretDB ${FERRETDB_VERSION} with Go (once; cached at ${target})`);
  const { stdout } = await run(go, ['mod', 'download', '-json', `${MODULE}@${FERRETDB_VERSION}`], {
    timeout: 600_000,
    maxBuffer: 10 * 1024 * 1024,
  });
  const srcDir = (JSON.parse(stdout) as { Dir: string }).Dir;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferretdb-src-'));
  try {
    fs.cpSync(srcDir, work, { recursive: true });
    fs.chmodSync(work, 0o755);
    for (const entry of fs.readdirSync(work, { recursive: true, withFileTypes: true })) {
      if (entry.isDirectory()) fs.chmodSync(path.join(entry.parentPath, entry.name), 0o755);
    }
    fs.writeFileSync(path.join(work, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const tmpOut = `${target}.${process.pid}.tmp`;
    await run(go, ['build', '-o', tmpOut, './cmd/ferretdb'], {
      cwd: work,
      timeout: 1_200_000,
      env: { ...process.env, GOFLAGS: '-buildvcs=false' },
    });
    fs.renameSync(tmpOut, target); // atomic: parallel builders never see half a binary
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return target;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`ferretdb exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('ferretdb did not start listening in time');
}

export interface RunningServer {
  uri: string;
  kind: 'mongodb-memory-server' | 'ferretdb';
  /** The server's process, where this process started it (the bench reads its CPU time). */
  pid?: number;
  stop(): Promise<void>;
}

/** Starts FerretDB with its SQLite backend, data under `dataDir`. */
export async function startFerretdb(bin: string, dataDir: string, port?: number): Promise<RunningServer> {
  fs.mkdirSync(dataDir, { recursive: true });
  const listen = port ?? (await freePort());
  const child = spawn(
    bin,
    [
      '--handler=sqlite',
      // WAL with synchronous=NORMAL: a commit survives a crash of any process, only a power cut may lose
      // the last ones; FULL would fsync every commit, which makes the embedded database ~10× slower.
      `--sqlite-url=file:${dataDir.replace(/\/?$/, '/')}?_pragma=synchronous(NORMAL)`,
      `--state-dir=${dataDir}`,
      `--listen-addr=127.0.0.1:${listen}`,
      '--debug-addr=-',
      '--telemetry=disable',
      '--log-level=error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  try {
    await waitForPort(listen, child, 20_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}: ${stderr.trim()}`, { cause: err });
  }
  return {
    uri: `mongodb://127.0.0.1:${listen}`,
    kind: 'ferretdb',
    pid: child.pid,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}
