import { startHarness, type Harness, type ConnectedAgent } from '../setup/harness';
import { anInstagramDm } from '../factories/instagram';

let h: Harness;
let a: ConnectedAgent;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(async () => {
  a = await h.connectAgent();
});

test('when a visitor sends a text DM, then the agent answers on Instagram and both turns land in chats', async () => {
  const visitor = h.aVisitor('jane_doe');
  const dm = anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'Hi! Do you ship to Canada?' });

  const ack = await h.deliver(a, [dm]);
  expect(ack.status).toBe(200);
  expect(h.retell.completions).toHaveLength(0); // acknowledged before the agent is asked
  await h.drain();

  // Retell: one chat for this agent with Instagram metadata, asked with the visitor's words.
  expect(h.retell.created).toHaveLength(1);
  expect(h.retell.created[0]).toMatchObject({
    agent_id: a.agentId,
    metadata: { channel: 'instagram', instagram_user_id: visitor, instagram_account_id: a.accountId },
  });
  expect(h.retell.completions.map((c) => c.content)).toEqual(['Hi! Do you ship to Canada?']);

  // Meta: the reply went to the sender.
  const replies = h.graph.sent.filter((s) => s.recipientId === visitor);
  expect(replies.map((s) => s.message.text)).toEqual(['Echo: Hi! Do you ship to Canada?']);

  // chats: one document, both turns, the contract's shape.
  const chats = await h.chatsOf(a);
  expect(chats).toHaveLength(1);
  const chat = chats[0]!;
  expect(chat).toMatchObject({
    chat_id: h.retell.created.length && [...h.retell.chats.keys()][0],
    agent_id: a.agentId,
    subaccountId: a.sub.id,
    chat_status: 'ongoing',
    message_count: 2,
    transcript: 'User: Hi! Do you ship to Canada?\nAgent: Echo: Hi! Do you ship to Canada?',
    metadata: {
      channel: 'instagram',
      instagram_user_id: visitor,
      instagram_account_id: a.accountId,
      instagram_username: 'jane_doe',
    },
    createdBy: 'instagram-connector',
  });
  expect(chat.messages).toEqual([
    expect.objectContaining({
      role: 'user',
      content: 'Hi! Do you ship to Canada?',
      instagram_mid: dm.message!.mid,
      attachments: [],
    }),
    expect.objectContaining({
      role: 'agent',
      content: 'Echo: Hi! Do you ship to Canada?',
      instagram_mid: replies[0]!.messageId,
      delivery_status: 'sent',
    }),
  ]);
  // The echo of our own reply was recognised: no operator turn, no takeover.
  expect((chat.messages as { role: string }[]).some((m) => m.role === 'operator')).toBe(false);
});

test('when the same visitor writes again, then the same Retell chat is reused', async () => {
  const visitor = h.aVisitor();
  await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'first' })]);
  await h.drain();
  await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'second' })]);
  await h.drain();
  const chats = await h.chatsOf(a);
  expect(chats).toHaveLength(1);
  expect(chats[0]!.message_count).toBe(4);
  expect(
    new Set(h.retell.completions.filter((c) => ['first', 'second'].includes(c.content)).map((c) => c.chat_id))
      .size,
  ).toBe(1);
});
