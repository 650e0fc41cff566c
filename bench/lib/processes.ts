import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * The connector as production runs it: `node dist/main.js` in a process of its own (so its memory is its
 * own and two of them can share a database), configured through the environment only.
 */
export interface Proc {
  port: number;
  pid: number;
  rssMb(): number;
  stop(): Promise<void>;
}

const ROOT = path.join(__dirname, '..', '..');

export async function startConnector(env: Record<string, string>): Promise<Proc> {
  return startProc(
    process.execPath,
    [...(process.env.BENCH_NODE_ARGS?.split(' ') ?? []), path.join(ROOT, 'dist', 'main.js')],
    {
      NODE_ENV: 'test',
      PORT: '0',
      LOG_LEVEL: 'info',
      HUMAN_TAKEOVER_MINUTES: '60',
      ...env,
    },
  );
}

/** bench/baseline-server.ts; `env` adds the turn baseline's settings (see there). */
export async function startBaseline(uri: string, env: Record<string, string> = {}): Promise<Proc> {
  return startProc(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'baseline-server.ts')], {
    BASELINE_MONGODB_URI: uri,
    ...env,
  });
}

async function startProc(cmd: string, args: string[], env: Record<string, string>): Promise<Proc> {
  // Logs go to a file, as they would in production: the connector pays for writing them, the bench
  // process does not pay for reading them.
  const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'igc-bench-log-')), 'out.log');
  const fd = fs.openSync(logFile, 'w');
  const child: ChildProcess = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  // A bench that ends early (an error, a failed start) leaves no server of its own running behind it.
  const orphan = () => child.kill('SIGKILL');
  process.once('exit', orphan);
  child.once('exit', () => process.off('exit', orphan));
  const deadline = Date.now() + 60_000;
  let port = 0;
  while (!port) {
    if (child.exitCode !== null || child.signalCode !== null || spawnError)
      throw new Error(
        `process exited: ${String(spawnError ?? '')} ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`,
      );
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`process did not listen: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
    }
    const line = fs
      .readFileSync(logFile, 'utf8')
      .split('\n')
      .find((l) => l.includes('"msg":"listening"'));
    if (line) port = Number((JSON.parse(line) as { port?: number }).port ?? 0);
    if (!port) await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    pid: child.pid!,
    rssMb: () => {
      const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
      }),
  };
}
