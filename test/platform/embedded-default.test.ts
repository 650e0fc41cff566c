import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mongoose from 'mongoose';
import jwt from 'jsonwebtoken';

/**
 * The built server with no MONGODB_URI: it starts its own database under DATA_DIR, and what was written
 * there is still there after a restart.
 */
const root = path.join(__dirname, '..', '..');
jest.setTimeout(180_000);

interface Running {
  child: ChildProcess;
  port: number;
  dbUri: string;
  output: () => string;
}

function startServer(dataDir: string): Promise<Running> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATA_DIR: dataDir,
    PORT: '0',
    SKIP_MONGOMS: 'true',
  };
  if (process.env.XDG_CACHE_HOME) env.XDG_CACHE_HOME = process.env.XDG_CACHE_HOME;
  const child = spawn(process.execPath, [path.join(root, 'dist', 'main.js')], {
    cwd: dataDir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      const listening = /"port":(\d+).*"msg":"listening"/.exec(out);
      const db = /"uri":"([^"]+)".*"msg":"embedded database started"/.exec(out);
      if (listening && db) resolve({ child, port: Number(listening[1]), dbUri: db[1]!, output: () => out });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
}

function stopServer(r: Running): Promise<number | null> {
  return new Promise((resolve) => {
    r.child.removeAllListeners('exit');
    r.child.once('exit', (code) => resolve(code));
    r.child.kill('SIGTERM');
  });
}

beforeAll(() => {
  execFileSync(process.execPath, [path.join(root, 'scripts', 'build-if-needed.js')], {
    cwd: root,
    stdio: 'inherit',
  });
});

test('when started with no MONGODB_URI, then it serves on an embedded database that survives a restart', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'igc-embedded-'));
  const first = await startServer(dataDir);
  expect((await fetch(`http://127.0.0.1:${first.port}/healthz`)).status).toBe(200);
  expect((await fetch(`http://127.0.0.1:${first.port}/readyz`)).status).toBe(200);
  expect(first.output()).toMatch(/Development super_admin token/);

  const subId = new mongoose.Types.ObjectId();
  const conn = await mongoose.createConnection(first.dbUri).asPromise();
  await conn.collection('subaccounts').insertOne({ _id: subId, name: 'Persisted', isActive: true });
  await conn.close();
  expect(await stopServer(first)).toBe(0);

  const second = await startServer(dataDir);
  try {
    const again = await mongoose.createConnection(second.dbUri).asPromise();
    expect(await again.collection('subaccounts').findOne({ _id: subId })).toMatchObject({
      name: 'Persisted',
    });
    await again.close();
    // …and the product sees it: the subaccount resolves (the unknown agent is what is missing now).
    const secrets = JSON.parse(fs.readFileSync(path.join(dataDir, 'dev-secrets.json'), 'utf8')) as {
      jwtSecret: string;
    };
    const token = jwt.sign({ userId: 'dev', role: 'super_admin' }, secrets.jwtSecret, { algorithm: 'HS256' });
    const res = await fetch(
      `http://127.0.0.1:${second.port}/api/database/${subId.toHexString()}/chat-agents/nope/instagram/status`,
      {
        headers: { Authorization: `Bearer ${token}` },
      },
    );
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('AGENT_NOT_FOUND');
  } finally {
    expect(await stopServer(second)).toBe(0);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
