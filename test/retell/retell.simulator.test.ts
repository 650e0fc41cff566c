import { spawnSync } from 'node:child_process';
import path from 'node:path';

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
