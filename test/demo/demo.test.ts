import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '../setup/wait-for';

/**
 * `npm run demo`, as someone with no Meta or Retell account runs it: the visitor's DM goes through the
 * connector's real webhook, the agent's reply comes back through the Graph simulator, and both turns are
 * readable through the real API with the printed JWT.
 */
const root = path.join(__dirname, '..', '..');
jest.setTimeout(120_000);

interface Demo {
  child: ChildProcess;
  output: () => string;
  closed: Promise<void>;
  isClosed: () => boolean;
}

function startDemo(dataDir: string): Demo {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATA_DIR: dataDir,
    PORT: '0',
    SKIP_MONGOMS: 'true',
  };
  for (const name of ['XDG_CACHE_HOME', 'FERRETDB_BIN']) if (process.env[name]) env[name] = process.env[name];
  // Its own process group, so the whole `npm → sh → node` chain gets the signal, as from a terminal.
  const child = spawn('npm', ['run', '--silent', 'demo'], {
    cwd: root,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => void (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => void (out += d.toString()));
  // 'close': every process holding the output pipes is gone (npm, the shell and the demo itself).
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    child.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  return { child, output: () => out, closed, isClosed: () => isClosed };
}

interface JsonBody<T> {
  success: boolean;
  data: T;
}

async function json<T>(url: string, init: RequestInit = {}): Promise<{ status: number; body: JsonBody<T> }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as JsonBody<T> };
}

let dataDir: string;
let demo: Demo | undefined;

afterAll(async () => {
  if (demo && !demo.isClosed()) {
    try {
      process.kill(-demo.child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

test('when a visitor DMs the demo shop, then the agent replies and both turns are in chats', async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'igc-demo-'));
  const d = (demo = startDemo(dataDir));
  let gone = false;
  d.child.once('exit', () => (gone = true));
  await waitFor('the demo banner', () => gone || /Stop with Ctrl\+C/.test(d.output()), 90_000);
  if (gone) throw new Error(`the demo stopped before it was ready:\n${d.output()}`);

  const out = d.output();
  expect(out).toMatch(/SIMULATED Meta Graph API +http:\/\/127\.0\.0\.1:\d+ +— no real Instagram involved/);
  expect(out).toMatch(/SIMULATED Retell chat API/);
  const connectPage = new URL(/Connect page: +(\S+)/.exec(out)![1]!);
  const base = `http://127.0.0.1:${connectPage.port}`;
  const jwt = connectPage.searchParams.get('token')!;
  const subaccountId = connectPage.searchParams.get('subaccountId')!;
  const agentId = connectPage.searchParams.get('agentId')!;
  expect(out).toContain(`super_admin JWT (12 h): ${jwt}`);
  expect((await fetch(`${base}/demo/visitor`)).status).toBe(200);

  const sent = await json<{ userId: string; mid: string }>(`${base}/demo/visitor/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ text: 'Hi! Do you ship to Canada?' }),
  });
  expect(sent.status).toBe(202);
  const { userId } = sent.body.data;

  type Thread = { messages: Array<{ from: string; text: string }>; chat: { messageCount: number } | null };
  let thread: Thread | undefined;
  await waitFor(
    "the agent's reply to reach the visitor",
    async () => {
      thread = (await json<Thread>(`${base}/demo/visitor/messages?userId=${userId}`)).body.data;
      return thread.messages.some((m) => m.from === 'shop');
    },
    30_000,
  );
  expect(thread!.messages.map((m) => m.from)).toEqual(['visitor', 'shop']);
  expect(thread!.messages[1]!.text).toMatch(/we ship worldwide/);

  type Turn = { role: string; content: string; userId: string };
  const messagesUrl = `${base}/api/database/${subaccountId}/chat-agents/${agentId}/instagram/messages?userId=${userId}`;
  let turns: Turn[] = [];
  await waitFor(
    'both turns in chats',
    async () => {
      const res = await json<{ messages: Turn[] }>(messagesUrl, {
        headers: { Authorization: `Bearer ${jwt}` },
      });
      turns = res.body.data.messages;
      return turns.length >= 2;
    },
    15_000,
  );
  expect(turns.map((t) => [t.role, t.userId])).toEqual([
    ['agent', userId],
    ['user', userId],
  ]);
  expect(turns[0]!.content).toMatch(/we ship worldwide/);
  expect(turns[1]!.content).toBe('Hi! Do you ship to Canada?');
  await waitFor('the turn narrated on the console', () =>
    /chats ▸ chat_\S+ · ongoing · message_count 2/.test(d.output()),
  );

  process.kill(-d.child.pid!, 'SIGTERM');
  await d.closed;
  expect(d.output()).toMatch(/Demo stopped \(exit code 0\)\./);
});
