import { startHarness, type Harness, type ConnectedAgent } from '../setup/harness';
import {
  aDeletion,
  aPostback,
  aReaction,
  aRead,
  anAttachmentDm,
  anEcho,
  anEdit,
  anInstagramDm,
  aWebhookPayload,
} from '../factories/instagram';
import { tenantDb } from '../factories/turns';
import { turnId } from '../../src/chats/chats.repo';
import { parseWebhookPayload } from '../../src/inbound/inbound-event';

let h: Harness;
let a: ConnectedAgent;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(async () => {
  a = await h.connectAgent();
});
afterEach(() => {
  h.graph.clearFailures();
  h.retell.clearFailures();
});

type Turn = {
  role: string;
  content: string;
  instagram_mid?: string;
  attachments?: { type: string; url?: string }[];
};
const turnsOf = async (agent = a) => (await h.chatsOf(agent)).flatMap((c) => c.messages as Turn[]);
const askedWith = (visitor: string) =>
  h.retell.completions
    .filter(
      (c) =>
        (h.retell.chats.get(c.chat_id)?.metadata as { instagram_user_id?: string } | undefined)
          ?.instagram_user_id === visitor,
    )
    .map((c) => c.content);

describe('attachments', () => {
  test.each([
    ['image', 'https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1', /image.*https:\/\/lookaside/],
    ['video', 'https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=2', /video.*asset_id=2/],
    ['audio', 'https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=3', /(audio|voice).*asset_id=3/],
    ['file', 'https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=4', /file.*asset_id=4/],
    ['share', 'https://www.instagram.com/p/abc/', /shared a post.*instagram\.com\/p\/abc/],
    ['ig_reel', 'https://www.instagram.com/reel/xyz/', /reel.*reel\/xyz/],
    ['story_mention', 'https://lookaside.fbsbx.com/story/5', /mentioned you in their story.*story\/5/],
    ['ephemeral', undefined, /disappearing|view-once/],
    ['unsupported_type', undefined, /.+/],
  ])(
    'when the visitor sends %s, then the agent is told in words and the turn keeps the attachment',
    async (type, url, told) => {
      const visitor = h.aVisitor();
      await h.deliver(a, [anAttachmentDm(type, url, { userId: visitor, accountId: a.accountId })]);
      await h.drain();
      const asked = askedWith(visitor);
      expect(asked).toHaveLength(1);
      expect(asked[0]).toMatch(told);
      const user = (await turnsOf()).find((t) => t.role === 'user');
      expect(user!.attachments).toEqual([url ? { type, url } : { type }]);
    },
  );

  test('when a story reply comes with text, then the agent gets both', async () => {
    const visitor = h.aVisitor();
    const dm = anInstagramDm({
      userId: visitor,
      accountId: a.accountId,
      text: 'Love this!',
      message: { reply_to: { story: { url: 'https://lookaside.fbsbx.com/story/9', id: '9' } } },
    });
    await h.deliver(a, [dm]);
    await h.drain();
    expect(askedWith(visitor)[0]).toMatch(/story.*Love this!|Love this!.*story/s);
  });
});

describe('buttons', () => {
  test("when the visitor taps an icebreaker, then its words reach the agent as the visitor's text", async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [
      aPostback({
        userId: visitor,
        accountId: a.accountId,
        title: 'What are your opening hours?',
        payload: 'HOURS',
      }),
    ]);
    await h.drain();
    expect(askedWith(visitor)[0]).toContain('What are your opening hours?');
    expect(h.graph.sent.filter((s) => s.recipientId === visitor)).toHaveLength(1);
  });

  test('when the visitor taps a quick reply, then its text reaches the agent', async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [
      anInstagramDm({
        userId: visitor,
        accountId: a.accountId,
        text: 'Yes please',
        message: { quick_reply: { payload: 'YES' } },
      }),
    ]);
    await h.drain();
    expect(askedWith(visitor)[0]).toContain('Yes please');
  });
});

describe('echoes', () => {
  test("when the connector's own reply is echoed, then it is not sent to the agent and not recorded twice", async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'hello' })]);
    await h.drain();
    const turns = await turnsOf();
    expect(turns.map((t) => t.role)).toEqual(['user', 'agent']);
    expect(askedWith(visitor)).toEqual(['hello']);
  });

  test('when the echo of a reply arrives after its send returned, then it is acknowledged without being stored', async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'hello' })]);
    await h.drain();
    const reply = (await turnsOf()).find((t) => t.role === 'agent')!;
    // Meta redelivers the echo late (the harness already delivered it once, before the send returned).
    const res = await h.deliver(a, [
      anEcho({ userId: visitor, accountId: a.accountId, mid: reply.instagram_mid, text: reply.content }),
    ]);
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ received: 1, stored: 0 });
    await h.drain();
    expect((await turnsOf()).map((t) => t.role)).toEqual(['user', 'agent']);
    // A foreign echo in the same delivery is still stored (and becomes an operator turn).
    const foreign = anEcho({ userId: visitor, accountId: a.accountId, text: 'a person typed this' });
    const both = await h.deliver(a, [
      anEcho({ userId: visitor, accountId: a.accountId, mid: reply.instagram_mid, text: reply.content }),
      foreign,
    ]);
    expect(both.body.data).toEqual({ received: 2, stored: 1 });
    await h.drain();
    expect((await turnsOf()).map((t) => t.role)).toEqual(['user', 'agent', 'operator']);
  });

  test('when recording a person’s echo failed after its messages row was written, then the retry records it in the chat and pauses the AI', async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'hi' })]);
    await h.drain();
    const echo = anEcho({ userId: visitor, accountId: a.accountId, text: 'Maria here' });
    const [parsed] = (() => {
      const p = parseWebhookPayload(aWebhookPayload(a.accountId, [echo]));
      if (!p.ok) throw new Error(p.reason);
      return p.events;
    })();
    // The state a crash (or a failed chat append) leaves: the turn's row is there, nothing after it.
    const db = await tenantDb(h, a);
    const [chat] = await h.chatsOf(a);
    await h.t.deps.inbound.recorder.messages.insert(db, {
      agentId: a.agentId,
      userId: visitor,
      chatId: String(chat!.chat_id),
      messageId: turnId(parsed!.key),
      role: 'operator',
      content: 'Maria here',
      attachments: [],
      timestamp: new Date(echo.timestamp),
      status: 'sent',
    });

    await h.deliver(a, [echo]);
    await h.drain();

    const turns = await turnsOf();
    expect(turns.map((t) => [t.role, t.content])).toContainEqual(['operator', 'Maria here']);
    const row = await h.t.deps.inbound.conversations.get(db, a.agentId, visitor);
    expect(row?.aiPausedUntil?.getTime()).toBeGreaterThan(Date.now());
  });

  test('when a person answers from the Instagram app, then the echo is stored as an operator turn and never reaches the agent', async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'hi' })]);
    await h.drain();
    const echo = anEcho({
      userId: visitor,
      accountId: a.accountId,
      text: 'Hi, this is Maria from the shop!',
    });
    await h.deliver(a, [echo]);
    await h.drain();
    const turns = await turnsOf();
    expect(turns.map((t) => t.role)).toEqual(['user', 'agent', 'operator']);
    expect(turns[2]).toMatchObject({
      content: 'Hi, this is Maria from the shop!',
      instagram_mid: echo.message!.mid,
    });
    expect(askedWith(visitor)).toEqual(['hi']);
  });
});

describe('other events', () => {
  test('when the visitor unsends a message, then it is marked deleted in chats and the turn stays', async () => {
    const visitor = h.aVisitor();
    const dm = anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'oops' });
    await h.deliver(a, [dm]);
    await h.drain();
    await h.deliver(a, [aDeletion({ userId: visitor, accountId: a.accountId, mid: dm.message!.mid })]);
    await h.drain();
    const [chat] = await h.chatsOf(a);
    expect((chat!.metadata as { instagram_deleted_mids?: string[] }).instagram_deleted_mids).toEqual([
      dm.message!.mid,
    ]);
    expect((chat!.messages as Turn[])[0]!.content).toBe('oops');
  });

  test('when reads, reactions and edits arrive, then they are acknowledged, never sent to the agent, and the worker carries on', async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [
      aRead({ userId: visitor, accountId: a.accountId }),
      aReaction({ userId: visitor, accountId: a.accountId }),
      aReaction({ userId: visitor, accountId: a.accountId, action: 'unreact' }),
      anEdit({ userId: visitor, accountId: a.accountId }),
      anInstagramDm({
        userId: visitor,
        accountId: a.accountId,
        text: 'after all that',
        timestamp: Date.now() + 10,
      }),
    ]);
    await h.drain();
    expect(askedWith(visitor)).toEqual(['after all that']);
    expect(
      await h.t.platformDb.collection('instagram_inbound_events').countDocuments({ agentId: a.agentId }),
    ).toBe(0);
    const statuses = await h.t.deps.inbox.handledWhere({ agentId: a.agentId, 'event.userId': visitor });
    // The DM is done; the read, both reactions, the edit and the echo of our own reply are ignored.
    expect(statuses.map((s) => s.status).sort()).toEqual([
      'done',
      'ignored',
      'ignored',
      'ignored',
      'ignored',
      'ignored',
    ]);
  });
});

describe('chat sessions', () => {
  test('when the chat was idle longer than CHAT_SESSION_TTL_HOURS, then it is ended at Retell and a new one starts', async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'yesterday' })]);
    await h.drain();
    const [old] = await h.chatsOf(a);
    const dayAgo = new Date(Date.now() - 25 * 3_600_000);
    await h.t.platformDb
      .useDb(a.sub.databaseName)
      .collection('chats')
      .updateOne({ chat_id: old!.chat_id }, { $set: { lastMessageAt: dayAgo } });

    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'today' })]);
    await h.drain();
    const chats = await h.chatsOf(a);
    expect(chats).toHaveLength(2);
    expect(chats[0]).toMatchObject({ chat_id: old!.chat_id, chat_status: 'ended' });
    expect(chats[0]!.end_timestamp).toEqual(expect.any(Number));
    expect(chats[1]).toMatchObject({ chat_status: 'ongoing', message_count: 2 });
    expect(h.retell.ended).toContain(old!.chat_id);
  });

  test('when Retell reports the chat ended, then a new chat is started, holding the question it was asked and the answer, and the visitor is answered', async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'one' })]);
    await h.drain();
    const [old] = await h.chatsOf(a);
    h.retell.chats.get(String(old!.chat_id))!.chat_status = 'ended';
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'two' })]);
    await h.drain();
    const chats = await h.chatsOf(a);
    expect(chats.map((c) => c.chat_status)).toEqual(['ended', 'ongoing']);
    expect(h.graph.sent.filter((s) => s.recipientId === visitor).map((s) => s.message.text)).toEqual([
      'Echo: one',
      'Echo: two',
    ]);
    // The new chat reads question → answer, as the new Retell chat was asked. (The ended one keeps the
    // question too: it was recorded there while Retell was being asked, and turns are never removed.)
    const fresh = chats[1]!;
    expect((fresh.messages as { role: string; content: string }[]).map((m) => [m.role, m.content])).toEqual([
      ['user', 'two'],
      ['agent', 'Echo: two'],
    ]);
    expect(fresh).toMatchObject({ message_count: 2, transcript: 'User: two\nAgent: Echo: two' });
    // /messages lists the visitor's question once.
    const listed = await h.t
      .http()
      .get(`${a.path('messages')}?userId=${visitor}&limit=50`)
      .set(a.admin);
    expect(
      (listed.body.data.messages as { role: string; text?: string; content?: string }[]).filter(
        (m) => m.role === 'user',
      ),
    ).toHaveLength(2);
  });
});

describe('contact facts', () => {
  test('when a visitor writes twice, then the profile is fetched once and the username is kept on chats', async () => {
    const visitor = h.aVisitor('maria.rossi');
    const profileCalls = () =>
      h.graph.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/${visitor}`)).length;
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'a' })]);
    await h.drain();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'b' })]);
    await h.drain();
    expect(profileCalls()).toBe(1);
    const [chat] = await h.chatsOf(a);
    expect((chat!.metadata as { instagram_username?: string }).instagram_username).toBe('maria.rossi');
  });

  test('when the profile API fails, then the visitor is answered anyway', async () => {
    const visitor = h.aVisitor();
    h.graph.failNext(
      { method: 'GET', path: new RegExp(`/${visitor}$`) },
      Array.from({ length: 4 }, () => ({ status: 500 })),
    );
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'no profile' })]);
    await h.drain();
    expect(h.graph.sent.filter((s) => s.recipientId === visitor)).toHaveLength(1);
  });
});

describe('messages Instagram cannot show', () => {
  test('when Meta flags a message as unsupported, then the agent is told so and can answer', async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [
      anInstagramDm({
        userId: visitor,
        accountId: a.accountId,
        text: undefined,
        message: { text: undefined, is_unsupported: true },
      }),
    ]);
    await h.drain();
    expect(askedWith(visitor)).toEqual([expect.stringMatching(/not support|cannot/i)]);
  });
});
