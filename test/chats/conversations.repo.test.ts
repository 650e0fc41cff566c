import type { Connection } from 'mongoose';
import { connectPlatform } from '../../src/db/mongo';
import { ConversationsRepo } from '../../src/chats/conversations.repo';
import { testDbUri, uniqueName } from '../setup/db';

/** The per-user summary rows, against the run's real database server. */
let db: Connection;
const conversations = new ConversationsRepo();
beforeAll(async () => {
  db = await connectPlatform(testDbUri(uniqueName('conversations')));
});
afterAll(async () => {
  await db.dropDatabase();
  await db.close();
});

test('when turns, a pause and a username are written to one row at once, then none of the writes is lost', async () => {
  const at = (i: number) => new Date(Date.UTC(2026, 10, 21, 10, 0, i));
  const until = new Date(Date.now() + 3_600_000);

  await Promise.all([
    ...Array.from({ length: 30 }, (_, i) =>
      conversations.recordTurn(db, 'agent_1', 'u1', {
        role: i % 2 ? 'agent' : 'user',
        text: `t${i}`,
        at: at(i),
      }),
    ),
    conversations.extendPause(db, 'agent_1', 'u1', until),
    conversations.setUsername(db, 'agent_1', 'u1', 'jane'),
    conversations.setChat(db, 'agent_1', 'u1', 'chat_1'),
  ]);

  expect(await conversations.get(db, 'agent_1', 'u1')).toMatchObject({
    messageCount: 30,
    lastMessage: 't29',
    lastMessageAt: at(29),
    lastInboundAt: at(28),
    aiPausedUntil: until,
    username: 'jane',
    chatId: 'chat_1',
  });
});
