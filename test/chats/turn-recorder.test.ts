import { mongo, type Connection } from 'mongoose';
import { ChatsRepo, chatDocId, type ChatTurn } from '../../src/chats/chats.repo';
import { ConversationsRepo } from '../../src/chats/conversations.repo';
import { MessagesRepo } from '../../src/chats/messages.repo';
import { TurnRecorder } from '../../src/chats/turn-recorder';
import { dropTestDatabase, openTestDatabase } from '../setup/db';

/** One turn written to the messages index, the chat and the conversation row, on the run's database. */
let db: Connection;
const recorder = new TurnRecorder(new ChatsRepo(), new MessagesRepo(), new ConversationsRepo());
beforeAll(async () => {
  db = await openTestDatabase('recorder');
});
afterAll(() => dropTestDatabase(db));

let n = 0;
async function aThread() {
  const chatId = `chat_rec_${++n}`;
  const userId = `1790${n}`;
  await recorder.chats.create(db, {
    chat_id: chatId,
    agent_id: 'agent_rec',
    subaccountId: 'sub_1',
    start_timestamp: Date.now(),
    metadata: { channel: 'instagram', instagram_user_id: userId, instagram_account_id: '2' },
  });
  return { agentId: 'agent_rec', userId, chatId };
}
const aUserTurn = (i: number, at: number): ChatTurn => ({
  message_id: `ig_rec_${n}_${i}`,
  role: 'user',
  content: `question ${i}`,
  created_timestamp: at,
});
const chatOf = async (chatId: string) => (await db.collection('chats').findOne({ _id: chatDocId(chatId) }))!;

test('when a turn is recorded twice, then the chat, the messages index and the count hold it once', async () => {
  const t = await aThread();
  const turn = aUserTurn(1, Date.now());
  await recorder.record(db, { ...t, turn });
  await recorder.record(db, { ...t, turn });

  const chat = await chatOf(t.chatId);
  expect(chat.messages).toHaveLength(1);
  expect(chat.message_count).toBe(1);
  const listed = await recorder.messages.page(db, t.agentId, { userId: t.userId, limit: 10 });
  expect(listed.rows.map((m) => m.messageId)).toEqual([turn.message_id]);
  expect((await recorder.conversations.get(db, t.agentId, t.userId))?.messageCount).toBe(1);
});

test('when a crash left only the messages row, then the retry appends the turn to the chat and opens the window', async () => {
  const t = await aThread();
  const at = Date.now() - 60_000;
  const turn = aUserTurn(1, at);
  // The crash: the row (the turn's claim) was written, nothing after it.
  await recorder.messages.insert(db, {
    ...t,
    messageId: turn.message_id,
    role: 'user',
    content: turn.content,
    attachments: [],
    timestamp: new Date(at),
    status: 'received',
  });

  await recorder.record(db, { ...t, turn });

  const chat = await chatOf(t.chatId);
  expect((chat.messages as ChatTurn[]).map((m) => m.message_id)).toEqual([turn.message_id]);
  expect(chat.transcript).toBe('User: question 1');
  const row = await recorder.conversations.get(db, t.agentId, t.userId);
  expect(row).toMatchObject({ lastInboundAt: new Date(at), lastMessage: 'question 1', messageCount: 1 });
});

test('when the same turn is recorded three times at once, then the chat, both listings and the count hold it once', async () => {
  const t = await aThread();
  await recorder.record(db, { ...t, turn: aUserTurn(0, Date.now() - 1000) });
  const turn = aUserTurn(1, Date.now());
  // Every update lands 50 ms late: the repeats look while the first call's writes are still on their way.
  const update = mongo.Collection.prototype.updateOne;
  const late = jest.spyOn(mongo.Collection.prototype, 'updateOne').mockImplementation(function (
    this: mongo.Collection,
    ...args: Parameters<typeof update>
  ) {
    return new Promise((r) => setTimeout(r, 50)).then(() => update.apply(this, args)) as never;
  });

  try {
    await Promise.all([1, 2, 3].map(() => recorder.record(db, { ...t, turn })));
  } finally {
    late.mockRestore();
  }

  const chat = await chatOf(t.chatId);
  expect((chat.messages as ChatTurn[]).map((m) => m.message_id)).toEqual([`ig_rec_${n}_0`, turn.message_id]);
  expect(chat.message_count).toBe(2);
  for (const userId of [undefined, t.userId]) {
    const ids: string[] = [];
    let before;
    do {
      const page = await recorder.messages.page(db, t.agentId, { userId, limit: 1, before });
      ids.push(...page.rows.map((m) => m.messageId));
      before = page.next;
    } while (before);
    expect(ids.filter((id) => id === turn.message_id)).toHaveLength(1);
  }
  expect((await recorder.conversations.get(db, t.agentId, t.userId))?.messageCount).toBe(2);
});
