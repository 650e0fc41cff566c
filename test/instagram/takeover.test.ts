import { startHarness, type ConnectedAgent, type Harness } from '../setup/harness';
import { anEcho, anInstagramDm } from '../factories/instagram';
import { HOUR, aVisitorWhoWrote } from '../factories/turns';
import { userOf } from '../setup/tokens';

/** Human takeover: a person answering pauses the AI for HUMAN_TAKEOVER_MINUTES (here 5) for that visitor. */
const TAKEOVER_MS = 5 * 60_000;

let h: Harness;
let a: ConnectedAgent;
beforeAll(async () => {
  h = await startHarness({ HUMAN_TAKEOVER_MINUTES: '5' });
  a = await h.connectAgent();
});
afterAll(() => h.close());
afterEach(() => jest.useRealTimers());

const send = (to: string, message: string) =>
  h.t.http().post(a.path('send')).set(a.admin).send({ to, message });
const conversation = async (userId: string) => {
  const res = await h.t.http().get(a.path('conversations?limit=200')).set(userOf(a.sub.id));
  return res.body.data.conversations.find((c: { userId: string }) => c.userId === userId);
};
/** Delivers a DM and waits for the worker; returns the Retell completions it caused. */
const dm = async (userId: string, text: string) => {
  const before = h.retell.completions.length;
  await h.deliver(a, [anInstagramDm({ userId, accountId: a.accountId, text })]);
  await h.drain();
  return h.retell.completions.slice(before).map((c) => c.content);
};
const userTurns = async (userId: string) =>
  (await h.chatsOf(a))
    .filter((c) => (c.metadata as { instagram_user_id: string }).instagram_user_id === userId)
    .flatMap((c) => c.messages as { role: string; content: string }[])
    .filter((m) => m.role === 'user')
    .map((m) => m.content);

test('when an operator sends a message, then the AI pauses for the takeover period: the next DM is stored but reaches no agent', async () => {
  const visitor = h.aVisitor();
  expect(await dm(visitor, 'I want to talk to a person')).toEqual(['I want to talk to a person']);

  const sentAt = Date.now();
  expect((await send(visitor, 'Hi, Sam here. How can I help?')).status).toBe(200);

  const row = await conversation(visitor);
  const until = Date.parse(row.aiPausedUntil);
  expect(until).toBeGreaterThanOrEqual(sentAt + TAKEOVER_MS);
  expect(until).toBeLessThanOrEqual(Date.now() + TAKEOVER_MS);

  expect(await dm(visitor, 'My order is late')).toEqual([]);
  expect(await userTurns(visitor)).toEqual(['I want to talk to a person', 'My order is late']);
  expect(h.graph.sent.filter((s) => s.recipientId === visitor).map((s) => s.message.text)).toEqual([
    'Echo: I want to talk to a person',
    'Hi, Sam here. How can I help?',
  ]);
});

test("when an operator takes over while the agent is still thinking, then the agent's late answer is not sent", async () => {
  const visitor = h.aVisitor();
  await dm(visitor, 'hello'); // answered; the messaging window is open
  const sentTo = () => h.graph.sent.filter((s) => s.recipientId === visitor).map((s) => s.message.text);
  const before = sentTo();
  const asked = h.retell.completions.length;
  h.retell.setDelay(400);
  try {
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'are you a bot?' })]);
    const handled = h.drain();
    await h.retell.waitForCompletions(asked + 1); // the agent has the question
    expect((await send(visitor, 'A person here, let me help')).status).toBe(200);
    await handled;
  } finally {
    h.retell.setDelay(0);
  }
  expect(sentTo()).toEqual([...before, 'A person here, let me help']);
  expect(await userTurns(visitor)).toEqual(['hello', 'are you a bot?']);
});

test('when an admin resumes the conversation, then the pause is cleared and the next DM is answered by the agent', async () => {
  const visitor = h.aVisitor();
  await dm(visitor, 'hello');
  await send(visitor, 'A person here');

  const res = await h.t
    .http()
    .post(a.path(`conversations/${visitor}/resume`))
    .set(a.admin)
    .send();

  expect(res.status).toBe(200);
  expect(res.body.data).toMatchObject({
    userId: visitor,
    aiPausedUntil: null,
    windowOpen: true,
    messageCount: 3,
  });
  expect(await dm(visitor, 'thanks, bot again?')).toEqual(['thanks, bot again?']);
});

test('when a person answers from the Instagram app (an echo the connector never sent), then it is stored as an operator turn and the AI pauses', async () => {
  const visitor = h.aVisitor();
  await dm(visitor, 'hello');

  await h.deliver(a, [anEcho({ userId: visitor, accountId: a.accountId, text: 'Typed on my phone' })]);
  await h.drain();

  const turns = (await h.chatsOf(a))
    .filter((c) => (c.metadata as { instagram_user_id: string }).instagram_user_id === visitor)
    .flatMap((c) => c.messages as { role: string; content: string }[]);
  expect(turns.map((m) => [m.role, m.content])).toEqual([
    ['user', 'hello'],
    ['agent', 'Echo: hello'],
    ['operator', 'Typed on my phone'],
  ]);
  expect((await conversation(visitor)).aiPausedUntil).not.toBeNull();
  expect(await dm(visitor, 'are you a human?')).toEqual([]);
});

test('when the takeover period has passed, then the AI answers again by itself', async () => {
  const visitor = h.aVisitor();
  await dm(visitor, 'hello');
  await send(visitor, 'A person here');
  expect(await dm(visitor, 'still paused?')).toEqual([]);

  // Only Date is faked: the clock jumps past the pause and keeps running; timers and I/O stay real.
  jest.useFakeTimers({
    advanceTimers: true,
    doNotFake: [
      'hrtime',
      'nextTick',
      'performance',
      'queueMicrotask',
      'setImmediate',
      'clearImmediate',
      'setInterval',
      'clearInterval',
      'setTimeout',
      'clearTimeout',
    ],
  });
  jest.setSystemTime(Date.now() + TAKEOVER_MS + 1000);

  expect(await dm(visitor, 'anyone?')).toEqual(['anyone?']);
});

test('when an admin pauses a conversation on purpose, then the AI stays quiet for those minutes, and an operator message does not shorten it', async () => {
  const visitor = await aVisitorWhoWrote(h, a, HOUR);
  const before = Date.now();

  const res = await h.t
    .http()
    .post(a.path(`conversations/${visitor}/pause`))
    .set(a.admin)
    .send({ minutes: 120 });

  expect(res.status).toBe(200);
  const until = Date.parse(res.body.data.aiPausedUntil);
  expect(until).toBeGreaterThanOrEqual(before + 120 * 60_000);
  expect(await dm(visitor, 'hello?')).toEqual([]);

  await send(visitor, 'Looking into it');
  expect(Date.parse((await conversation(visitor)).aiPausedUntil)).toBe(until);
});

test('when a conversation that never existed is paused or resumed, then its row is created and returned', async () => {
  const stranger = '1234567890123';
  const paused = await h.t
    .http()
    .post(a.path(`conversations/${stranger}/pause`))
    .set(a.admin)
    .send({ minutes: 1 });
  expect(paused.status).toBe(200);
  expect(paused.body.data).toMatchObject({
    userId: stranger,
    lastMessage: null,
    lastInboundAt: null,
    windowOpen: false,
    windowExpiresAt: null,
    messageCount: 0,
    aiPausedUntil: expect.any(String),
  });
  const resumed = await h.t
    .http()
    .post(a.path(`conversations/${stranger}/resume`))
    .set(a.admin)
    .send();
  expect(resumed.body.data).toMatchObject({ userId: stranger, aiPausedUntil: null });
});

test.each([
  [{ minutes: 0 }, 'body.minutes'],
  [{ minutes: 10_081 }, 'body.minutes'],
  [{ minutes: 1.5 }, 'body.minutes'],
  [{ minutes: '30' }, 'body.minutes'],
  [{}, 'body.minutes'],
  [{ minutes: 5, reason: 'x' }, 'body.reason'],
])('when pause gets %j, then 400 naming %s', async (body, field) => {
  const res = await h.t.http().post(a.path('conversations/1234567890/pause')).set(a.admin).send(body);
  expect(res.status).toBe(400);
  expect(res.body.error.details.map((d: { field: string }) => d.field)).toContain(field);
});

test('when a non-numeric user id is resumed, or a body is sent to resume, then 400', async () => {
  expect((await h.t.http().post(a.path('conversations/jane/resume')).set(a.admin).send()).status).toBe(400);
  const withBody = await h.t
    .http()
    .post(a.path('conversations/123/resume'))
    .set(a.admin)
    .send({ minutes: 1 });
  expect(withBody.status).toBe(400);
});

test('when a user (not an admin) pauses or resumes, then 403', async () => {
  const user = userOf(a.sub.id);
  expect(
    (await h.t.http().post(a.path('conversations/123/pause')).set(user).send({ minutes: 5 })).status,
  ).toBe(403);
  expect((await h.t.http().post(a.path('conversations/123/resume')).set(user).send()).status).toBe(403);
});

describe('with HUMAN_TAKEOVER_MINUTES=0', () => {
  let h0: Harness;
  let b: ConnectedAgent;
  beforeAll(async () => {
    h0 = await startHarness({ HUMAN_TAKEOVER_MINUTES: '0' });
    b = await h0.connectAgent();
  });
  afterAll(() => h0.close());

  test('when an operator sends, then the AI is not paused and keeps answering', async () => {
    const visitor = h0.aVisitor();
    await h0.deliver(b, [anInstagramDm({ userId: visitor, accountId: b.accountId, text: 'first' })]);
    await h0.drain();
    expect(
      (await h0.t.http().post(b.path('send')).set(b.admin).send({ to: visitor, message: 'human' })).status,
    ).toBe(200);

    await h0.deliver(b, [anInstagramDm({ userId: visitor, accountId: b.accountId, text: 'second' })]);
    await h0.drain();

    expect(h0.retell.completions.map((c) => c.content)).toEqual(['first', 'second']);
  });
});
