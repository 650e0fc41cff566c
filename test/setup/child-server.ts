import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

/**
 * The built server (`dist/main.js`, what `npm start` runs) as a child process, for tests about the process
 * itself: restarts, SIGKILL, SIGTERM. Resolves once it logs "listening" (and, when `waitForEmbeddedDb`,
 * once it also logged the embedded database it started).
 */
const root = path.join(__dirname, '..', '..');

export interface ChildServer {
  child: ChildProcess;
  port: number;
  base: string;
  /** The embedded database's URI, when the server started one. */
  dbUri?: string;
  output(): string;
  /** SIGTERM, resolving with the exit code. */
  stop(): Promise<number | null>;
}

export function buildOnce(): void {
  execFileSync(process.execPath, [path.join(root, 'scripts', 'build-if-needed.js')], {
    cwd: root,
    stdio: 'inherit',
  });
}

export function startChildServer(
  env: NodeJS.ProcessEnv,
  o: { cwd?: string; waitForEmbeddedDb?: boolean } = {},
): Promise<ChildServer> {
  const child = spawn(process.execPath, [path.join(root, 'dist', 'main.js')], {
    cwd: o.cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      const listening = /"port":(\d+).*"msg":"listening"/.exec(out);
      const db = /"uri":"([^"]+)".*"msg":"embedded database started"/.exec(out);
      if (!listening || (o.waitForEmbeddedDb && !db)) return;
      const port = Number(listening[1]);
      resolve({
        child,
        port,
        base: `http://127.0.0.1:${port}`,
        dbUri: db?.[1],
        output: () => out,
        stop: () =>
          new Promise((done) => {
            child.removeAllListeners('exit');
            child.once('exit', (code) => done(code));
            child.kill('SIGTERM');
          }),
      });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
}
