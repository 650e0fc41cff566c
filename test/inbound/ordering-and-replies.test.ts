import { startHarness, type Harness, type ConnectedAgent } from '../setup/harness';
import { anInstagramDm } from '../factories/instagram';
import { simMessages } from '../../src/simulators/retell.simulator';
import { threadKeyOf } from '../../src/inbound/inbound-event.repo';
import { InboundWorker } from '../../src/inbound/inbound.worker';
import { handleInboundEvent } from '../../src/inbound/handle-inbound-event';
import { waitFor } from '../setup/wait-for';
import { SecretBox } from '../../src/lib/crypto';
import { CONNECTION_CACHE_MS } from '../../src/instagram/connection.repo';
import { MAX_MESSAGE_BYTES } from '../../src/instagram/message-split';
import crypto from 'node:crypto';

let h: Harness;
let a: ConnectedAgent;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(async () => {
  a = await h.connectAgent();
  h.retell.setReply((content) => `Echo: ${content}`);
});
afterEach(() => {
  h.retell.clearFailures();
  h.graph.clearFailures();
});

const sentTo = (visitor: string) => h.graph.sent.filter((s) => s.recipientId === visitor);
const turnsOf = async () =>
  (await h.chatsOf(a)).flatMap(
    (c) =>
      c.messages as { role: string; content: string; delivery_status?: string; delivery_error?: string }[],
  );

describe('order', () => {
  test('when one visitor sends 5 quick messages, then the agent sees them in order in one chat and the replies go out in order', async () => {
    const visitor = h.aVisitor();
    const t0 = Date.now();
    const dms = [1, 2, 3, 4, 5].map((i) =>
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: `message ${i}`, timestamp: t0 + i }),
    );
    await Promise.all(dms.map((dm) => h.deliver(a, [dm])));
    await h.drain();
    const mine = h.retell.completions.filter((c) => c.content.startsWith('message '));
    expect(mine.map((c) => c.content)).toEqual([
      'message 1',
      'message 2',
      'message 3',
      'message 4',
      'message 5',
    ]);
    expect(new Set(mine.map((c) => c.chat_id)).size).toBe(1);
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(dms.map((_, i) => `Echo: message ${i + 1}`));
  });

  test('when a visitor writes again while their last message is being answered, then the worker reads on under the lease it holds, without polling', async () => {
    const visitor = h.aVisitor();
    const t0 = Date.now();
    const [first, ...later] = [1, 2, 3].map((i) =>
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: `again ${i}`, timestamp: t0 + i }),
    );
    const thread = threadKeyOf(a.sub.id, a.agentId, visitor);
    const deliverEcho = h.graph.onSend!;
    const claims = jest.spyOn(h.t.deps.inbox, 'acquireLease');
    const polls = jest.spyOn(h.t.deps.inbox, 'dueThreads');
    let claimsOfThread: number;
    let pollsWhileInHand = 0;
    // The visitor's next message arrives while the reply to the last one is being sent: the worker is
    // still handling that event, under the thread's lease.
    h.graph.onSend = async (sent, account) => {
      await deliverEcho(sent, account);
      const next = sent.recipientId === visitor ? later.shift() : undefined;
      if (next) {
        const before = polls.mock.calls.length;
        expect((await h.deliver(a, [next])).status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 20)); // a poll it set off would start within microtasks
        pollsWhileInHand += polls.mock.calls.length - before;
      }
    };
    try {
      await h.deliver(a, [first!]);
      await h.drain();
    } finally {
      h.graph.onSend = deliverEcho;
      claimsOfThread = claims.mock.calls.filter(([key]) => key === thread).length;
      claims.mockRestore();
      polls.mockRestore();
    }
    expect(later).toHaveLength(0);
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual([
      'Echo: again 1',
      'Echo: again 2',
      'Echo: again 3',
    ]);
    expect(claimsOfThread).toBe(1);
    // Nothing to claim while the only thread named is in hand: no poll of the inbox for it.
    expect(pollsWhileInHand).toBe(0);
  });

  test('when Meta delivers a later message first, then they are still handled in timestamp order', async () => {
    const visitor = h.aVisitor();
    const t0 = Date.now();
    const first = anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'early', timestamp: t0 });
    const second = anInstagramDm({
      userId: visitor,
      accountId: a.accountId,
      text: 'late',
      timestamp: t0 + 1000,
    });
    // One POST carrying both, the later one first: the worker picks by Meta's timestamp, not arrival.
    await h.deliver(a, [second, first]);
    await h.drain();
    expect(
      h.retell.completions.filter((c) => ['early', 'late'].includes(c.content)).map((c) => c.content),
    ).toEqual(['early', 'late']);
  });
});

describe('replies', () => {
  test('when the agent answers with 2,600 characters, then Instagram gets parts of ≤ 999 bytes that join back to the reply', async () => {
    const sentence = 'We ship to Canada within five business days, and returns are free for thirty days. ';
    const long = sentence.repeat(31).trim(); // ~2,600 characters
    expect(long.length).toBeGreaterThan(2500);
    h.retell.setReply(() => long);
    const visitor = h.aVisitor();
    await h.deliver(a, [
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'tell me everything' }),
    ]);
    await h.drain();
    const parts = sentTo(visitor).map((s) => String(s.message.text));
    expect(parts.length).toBeGreaterThanOrEqual(3);
    for (const p of parts) expect(Buffer.byteLength(p, 'utf8')).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(parts.join(' ')).toBe(long);
    const agentTurns = (await turnsOf()).filter((t) => t.role === 'agent');
    expect(agentTurns.map((t) => t.content)).toEqual(parts);
  });

  test("when the agent answers with exactly 1,000 ASCII characters, then it goes out as two messages, since Meta's Limitations say less than 1,000", async () => {
    // 1,000 bytes, within "1000 bytes or less"; the simulator, like Meta, also refuses 1,000 characters.
    const reply = `${'We will answer you soon. '.repeat(39)}See you, have a good day!`;
    expect(Buffer.byteLength(reply, 'utf8')).toBe(1000);
    h.retell.setReply(() => reply);
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId })]);
    await h.drain();
    const parts = sentTo(visitor).map((s) => String(s.message.text));
    expect(parts).toHaveLength(2);
    expect(parts.join(' ')).toBe(reply);
    const agentTurns = (await turnsOf()).filter((t) => t.role === 'agent');
    expect(agentTurns.map((t) => [t.content, t.delivery_status])).toEqual(parts.map((p) => [p, 'sent']));
  });

  test('when the reply is full of multi-byte characters, then every part is ≤ 999 bytes and no character is broken', async () => {
    const long = 'Grüße aus Köln! 日本語のテキストです。👨‍👩‍👧 Ça marche très bien. '.repeat(40).trim();
    h.retell.setReply(() => long);
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId })]);
    await h.drain();
    const parts = sentTo(visitor).map((s) => String(s.message.text));
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) {
      expect(Buffer.byteLength(p, 'utf8')).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
      expect(p).not.toContain('\uFFFD');
      expect(Buffer.from(p, 'utf8').toString('utf8')).toBe(p);
    }
    // Cuts fall at spaces or after a CJK full stop, which needs none: compare without whitespace.
    expect(parts.join('').replace(/\s+/g, '')).toBe(long.replace(/\s+/g, ''));
  });

  test("when Retell returns tool calls and transitions, then only the agent's words are sent", async () => {
    h.retell.setReply(() => [
      simMessages.toolCall('lookup_order', { id: 42 }),
      simMessages.toolResult('tool_x', '{"status":"shipped"}'),
      simMessages.nodeTransition('start', 'answer'),
      simMessages.agent('Your order has shipped.'),
      simMessages.agent('Anything else?'),
    ]);
    const visitor = h.aVisitor();
    await h.deliver(a, [
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'where is my order' }),
    ]);
    await h.drain();
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['Your order has shipped.', 'Anything else?']);
  });
});

describe('shutdown', () => {
  test('when the worker stops while a visitor has 3 messages waiting, then it finishes the one in hand and leaves the others for the next start, in order', async () => {
    const visitor = h.aVisitor();
    const thread = threadKeyOf(a.sub.id, a.agentId, visitor);
    const t0 = Date.now();
    const dms = [1, 2, 3].map((i) =>
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: `bye ${i}`, timestamp: t0 + i }),
    );
    const { worker, inbox } = h.t.deps;
    const asked = h.retell.completions.length;
    h.retell.setDelay(300);
    try {
      await worker.stop();
      for (const dm of dms) expect((await h.deliver(a, [dm])).status).toBe(200);
      worker.start();
      await h.retell.waitForCompletions(asked + 1); // the first is with the agent

      await worker.stop();

      expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['Echo: bye 1']);
      const left = await inbox.pendingOfThread(thread, 10);
      expect(left.filter((e) => e.event.kind === 'message').map((e) => e.event.text)).toEqual([
        'bye 2',
        'bye 3',
      ]);
    } finally {
      h.retell.setDelay(0);
    }
    await h.drain(); // the next start
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['Echo: bye 1', 'Echo: bye 2', 'Echo: bye 3']);
  });
});

describe('failures on the way', () => {
  const databaseReset = () => Promise.reject(new Error('connection reset by the database'));
  /** The agent answers "answer <n> to <question>", n counting its answers: a second ask shows. */
  const numberTheAnswers = () => {
    let n = 0;
    h.retell.setReply((content) => `answer ${++n} to ${content}`);
  };

  test("when writing an event's retry fails, then its thread is claimed again only after a poll interval, not at once in a loop", async () => {
    const visitor = h.aVisitor();
    const thread = threadKeyOf(a.sub.id, a.agentId, visitor);
    const { inbox } = h.t.deps;
    h.retell.failNext(
      '/create-chat-completion',
      Array.from({ length: 60 }, () => ({ status: 500, headers: { 'retry-after-ms': '0' } })),
    );
    const claimedAt: number[] = [];
    const releasedAt: number[] = [];
    const acquire = inbox.acquireLease.bind(inbox);
    const release = inbox.releaseLease.bind(inbox);
    const abandon = inbox.abandonLease.bind(inbox);
    const spies = [
      jest.spyOn(inbox, 'retryLater').mockRejectedValue(new Error('database unreachable')),
      jest.spyOn(inbox, 'acquireLease').mockImplementation(async (key, ...rest) => {
        const got = await acquire(key, ...rest);
        if (key === thread && got) claimedAt.push(Date.now());
        return got;
      }),
      jest.spyOn(inbox, 'releaseLease').mockImplementation(async (key, ...rest) => {
        await release(key, ...rest);
        if (key === thread) releasedAt.push(Date.now());
      }),
      // A run whose retry could not be written lets its lease go this way ("another process takes the
      // thread next", below).
      jest.spyOn(inbox, 'abandonLease').mockImplementation(async (key, ...rest) => {
        await abandon(key, ...rest);
        if (key === thread) releasedAt.push(Date.now());
      }),
    ];
    h.t.deps.worker.start(); // polling, as in production (the harness otherwise runs it by drain only)
    try {
      await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'db trouble' })]);
      await waitFor('the thread claimed 3 times', () => claimedAt.length >= 3);
    } finally {
      await h.t.deps.worker.stop();
      for (const spy of spies) spy.mockRestore();
      h.retell.clearFailures();
    }
    // Each failed run lets its lease go, and the next claim waits for the harness's poll interval (50 ms).
    const waits = claimedAt.slice(1, 3).map((at, i) => at - releasedAt[i]!);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(40);
    await h.drain();
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['Echo: db trouble']);
  });

  test("when a thread's oldest event waits for its retry, then the thread is not claimed over and over meanwhile, and order is kept", async () => {
    const visitor = h.aVisitor();
    const thread = threadKeyOf(a.sub.id, a.agentId, visitor);
    const t0 = Date.now();
    const dms = [1, 2].map((i) =>
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: `later ${i}`, timestamp: t0 + i }),
    );
    const { worker, inbox } = h.t.deps;
    await worker.stop(); // (the harness runs it by drain only) both stored before any is handled
    const claims = jest.spyOn(inbox, 'acquireLease');
    let claimsOfThread: number;
    try {
      for (const dm of dms) expect((await h.deliver(a, [dm])).status).toBe(200);
      const [oldest] = await inbox.pendingOfThread(thread, 10);
      // The first failed once and is to be retried in 1 s; the second is due now, behind it.
      await inbox.retryLater(oldest!._id, 1, new Date(Date.now() + 1000), 'Retell 503');
      await h.drain(); // polls every few ms until both are answered
    } finally {
      claimsOfThread = claims.mock.calls.filter(([key]) => key === thread).length;
      claims.mockRestore();
    }
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['Echo: later 1', 'Echo: later 2']);
    // Once when it is found held back, once when the retry is due (and perhaps once for the echoes).
    expect(claimsOfThread).toBeLessThanOrEqual(4);
  });

  test('when a reply went out but recording it failed, then the retry at once finds its echo and does not send it again', async () => {
    const visitor = h.aVisitor();
    const complete = jest.spyOn(h.t.deps.inbound.outbound, 'complete').mockImplementationOnce(databaseReset);
    let completions: number;
    try {
      await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'record me' })]);
      await h.drain();
    } finally {
      completions = complete.mock.calls.length;
      complete.mockRestore();
    }
    expect(completions).toBeGreaterThanOrEqual(2); // the one that failed, and the retry's
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['Echo: record me']);
    const agentTurns = (await turnsOf()).filter((t) => t.role === 'agent' && t.content === 'Echo: record me');
    expect(agentTurns).toHaveLength(1);
  });

  test('when the agent answered but the attempt failed before its answer was kept, then the retry takes that answer from Retell instead of asking again', async () => {
    const visitor = h.aVisitor();
    numberTheAnswers();
    const save = jest.spyOn(h.t.deps.inbox, 'saveProgress').mockImplementationOnce(databaseReset);
    try {
      await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'book me in' })]);
      await h.drain();
    } finally {
      save.mockRestore();
    }
    expect(h.retell.completions.filter((c) => c.content === 'book me in')).toHaveLength(1);
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['answer 1 to book me in']);
  });

  test('when that failure could not even be written as a retry, then the next run still takes the answer from Retell', async () => {
    const visitor = h.aVisitor();
    numberTheAnswers();
    const { inbox } = h.t.deps;
    const spies = [
      jest.spyOn(inbox, 'saveProgress').mockImplementationOnce(databaseReset),
      jest.spyOn(inbox, 'retryLater').mockImplementationOnce(databaseReset),
    ];
    try {
      await h.deliver(a, [
        anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'cancel my order' }),
      ]);
      await h.drain();
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    expect(h.retell.completions.filter((c) => c.content === 'cancel my order')).toHaveLength(1);
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['answer 1 to cancel my order']);
  });

  test('when that failure could not be written and another process takes the thread next, then it too takes the answer from Retell instead of asking again', async () => {
    const visitor = h.aVisitor();
    numberTheAnswers();
    const { inbox, worker } = h.t.deps;
    const retryWrite = jest.spyOn(inbox, 'retryLater').mockImplementationOnce(databaseReset);
    const progressWrite = jest.spyOn(inbox, 'saveProgress').mockImplementationOnce(databaseReset);
    worker.start(); // polling, as in production (the harness otherwise runs it by drain only)
    try {
      await h.deliver(a, [
        anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'refund my order' }),
      ]);
      await waitFor('the attempt whose retry could not be written', () => retryWrite.mock.calls.length >= 1);
    } finally {
      await worker.stop(); // this process goes away before it runs the event again
      retryWrite.mockRestore();
      progressWrite.mockRestore();
    }
    const [stored] = await inbox.pendingOfThread(threadKeyOf(a.sub.id, a.agentId, visitor), 10);
    expect(stored).toMatchObject({ attempts: 0 }); // nothing in the inbox says it ran

    const other = new InboundWorker(
      inbox,
      (event, ctx) => handleInboundEvent(h.t.deps.inbound, event, ctx),
      h.t.deps.logger,
      { leaseMs: 2000, pollMs: 50, backoffBaseMs: 5, backoffMaxMs: 50, maxAttempts: 5 },
    );
    await other.drain();
    expect(h.retell.completions.filter((c) => c.content === 'refund my order')).toHaveLength(1);
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['answer 1 to refund my order']);
  });

  test('when Retell answers 500 then 503 then succeeds, then the visitor is answered once', async () => {
    h.retell.failNext('/create-chat-completion', [
      { status: 500, headers: { 'retry-after-ms': '0' } },
      { status: 503, headers: { 'retry-after-ms': '0' } },
    ]);
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'are you there' })]);
    await h.drain();
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['Echo: are you there']);
  });

  test('when Retell keeps failing, then the event is marked failed with its last error after bounded attempts', async () => {
    h.retell.failNext(
      '/create-chat-completion',
      Array.from({ length: 30 }, () => ({ status: 500, headers: { 'retry-after-ms': '0' } })),
    );
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'doomed' })]);
    await h.drain();
    const stored = await h.t.platformDb
      .collection('instagram_inbound_events')
      .findOne({ agentId: a.agentId, 'event.userId': visitor });
    expect(stored).toMatchObject({ status: 'failed', attempts: 5 });
    expect(stored!.lastError).toMatch(/Retell/);
    expect(sentTo(visitor)).toHaveLength(0);
    // The visitor's words are kept in chats even though no answer could be produced.
    expect((await turnsOf()).some((t) => t.role === 'user' && t.content === 'doomed')).toBe(true);
  });

  test('when Retell refuses with a 4xx (not the chat), then it is not retried', async () => {
    h.retell.failNext('/create-chat', [{ status: 402 }]);
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'no credit' })]);
    await h.drain();
    const stored = await h.t.platformDb
      .collection('instagram_inbound_events')
      .findOne({ agentId: a.agentId, 'event.userId': visitor });
    expect(stored).toMatchObject({ status: 'failed', attempts: 1 });
  });

  test('when the Graph send answers 500 without delivering, then after the echo window it is sent again, once', async () => {
    h.graph.failNext({ method: 'POST', path: '/me/messages' }, [
      {
        status: 500,
        body: {
          error: { message: 'An unknown error occurred', type: 'OAuthException', code: 1, fbtrace_id: 'f1' },
        },
      },
    ]);
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'retry me' })]);
    await h.drain();
    expect(sentTo(visitor).map((s) => s.message.text)).toEqual(['Echo: retry me']);
    const agentTurns = (await turnsOf()).filter((t) => t.role === 'agent' && t.content === 'Echo: retry me');
    expect(agentTurns).toEqual([expect.objectContaining({ delivery_status: 'sent' })]);
  });

  test('when the Graph send errors but Meta delivered it anyway, then its echo reconciles it and it is not sent twice', async () => {
    h.graph.failNext({ method: 'POST', path: '/me/messages' }, [
      {
        status: 500,
        deliverAnyway: true,
        body: {
          error: {
            message: 'Received invalid JSON reply',
            type: 'OAuthException',
            code: 1,
            error_subcode: 1357046,
            fbtrace_id: 'f2',
          },
        },
      },
    ]);
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'maybe sent' })]);
    await h.drain();
    const sent = sentTo(visitor);
    expect(sent.map((s) => s.message.text)).toEqual(['Echo: maybe sent']);
    const turns = await turnsOf();
    expect(turns.filter((t) => t.role === 'agent' && t.content === 'Echo: maybe sent')).toEqual([
      expect.objectContaining({ delivery_status: 'sent', instagram_mid: sent[0]!.messageId }),
    ]);
    expect(turns.some((t) => t.role === 'operator')).toBe(false);
  });

  test('when Instagram refuses the reply for good, then the agent turn is stored as failed with the reason', async () => {
    h.graph.failNext({ method: 'POST', path: '/me/messages' }, [
      {
        status: 400,
        body: {
          error: {
            message: "This person isn't available right now.",
            type: 'OAuthException',
            code: 551,
            error_subcode: 1545041,
            fbtrace_id: 'f3',
          },
        },
      },
    ]);
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'gone' })]);
    await h.drain();
    const failed = (await turnsOf()).find((t) => t.role === 'agent' && t.content === 'Echo: gone');
    expect(failed).toMatchObject({
      delivery_status: 'failed',
      delivery_error: expect.stringContaining('551'),
    });
  });

  test('when the token was revoked (190), then the reply is failed and the connection shows tokenStatus invalid', async () => {
    h.graph.failNext({ method: 'POST', path: '/me/messages' }, [
      {
        status: 400,
        body: {
          error: {
            message: 'Error validating access token: The session has been invalidated.',
            type: 'OAuthException',
            code: 190,
            error_subcode: 460,
            fbtrace_id: 'f4',
          },
        },
      },
    ]);
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId })]);
    await h.drain();
    expect((await h.t.http().get(a.path('status')).set(a.admin)).body.data.tokenStatus).toBe('invalid');
  });

  test('when the stored token cannot be opened with the configured keys, then nothing reaches Meta, the event is retried, then failed, and the token is not marked invalid', async () => {
    const visitor = h.aVisitor();
    await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'locked' })]);
    // Stored (as by a process whose keys are right); then this process can no longer open the token.
    const connections = h.t.platformDb.useDb(a.sub.databaseName).collection('instagram_connections');
    await connections.updateOne(
      { agentId: a.agentId },
      { $set: { accessTokenSealed: new SecretBox(crypto.randomBytes(32)).seal(a.token) } },
    );
    await new Promise((r) => setTimeout(r, CONNECTION_CACHE_MS + 100)); // the cached connection expires
    const requestsBefore = h.graph.requests.length;

    await h.drain();

    const stored = await h.t.platformDb
      .collection('instagram_inbound_events')
      .findOne({ agentId: a.agentId, 'event.userId': visitor });
    expect(stored).toMatchObject({ status: 'failed', attempts: 5 });
    expect(stored!.lastError).toMatch(/cannot be opened/);
    expect(h.graph.requests.slice(requestsBefore)).toEqual([]);
    expect(await connections.findOne({ agentId: a.agentId })).toMatchObject({ tokenStatus: 'valid' });
    // Meanwhile Meta's deliveries are refused (retried by Meta), since the connection's app secret may be
    // among what cannot be opened.
    const refused = await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId })]);
    expect(refused.status).toBe(401);
  });
});
