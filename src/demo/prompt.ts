import readline from 'node:readline';
import type { DemoVisitors } from './visitors';

/**
 * When the demo runs in a terminal: every line typed is a DM from one visitor, and the reply and the
 * stored turn are printed before the next prompt. Ctrl+C stops the demo as it would without the prompt.
 */
export function startVisitorPrompt(visitors: DemoVisitors): readline.Interface {
  const visitor = visitors.visitor(undefined, 'terminal_visitor');
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, prompt: 'visitor> ' });
  rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
  rl.on('line', (line) => {
    const text = line.trim();
    if (!text) return rl.prompt();
    rl.pause();
    const before = visitors.repliesTo(visitor.userId);
    visitors
      .say(visitor, text)
      .then(() => visitors.narrateReply(visitor.userId, before))
      .catch((err: unknown) => process.stdout.write(`  (not delivered: ${(err as Error).message})\n`))
      .finally(() => {
        rl.resume();
        rl.prompt();
      });
  });
  rl.prompt();
  return rl;
}
