import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { waitFor } from '../setup/wait-for';

/**
 * The simulator in a process of its own, as the bench runs it: Node prints its warnings to stderr there
 * (jest's sandboxed `process` never sees them).
 */
test('when more than ten completions wait on a slow agent at once, then all are answered and Node warns of no listener leak', () => {
  // Plain JavaScript: tsx loads the TypeScript module it requires, not the evaluated text.
  const script = `
    const { startRetellSimulator } = require('./src/simulators/retell.simulator');
    (async () => {
      const sim = await startRetellSimulator();
      const call = (p, body) =>
        fetch(sim.url + p, {
          method: 'POST',
          headers: { authorization: 'Bearer ' + sim.apiKey, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        }).then((r) => r.json());
      const chats = await Promise.all(Array.from({ length: 16 }, () => call('/create-chat', { agent_id: 'agent_abc' })));
      sim.setDelay(50);
      const answers = await Promise.all(
        chats.map((c) => call('/create-chat-completion', { chat_id: c.chat_id, content: 'Hello' })),
      );
      console.log(JSON.stringify({ answered: answers.filter((a) => Array.isArray(a.messages)).length }));
      await sim.close();
    })();
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
    cwd: path.join(__dirname, '..', '..'),
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(run.status).toBe(0);
  expect(JSON.parse(run.stdout.trim().split('\n').pop()!)).toEqual({ answered: 16 });
  expect(run.stderr).not.toContain('MaxListenersExceededWarning');
});

/**
 * What the connector's reading back after a timeout relies on (docs/retell-api-notes.md): the question shows
 * in get-chat at once, the agent's answer after its delay, and a completion whose caller has gone is still
 * answered, as a server that keeps processing would.
 */
test('when the caller of a slow completion goes away, then get-chat shows the question at once and the answer when it comes', async () => {
  const { startRetellSimulator } = await import('../../src/simulators/retell.simulator');
  const sim = await startRetellSimulator();
  try {
    const headers = { authorization: `Bearer ${sim.apiKey}`, 'content-type': 'application/json' };
    const post = (p: string, body: unknown, signal?: AbortSignal) =>
      fetch(sim.url + p, { method: 'POST', headers, body: JSON.stringify(body), signal });
    const chat = (await (await post('/create-chat', { agent_id: 'agent_abc' })).json()) as {
      chat_id: string;
    };
    const roles = async () => {
      const res = await fetch(`${sim.url}/get-chat/${chat.chat_id}`, { headers });
      const got = (await res.json()) as { message_with_tool_calls: { role: string; content: string }[] };
      return got.message_with_tool_calls.map((m) => `${m.role}: ${m.content}`);
    };
    sim.setDelay(1_000);
    const caller = new AbortController();
    const gone = post('/create-chat-completion', { chat_id: chat.chat_id, content: 'Hello' }, caller.signal);
    await sim.waitForCompletions(1, 5_000);
    caller.abort();
    await expect(gone).rejects.toThrow();

    expect(await roles()).toEqual(['user: Hello']);
    await waitFor('the answer in get-chat', async () => (await roles()).length === 2, 5_000);
    expect(await roles()).toEqual(['user: Hello', 'agent: Echo: Hello']);
  } finally {
    await sim.close();
  }
});
