import { startHarness, type ConnectedAgent, type Harness } from '../setup/harness';
import { anEcho, anInstagramDm, aMid } from '../factories/instagram';
import { aSubaccount, anAgent, igPath } from '../factories/platform';
import { HOUR, aVisitorWhoWrote, tenantDb } from '../factories/turns';
import { adminOf, userOf } from '../setup/tokens';
import { waitFor } from '../setup/wait-for';
import { MAX_MESSAGE_BYTES } from '../../src/instagram/message-split';

let h: Harness;
let a: ConnectedAgent;
// One connected agent for the file: every test talks to visitors of its own. Tests that change the
// connection itself (a dead token) connect another agent.
beforeAll(async () => {
  h = await startHarness();
  a = await h.connectAgent();
});
afterAll(() => h.close());

const send = (body: unknown, agent = a) =>
  h.t
    .http()
    .post(agent.path('send'))
    .set(agent.admin)
    .send(body as object);
const sentTo = (userId: string) => h.graph.sent.filter((s) => s.recipientId === userId);
type Turn = { role: string; content: string; instagram_mid?: string; delivery_status?: string };
const chatsWith = async (userId: string, agent = a) =>
  (await h.chatsOf(agent)).filter(
    (c) => (c.metadata as { instagram_user_id: string }).instagram_user_id === userId,
  );
const turnsOf = async (userId: string, agent = a) =>
  (await chatsWith(userId, agent)).flatMap((c) => c.messages as Turn[]);

/** Meta's Graph error body (https://developers.facebook.com/docs/graph-api/guides/error-handling). */
const metaError = (code: number, subcode?: number, message = 'Meta says no') => ({
  error: {
    message,
    type: 'OAuthException',
    code,
    ...(subcode ? { error_subcode: subcode } : {}),
    fbtrace_id: 'AbCdEf123',
  },
});

test('when an admin sends to a visitor who wrote a minute ago, then 200 with the ids, one operator turn in the thread’s chat, and its echo adds nothing', async () => {
  const visitor = h.aVisitor('jane_doe');
  await h.deliver(a, [
    anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'Can a human help me?' }),
  ]);
  await h.drain();
  const [retellChat] = await chatsWith(visitor);

  const res = await send({ to: visitor, message: 'Hi Jane, Sam from the shop here.' });

  expect(res.status).toBe(200);
  expect(res.body).toEqual({
    success: true,
    data: {
      messageIds: [expect.any(String)],
      instagramMessageIds: [sentTo(visitor).at(-1)!.messageId],
      recipientId: visitor,
      chatId: retellChat!.chat_id,
    },
  });
  expect(sentTo(visitor).at(-1)!.message).toEqual({ text: 'Hi Jane, Sam from the shop here.' });

  await h.drain(); // the echo Meta sent back was handled
  const chats = await chatsWith(visitor);
  expect(chats).toHaveLength(1);
  expect(chats[0]).toMatchObject({ message_count: 3 });
  expect(String(chats[0]!.transcript).split('\n').at(-1)).toBe('Operator: Hi Jane, Sam from the shop here.');
  const turns = chats[0]!.messages as Turn[];
  expect(turns.map((m) => m.role)).toEqual(['user', 'agent', 'operator']);
  expect(turns[2]).toMatchObject({
    message_id: res.body.data.messageIds[0],
    content: 'Hi Jane, Sam from the shop here.',
    instagram_mid: res.body.data.instagramMessageIds[0],
    delivery_status: 'sent',
  });

  const listed = await h.t
    .http()
    .get(a.path(`messages?userId=${visitor}`))
    .set(userOf(a.sub.id));
  expect(listed.body.data.messages[0]).toMatchObject({
    messageId: res.body.data.messageIds[0],
    role: 'operator',
    status: 'sent',
    username: 'jane_doe',
  });
});

test('when no chat is ongoing for the visitor, then the operator turn opens a chat document of its own', async () => {
  const visitor = await aVisitorWhoWrote(h, a, 23 * HOUR);
  const db = await tenantDb(h, a);
  await h.t.deps.recorder.chats.end(
    db,
    (await h.t.deps.recorder.conversations.get(db, a.agentId, visitor))!.chatId!,
  );

  const res = await send({ to: visitor, message: 'Are you still there?' });

  expect(res.status).toBe(200);
  expect(res.body.data.chatId).toMatch(/^igop_/);
  const chat = (await chatsWith(visitor)).find((c) => c.chat_id === res.body.data.chatId)!;
  expect(chat).toMatchObject({
    chat_status: 'ongoing',
    message_count: 1,
    metadata: { channel: 'instagram', instagram_user_id: visitor, instagram_account_id: a.accountId },
    createdBy: 'instagram-connector',
  });
});

test('when the body puts a query operator where a string belongs, then 400 VALIDATION_ERROR and nothing is sent', async () => {
  const before = h.graph.sent.length;
  const res = await send({ to: { $gt: '' }, message: 'hi' });
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe('VALIDATION_ERROR');
  expect(res.body.error.details).toEqual([expect.objectContaining({ field: 'body.to' })]);
  expect(h.graph.sent.length).toBe(before);
});

test.each([
  ['no recipient', { message: 'hi' }, 'body.to'],
  ['a non-numeric recipient', { to: 'jane', message: 'hi' }, 'body.to'],
  ['neither message nor attachment', { to: '123' }, 'body'],
  ['an empty message', { to: '123', message: '' }, 'body.message'],
  ['a blank message', { to: '123', message: '   ' }, 'body.message'],
  ['a message over 4,000 characters', { to: '123', message: 'x'.repeat(4001) }, 'body.message'],
  ['a message that is an object', { to: '123', message: { $ne: null } }, 'body.message'],
  [
    'an http attachment',
    { to: '123', attachmentUrl: 'http://x.example/a.png', attachmentType: 'image' },
    'body.attachmentUrl',
  ],
  [
    'an attachment without its type',
    { to: '123', attachmentUrl: 'https://x.example/a.png' },
    'body.attachmentType',
  ],
  [
    'an unknown attachment type',
    { to: '123', attachmentUrl: 'https://x.example/a', attachmentType: 'sticker' },
    'body.attachmentType',
  ],
  [
    'a type without an attachment',
    { to: '123', message: 'hi', attachmentType: 'image' },
    'body.attachmentType',
  ],
  ['an unknown field', { to: '123', message: 'hi', tag: 'HUMAN_AGENT' }, 'body.tag'],
])('when the body has %s, then 400 naming the field', async (_what, body, field) => {
  const res = await send(body);
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe('VALIDATION_ERROR');
  expect(res.body.error.details.map((d: { field: string }) => d.field)).toContain(field);
});

test('when a user (not an admin) sends, then 403', async () => {
  const res = await h.t.http().post(a.path('send')).set(userOf(a.sub.id)).send({ to: '123', message: 'hi' });
  expect(res.status).toBe(403);
});

test('when the agent has no Instagram connection, then 409 INSTAGRAM_NOT_CONNECTED', async () => {
  const sub = await aSubaccount(h.t.platformDb);
  const agentId = await anAgent(h.t.platformDb, sub);
  const res = await h.t
    .http()
    .post(igPath(sub.id, agentId, 'send'))
    .set(adminOf(sub.id))
    .send({ to: '1234567890', message: 'hi' });
  expect(res.status).toBe(409);
  expect(res.body.error.code).toBe('INSTAGRAM_NOT_CONNECTED');
});

test('when the visitor last wrote 25 hours ago, then 422 MESSAGING_WINDOW_CLOSED with details.lastInboundAt and nothing is sent', async () => {
  const visitor = await aVisitorWhoWrote(h, a, 25 * HOUR);
  const stored = await h.t.deps.recorder.conversations.get(await tenantDb(h, a), a.agentId, visitor);

  const res = await send({ to: visitor, message: 'Sorry for the delay!' });

  expect(res.status).toBe(422);
  expect(res.body.error.code).toBe('MESSAGING_WINDOW_CLOSED');
  expect(new Date(res.body.error.details.lastInboundAt).getTime()).toBe(stored!.lastInboundAt!.getTime());
  expect(Date.now() - stored!.lastInboundAt!.getTime()).toBeGreaterThanOrEqual(25 * HOUR);
  expect(sentTo(visitor)).toHaveLength(0);
});

test('when the person never wrote to the account, then 422 MESSAGING_WINDOW_CLOSED with lastInboundAt null', async () => {
  const res = await send({ to: h.aVisitor(), message: 'Hello stranger' });
  expect(res.status).toBe(422);
  expect(res.body.error).toMatchObject({ code: 'MESSAGING_WINDOW_CLOSED', details: { lastInboundAt: null } });
});

test('when the visitor wrote 23 hours ago, then the window is still open and the message goes out', async () => {
  const visitor = await aVisitorWhoWrote(h, a, 23 * HOUR);
  const res = await send({ to: visitor, message: 'Still time to answer' });
  expect(res.status).toBe(200);
  expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['Still time to answer']);
});

test('when Meta refuses the message, then 502 INSTAGRAM_SEND_FAILED with Meta’s code, subcode and trace id, and no turn is stored', async () => {
  const visitor = await aVisitorWhoWrote(h, a, HOUR);
  h.graph.failNext({ method: 'POST', path: '/me/messages' }, [
    { status: 400, body: metaError(100, 2018001, 'No matching user found') },
  ]);

  const res = await send({ to: visitor, message: 'Hello?' });

  expect(res.status).toBe(502);
  expect(res.body.error).toMatchObject({
    code: 'INSTAGRAM_SEND_FAILED',
    details: { code: 100, error_subcode: 2018001, fbtrace_id: 'AbCdEf123', mayHaveBeenSent: false },
  });
  expect((await turnsOf(visitor)).map((t) => t.role)).toEqual(['user']);
  const conv = await h.t.http().get(a.path('conversations')).set(userOf(a.sub.id));
  const row = conv.body.data.conversations.find((c: { userId: string }) => c.userId === visitor);
  expect(row).toMatchObject({ aiPausedUntil: null });
});

test('when Meta rate-limits the account and says when to come back, then 429 INSTAGRAM_RATE_LIMITED with that Retry-After', async () => {
  const visitor = await aVisitorWhoWrote(h, a, HOUR);
  // Meta's throttling header: estimated_time_to_regain_access is in minutes (rate-limiting docs).
  const usage = JSON.stringify({
    [a.accountId]: [{ type: 'messenger', call_count: 100, estimated_time_to_regain_access: 2 }],
  });
  h.graph.failNext({ method: 'POST', path: '/me/messages' }, [
    {
      status: 400,
      body: metaError(613, undefined, 'Calls to this api have exceeded the rate limit.'),
      headers: { 'X-Business-Use-Case-Usage': usage },
    },
  ]);

  const res = await send({ to: visitor, message: 'Hello?' });

  expect(res.status).toBe(429);
  expect(res.headers['retry-after']).toBe('120');
  expect(res.body.error).toMatchObject({
    code: 'INSTAGRAM_RATE_LIMITED',
    details: { code: 613, retryAfterSeconds: 120 },
  });
});

test('when Meta keeps rate-limiting without saying for how long, then 429 with a default Retry-After after the client’s retries', async () => {
  const visitor = await aVisitorWhoWrote(h, a, HOUR);
  const requestsBefore = h.graph.requests.length;
  // The Graph client retries a rate limit (it certainly did not deliver) up to 4 attempts.
  h.graph.failNext(
    { method: 'POST', path: '/me/messages' },
    Array.from({ length: 4 }, () => ({ status: 400, body: metaError(4) })),
  );

  const res = await send({ to: visitor, message: 'Hello?' });

  expect(res.status).toBe(429);
  expect(res.headers['retry-after']).toBe('60');
  expect(h.graph.requests.length - requestsBefore).toBe(4);
  expect(sentTo(visitor)).toHaveLength(0);
});

test('when Meta says the token is no longer valid (190), then 422 INSTAGRAM_AUTH_FAILED, /status shows tokenStatus invalid, and later sends stop before Meta', async () => {
  const b = await h.connectAgent();
  const visitor = await aVisitorWhoWrote(h, b, HOUR);
  h.graph.failNext({ method: 'POST', path: '/me/messages' }, [
    { status: 401, body: metaError(190, 460, 'Error validating access token') },
  ]);

  const res = await send({ to: visitor, message: 'Hello?' }, b);

  expect(res.status).toBe(422);
  expect(res.body.error).toMatchObject({
    code: 'INSTAGRAM_AUTH_FAILED',
    details: { code: 190, tokenStatus: 'invalid' },
  });
  const status = await h.t.http().get(b.path('status')).set(userOf(b.sub.id));
  expect(status.body.data).toMatchObject({ isConnected: true, tokenStatus: 'invalid' });

  const requestsBefore = h.graph.requests.length;
  const again = await send({ to: visitor, message: 'Hello again?' }, b);
  expect(again.status).toBe(422);
  expect(again.body.error.code).toBe('INSTAGRAM_AUTH_FAILED');
  expect(h.graph.requests.length).toBe(requestsBefore);
});

test('when a send made with the old token is refused (190) after the admin connected again, then the new connection stays valid', async () => {
  const b = await h.connectAgent();
  const visitor = await aVisitorWhoWrote(h, b, HOUR);
  h.graph.failNext({ method: 'POST', path: '/me/messages' }, [
    { status: 401, body: metaError(190, 460, 'Error validating access token'), delayMs: 300 },
  ]);
  const requestsBefore = h.graph.requests.length;

  const inFlight = send({ to: visitor, message: 'Still there?' }, b).then((r) => r); // started now
  await waitFor('the send to reach Meta', () => h.graph.requests.length > requestsBefore);
  const reconnected = await h.t
    .http()
    .post(b.path('connect'))
    .set(b.admin)
    .send({ accessToken: b.token, appSecret: b.appSecret });
  expect(reconnected.status).toBe(200);
  expect((await inFlight).status).toBe(422);

  const status = await h.t.http().get(b.path('status')).set(userOf(b.sub.id));
  expect(status.body.data).toMatchObject({ isConnected: true, tokenStatus: 'valid' });
});

test('when Meta’s answer leaves it unknown whether the message went out, then 502 with mayHaveBeenSent, and a late echo of it is recorded once as an operator turn', async () => {
  const visitor = await aVisitorWhoWrote(h, a, HOUR);
  h.graph.failNext({ method: 'POST', path: '/me/messages' }, [
    {
      status: 500,
      body: { error: { message: 'Temporary send message failure', code: 1200, fbtrace_id: 'Xy' } },
    },
  ]);

  const res = await send({ to: visitor, message: 'Did this arrive?' });

  expect(res.status).toBe(502);
  expect(res.body.error).toMatchObject({
    code: 'INSTAGRAM_SEND_FAILED',
    details: { code: 1200, mayHaveBeenSent: true },
  });
  expect((await turnsOf(visitor)).map((t) => t.role)).toEqual(['user']);

  // It had gone out after all: Meta's echo arrives later and the turn is written (once).
  const mid = aMid();
  await h.deliver(a, [anEcho({ userId: visitor, accountId: a.accountId, mid, text: 'Did this arrive?' })]);
  await h.drain();
  const turns = await turnsOf(visitor);
  expect(turns.filter((t) => t.role === 'operator')).toEqual([
    expect.objectContaining({ content: 'Did this arrive?', instagram_mid: mid, delivery_status: 'sent' }),
  ]);
});

describe('when the database fails after Meta took the message', () => {
  /** The operator turns of the visitor's chats, and what /messages lists of them. */
  async function operatorRecordsOf(visitor: string) {
    const turns = (await turnsOf(visitor)).filter((t) => t.role === 'operator');
    const listed = await h.t
      .http()
      .get(a.path(`messages?userId=${visitor}`))
      .set(userOf(a.sub.id));
    const rows = (listed.body.data.messages as { role: string; messageId: string }[]).filter(
      (m) => m.role === 'operator',
    );
    return { turns, rows };
  }

  test('in recording it, then 500 says it was delivered, with its mid, and it is recorded once soon after', async () => {
    const visitor = await aVisitorWhoWrote(h, a, HOUR);
    const record = jest
      .spyOn(h.t.deps.recorder, 'record')
      .mockRejectedValueOnce(new Error('connection pool cleared'));
    let res;
    try {
      res = await send({ to: visitor, message: 'Your order ships today.' });
    } finally {
      record.mockRestore();
    }

    expect(sentTo(visitor)).toHaveLength(1); // Meta took it
    const mid = sentTo(visitor)[0]!.messageId;
    expect(res.status).toBe(500);
    expect(res.body.error).toMatchObject({
      code: 'INTERNAL_ERROR',
      message: expect.stringContaining('Do not send it again'),
      details: { delivered: true, instagramMessageIds: [mid] },
    });

    // Recorded again in the background (the harness waits 20 ms, then 40, …), once.
    await waitFor('the part to be recorded', async () => (await operatorRecordsOf(visitor)).rows.length > 0);
    await h.drain(); // its echo too: ours, so nothing more
    const { turns, rows } = await operatorRecordsOf(visitor);
    expect(turns).toEqual([
      expect.objectContaining({
        content: 'Your order ships today.',
        instagram_mid: mid,
        delivery_status: 'sent',
      }),
    ]);
    expect(rows).toHaveLength(1);
    const convo = await h.t.http().get(a.path('conversations')).set(a.admin);
    const row = (convo.body.data.conversations as { userId: string; aiPausedUntil: string | null }[]).find(
      (c) => c.userId === visitor,
    );
    expect(new Date(row!.aiPausedUntil!).getTime()).toBeGreaterThan(Date.now()); // a person answered
  });

  test('in completing its note, then 500 says it was delivered, and it is recorded once soon after', async () => {
    const visitor = await aVisitorWhoWrote(h, a, HOUR);
    const complete = jest
      .spyOn(h.t.deps.inbound.outbound, 'complete')
      .mockRejectedValueOnce(new Error('connection pool cleared'));
    let res;
    try {
      res = await send({ to: visitor, message: 'A person will call you.' });
    } finally {
      complete.mockRestore();
    }

    const mid = sentTo(visitor)[0]!.messageId;
    expect(res.status).toBe(500);
    expect(res.body.error.details).toEqual({ delivered: true, instagramMessageIds: [mid] });

    await waitFor('the part to be recorded', async () => (await operatorRecordsOf(visitor)).rows.length > 0);
    await h.drain();
    const { turns, rows } = await operatorRecordsOf(visitor);
    expect(turns).toEqual([
      expect.objectContaining({ content: 'A person will call you.', instagram_mid: mid }),
    ]);
    expect(rows).toHaveLength(1);
  });
});

test('when an operator message is 2,500 characters long, then it arrives as parts of at most 999 bytes, in order, each stored', async () => {
  const visitor = await aVisitorWhoWrote(h, a, HOUR);
  const sentence = (i: number) => `Sentence ${i} über Größe und Lieferung — ça va? `;
  let text = '';
  for (let i = 0; text.length < 2500; i++) text += sentence(i);
  text = text.slice(0, 2500).trimEnd() + '.';

  const res = await send({ to: visitor, message: text });

  expect(res.status).toBe(200);
  const parts = sentTo(visitor).map((s) => String(s.message.text));
  expect(parts.length).toBeGreaterThanOrEqual(3);
  for (const p of parts) expect(Buffer.byteLength(p, 'utf8')).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
  expect(parts.join(' ')).toBe(text.replace(/\s+/g, ' '));
  expect(res.body.data.messageIds).toHaveLength(parts.length);
  expect(res.body.data.instagramMessageIds).toEqual(sentTo(visitor).map((s) => s.messageId));

  await h.drain();
  const operatorTurns = (await turnsOf(visitor)).filter((t) => t.role === 'operator');
  expect(operatorTurns.map((t) => t.content)).toEqual(parts);
});

test('when the message carries an https attachment, then the text goes first, the attachment last, both stored and neither echo recorded again', async () => {
  const visitor = await aVisitorWhoWrote(h, a, HOUR);
  const url = 'https://cdn.example.com/catalogue/red-dress.jpg';
  // Meta echoes an attachment with its own CDN URL and no text.
  const original = h.graph.onSend;
  h.graph.onSend = async (sent, account) => {
    if (!sent.message.attachment) return original?.(sent, account);
    const echo = anEcho({
      userId: sent.recipientId,
      accountId: a.accountId,
      mid: sent.messageId,
      message: {
        text: undefined,
        attachments: [{ type: 'image', payload: { url: 'https://lookaside.fbsbx.com/x' } }],
      },
    });
    expect((await h.deliver(a, [echo])).status).toBe(200);
  };
  try {
    const res = await send({
      to: visitor,
      message: 'Here it is:',
      attachmentUrl: url,
      attachmentType: 'image',
    });
    expect(res.status).toBe(200);
    expect(res.body.data.messageIds).toHaveLength(2);
  } finally {
    h.graph.onSend = original;
  }
  expect(sentTo(visitor).map((s) => s.message)).toEqual([
    { text: 'Here it is:' },
    { attachment: { type: 'image', payload: { url } } },
  ]);
  await h.drain();
  const operatorTurns = (await turnsOf(visitor)).filter((t) => t.role === 'operator');
  expect(operatorTurns).toEqual([
    expect.objectContaining({ content: 'Here it is:' }),
    expect.objectContaining({ content: '', attachments: [{ type: 'image', url }] }),
  ]);
});
