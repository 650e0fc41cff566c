import type { Connection } from 'mongoose';
import { ChatsRepo, chatDocId, transcriptLine, type ChatTurn } from '../../src/chats/chats.repo';
import { dropTestDatabase, openTestDatabase } from '../setup/db';

/** The append to the platform's `chats` documents, against the run's real database server. */
let db: Connection;
const chats = new ChatsRepo();
beforeAll(async () => {
  db = await openTestDatabase('chats');
});
afterAll(() => dropTestDatabase(db));

async function aChat(repo = chats): Promise<string> {
  const chatId = `chat_${Math.random().toString(16).slice(2)}`;
  await repo.create(db, {
    chat_id: chatId,
    agent_id: 'agent_1',
    subaccountId: 'sub_1',
    start_timestamp: Date.now(),
    metadata: { channel: 'instagram', instagram_user_id: '1', instagram_account_id: '2' },
  });
  return chatId;
}

const aTurn = (i: number, role: ChatTurn['role'] = 'user'): ChatTurn => ({
  message_id: `m_${i}`,
  role,
  content: `turn ${i}`,
  created_timestamp: 1_763_712_000_000 + i,
});

test('when turns are appended concurrently, then message_count, messages and transcript all hold every turn in one order', async () => {
  const chatId = await aChat();

  const added = await Promise.all(
    Array.from({ length: 12 }, (_, i) => chats.appendTurn(db, chatId, aTurn(i, i % 2 ? 'agent' : 'user'))),
  );

  expect(added.every(Boolean)).toBe(true);
  const doc = (await db.collection('chats').findOne({ _id: chatDocId(chatId) }))!;
  expect(doc.message_count).toBe(12);
  expect(doc.messages).toHaveLength(12);
  // The transcript follows the stored order of the turns, line for line, whichever append finished last.
  expect(doc.transcript).toBe(
    (doc.messages as ChatTurn[])
      .map((m) => `${m.role === 'user' ? 'User' : 'Agent'}: ${m.content}`)
      .join('\n'),
  );
});

test('when the same turn is appended again, then it is not added a second time', async () => {
  const chatId = await aChat();

  expect(await chats.appendTurn(db, chatId, aTurn(1))).toBe(true);
  expect(await chats.appendTurn(db, chatId, aTurn(1))).toBe(false);

  const doc = (await db.collection('chats').findOne({ _id: chatDocId(chatId) }))!;
  expect(doc.message_count).toBe(1);
  expect(doc.transcript).toBe('User: turn 1');
});

test('when a turn is appended to a chat that does not exist, then it fails instead of creating one', async () => {
  await expect(chats.appendTurn(db, 'chat_missing', aTurn(1))).rejects.toThrow(/not found/);
  expect(await db.collection('chats').findOne({ chat_id: 'chat_missing' })).toBeNull();
});

/** The chat document as stored, and the transcript its turns make. */
async function stored(chatId: string) {
  const doc = (await db.collection('chats').findOne({ _id: chatDocId(chatId) }))!;
  return { doc, fromTurns: (doc.messages as ChatTurn[]).map(transcriptLine).join('\n') };
}

test("when another process appends between this process's turns, then the transcript still holds every turn in order", async () => {
  const here = new ChatsRepo();
  const there = new ChatsRepo(); // another process: a cache of its own
  const chatId = await aChat(here);

  await here.appendTurn(db, chatId, aTurn(1), { fresh: true });
  await there.appendTurn(db, chatId, aTurn(2, 'operator'), { fresh: true });
  await here.appendTurn(db, chatId, aTurn(3, 'agent'), { fresh: true });
  await there.appendTurn(db, chatId, aTurn(4, 'operator'));
  await here.appendTurn(db, chatId, aTurn(5), { fresh: true });

  const { doc, fromTurns } = await stored(chatId);
  expect(doc.message_count).toBe(5);
  expect(doc.transcript).toBe(fromTurns);
  expect(doc.transcript.split('\n')).toEqual([
    'User: turn 1',
    'Operator: turn 2',
    'Agent: turn 3',
    'Operator: turn 4',
    'User: turn 5',
  ]);
});

test('when a restarted process appends to a chat written before, then the transcript carries on from the stored turns', async () => {
  const before = new ChatsRepo();
  const chatId = await aChat(before);
  await before.appendTurn(db, chatId, aTurn(1), { fresh: true });
  await before.appendTurn(db, chatId, aTurn(2, 'agent'), { fresh: true });

  const restarted = new ChatsRepo();
  await restarted.appendTurn(db, chatId, aTurn(3));
  await restarted.appendTurn(db, chatId, aTurn(4, 'agent'), { fresh: true });

  const { doc, fromTurns } = await stored(chatId);
  expect(doc.message_count).toBe(4);
  expect(doc.transcript).toBe(fromTurns);
  expect(doc.transcript).toBe('User: turn 1\nAgent: turn 2\nUser: turn 3\nAgent: turn 4');
});
