import { startHarness, type Harness, type ConnectedAgent } from '../setup/harness';
import { aWebhookPayload, anInstagramDm, signPayload } from '../factories/instagram';
import { parseWebhookPayload, type InboundEvent } from '../../src/inbound/inbound-event';
import type { MessagingEvent } from '../../src/instagram/webhook.types';

let h: Harness;
let a: ConnectedAgent;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(async () => {
  a = await h.connectAgent();
});

/** Events stored for the agent: still to do (the inbox) or handled (moved to the handled collection). */
const storedFor = async (agent: ConnectedAgent) =>
  (await h.t.platformDb.collection('instagram_inbound_events').countDocuments({ agentId: agent.agentId })) +
  (await h.t.deps.inbox.handledWhere({ agentId: agent.agentId })).length;

describe('signature', () => {
  test('when the signature is right, then 200 and the event is stored', async () => {
    const res = await h.deliver(a, [anInstagramDm({ userId: h.aVisitor(), accountId: a.accountId })]);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true, data: { received: 1, stored: 1 } });
    expect(await storedFor(a)).toBe(1);
  });

  test.each([
    ['missing', null],
    ['made with another secret', 'not-the-app-secret'],
  ])('when the signature is %s, then 401, nothing stored, nothing sent', async (_label, secret) => {
    const visitor = h.aVisitor();
    const res = await h.deliver(a, [anInstagramDm({ userId: visitor, accountId: a.accountId })], { secret });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('WEBHOOK_SIGNATURE_INVALID');
    await h.drain();
    expect(await storedFor(a)).toBe(0);
    expect(h.graph.sent.filter((s) => s.recipientId === visitor)).toHaveLength(0);
  });

  test('when the body was altered after signing, then 401', async () => {
    const raw = JSON.stringify(
      aWebhookPayload(a.accountId, [
        anInstagramDm({ userId: h.aVisitor(), accountId: a.accountId, text: 'hello' }),
      ]),
    );
    const res = await h.t
      .http()
      .post(a.path('webhook'))
      .set('Content-Type', 'application/json')
      .set('X-Hub-Signature-256', signPayload(raw, a.appSecret))
      .send(raw.replace('hello', 'hellO'));
    expect(res.status).toBe(401);
    expect(await storedFor(a)).toBe(0);
  });
});

describe('payload', () => {
  test('when the body is not JSON, then 400', async () => {
    const res = await h.deliver(a, [], { raw: '{"object": "instagram", ' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('MALFORMED_JSON');
  });

  test('when the object is not instagram, then 400 VALIDATION_ERROR', async () => {
    const res = await h.deliver(a, [], { raw: JSON.stringify({ object: 'page', entry: [] }) });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
  });

  test('when one POST carries 3 entries × 2 events, then all 6 are stored and answered', async () => {
    const visitors = [h.aVisitor(), h.aVisitor(), h.aVisitor()];
    const entries = visitors.map((v) => ({
      messaging: [
        anInstagramDm({ userId: v, accountId: a.accountId, text: `${v} one` }),
        anInstagramDm({ userId: v, accountId: a.accountId, text: `${v} two` }),
      ],
    }));
    const raw = JSON.stringify(aWebhookPayload(a.accountId, entries));
    const res = await h.deliver(a, [], { raw });
    expect(res.body.data).toEqual({ received: 6, stored: 6 });
    await h.drain();
    for (const v of visitors) {
      expect(h.graph.sent.filter((s) => s.recipientId === v).map((s) => s.message.text)).toEqual([
        `Echo: ${v} one`,
        `Echo: ${v} two`,
      ]);
    }
  });

  test('when events are for another Instagram account, then they are acknowledged and ignored', async () => {
    const visitor = h.aVisitor();
    const foreign = anInstagramDm({ userId: visitor, accountId: '17840000000009999' });
    const raw = JSON.stringify(aWebhookPayload('17840000000009999', [foreign]));
    const res = await h.deliver(a, [], { raw });
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ received: 1, stored: 0 });
    await h.drain();
    expect(h.graph.sent.filter((s) => s.recipientId === visitor)).toHaveLength(0);
  });

  test('when the agent has disconnected, then events are acknowledged and dropped', async () => {
    await h.t.http().post(a.path('disconnect')).set(a.admin).send({}).expect(200);
    const res = await h.deliver(a, [anInstagramDm({ userId: h.aVisitor(), accountId: a.accountId })], {
      secret: null,
    });
    expect(res.status).toBe(200);
    expect(res.body.data.stored).toBe(0);
    expect(await storedFor(a)).toBe(0);
  });
});

describe('redelivery', () => {
  test('when Meta delivers the same event 3 times at once and again later, then one completion, one reply, one user turn', async () => {
    const visitor = h.aVisitor();
    const dm = anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'only once please' });
    const results = await Promise.all([1, 2, 3].map(() => h.deliver(a, [dm])));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    await h.drain();
    expect((await h.deliver(a, [dm])).status).toBe(200);
    await h.drain();

    expect(h.retell.completions.filter((c) => c.content === 'only once please')).toHaveLength(1);
    expect(h.graph.sent.filter((s) => s.recipientId === visitor)).toHaveLength(1);
    const [chat] = await h.chatsOf(a);
    expect((chat!.messages as { role: string }[]).filter((m) => m.role === 'user')).toHaveLength(1);
    expect(await storedFor(a)).toBe(2); // the DM and the echo of the one reply
  });
});

describe('the acknowledgement', () => {
  test('when Retell is slow, then the webhook is still acknowledged before the agent is asked', async () => {
    h.retell.setDelay(400);
    try {
      const res = await h.deliver(a, [
        anInstagramDm({ userId: h.aVisitor(), accountId: a.accountId, text: 'slow agent' }),
      ]);
      expect(res.status).toBe(200);
      expect(h.retell.completions.filter((c) => c.content === 'slow agent')).toHaveLength(0);
      await h.drain();
      expect(h.retell.completions.filter((c) => c.content === 'slow agent')).toHaveLength(1);
    } finally {
      h.retell.setDelay(0);
    }
  });

  test('when an event is handled, then the connection shows lastEventAt', async () => {
    await h.deliver(a, [anInstagramDm({ userId: h.aVisitor(), accountId: a.accountId })]);
    await h.drain();
    const status = await h.t.http().get(a.path('status')).set(a.admin);
    expect(new Date(status.body.data.lastEventAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });
});

describe('production without any app secret', () => {
  test.each([
    [{}, 401],
    [{ ALLOW_UNSIGNED_WEBHOOKS: 'true' }, 200],
  ])('when the env is %p, then an unsigned webhook answers %i', async (env, status) => {
    const prod = await startHarness({ NODE_ENV: 'production', ...env });
    try {
      const agent = await prod.connectAgent();
      // Connected with an app secret; drop it to model a connection that has none.
      await prod.t.platformDb
        .useDb(agent.sub.databaseName)
        .collection('instagram_connections')
        .updateOne({ agentId: agent.agentId }, { $unset: { appSecretSealed: '' } });
      const res = await prod.deliver(
        agent,
        [anInstagramDm({ userId: prod.aVisitor(), accountId: agent.accountId })],
        { secret: null },
      );
      expect(res.status).toBe(status);
    } finally {
      await prod.close();
    }
  });
});

describe('production, after a disconnect, with no META_APP_SECRET', () => {
  test('when Meta delivers to the disconnected agent, then 200 and nothing stored (no secret is left to check with, and a 401 would make Meta retry)', async () => {
    const prod = await startHarness({ NODE_ENV: 'production' });
    try {
      const agent = await prod.connectAgent();
      await prod.t.http().post(agent.path('disconnect')).set(agent.admin).send({}).expect(200);

      const res = await prod.deliver(
        agent,
        [anInstagramDm({ userId: prod.aVisitor(), accountId: agent.accountId })],
        { secret: null },
      );

      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ received: 1, stored: 0 });
      const inbox = prod.t.platformDb.collection('instagram_inbound_events');
      expect(await inbox.countDocuments({ agentId: agent.agentId })).toBe(0);
    } finally {
      await prod.close();
    }
  });
});

describe('the inbox', () => {
  test('when events are handled, then they leave the inbox for the handled collection, and a later redelivery is dropped there', async () => {
    const visitor = h.aVisitor();
    const dm = anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'moved along' });
    await h.deliver(a, [dm]);
    await h.drain();
    const pending = h.t.platformDb.collection('instagram_inbound_events');
    expect(await pending.countDocuments({ agentId: a.agentId })).toBe(0);
    const handled = await h.t.deps.inbox.handledWhere({ agentId: a.agentId, 'event.mid': dm.message!.mid });
    expect(handled).toEqual([expect.objectContaining({ status: 'done' })]);
    // Only the key and the outcome are kept: the content lives on in `chats`.
    expect(JSON.stringify(handled[0])).not.toContain('moved along');

    // Meta delivers it again, a day later: stored (intake cannot tell cheaply), recognised by the worker, dropped.
    expect((await h.deliver(a, [dm])).body.data.stored).toBe(1);
    await h.drain();
    expect(await pending.countDocuments({ agentId: a.agentId })).toBe(0);
    expect(h.retell.completions.filter((c) => c.content === 'moved along')).toHaveLength(1);
    expect(h.graph.sent.filter((s) => s.recipientId === visitor)).toHaveLength(1);
  });
});

/**
 * Group commit: deliveries that arrive while an insert is in flight share the next insert. The inbox's
 * inserts are watched with mongoose's per-connection debug hook (each call the app makes to the driver).
 */
describe('concurrent deliveries', () => {
  /** Sizes of the inserts into the inbox that carry documents matching `keep`, in call order. */
  function watchInboxInserts(keep: (doc: { agentId: string; event: InboundEvent }) => boolean) {
    const sizes: number[] = [];
    h.t.platformDb.set('debug', (collection: string, method: string, docs: unknown) => {
      if (collection !== 'instagram_inbound_events') return;
      if (method !== 'insertMany' && method !== 'insertOne') return; // a lone delivery: insertOne
      const mine = ([] as Parameters<typeof keep>[0][]).concat(docs as never).filter(keep);
      if (mine.length > 0) sizes.push(mine.length);
    });
    return { sizes, stop: () => void h.t.platformDb.set('debug', undefined) };
  }

  const eventsOf = (accountId: string, ...items: MessagingEvent[]) => {
    const parsed = parseWebhookPayload(aWebhookPayload(accountId, items));
    if (!parsed.ok) throw new Error(parsed.reason);
    return parsed.events;
  };

  test('when 64 signed deliveries arrive at once, then all get 200, they share inserts, and each event is stored and handled once', async () => {
    const visitors = Array.from({ length: 64 }, () => h.aVisitor());
    const watch = watchInboxInserts((d) => d.agentId === a.agentId && d.event.kind === 'message');
    let results;
    try {
      results = await Promise.all(
        visitors.map((v) =>
          h.deliver(a, [anInstagramDm({ userId: v, accountId: a.accountId, text: `hi ${v}` })]),
        ),
      );
    } finally {
      watch.stop();
    }
    expect(results.map((r) => r.status)).toEqual(visitors.map(() => 200));
    expect(results.map((r) => r.body.data)).toEqual(visitors.map(() => ({ received: 1, stored: 1 })));
    expect(watch.sizes.reduce((x, y) => x + y, 0)).toBe(64);
    expect(watch.sizes.length).toBeLessThan(64); // coalesced: at least one insert carried several deliveries

    // 64 conversations at once through the embedded FerretDB: ~12 s alone, more beside other test files.
    await h.t.deps.worker.drain(90_000);
    const dms = async () =>
      (await h.t.deps.inbox.handledWhere({ agentId: a.agentId, 'event.kind': 'message' })).length +
      (await h.t.platformDb
        .collection('instagram_inbound_events')
        .countDocuments({ agentId: a.agentId, 'event.kind': 'message' }));
    expect(await dms()).toBe(64);
    for (const v of visitors) {
      expect(h.retell.completions.filter((c) => c.content === `hi ${v}`)).toHaveLength(1);
      expect(h.graph.sent.filter((s) => s.recipientId === v).map((s) => s.message.text)).toEqual([
        `Echo: hi ${v}`,
      ]);
    }
  }, 120_000);

  test('when the same delivery is posted 16 times at once, then it is stored once, one answer says stored 1, and it is handled once', async () => {
    const visitor = h.aVisitor();
    const dm = anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'sixteen times' });
    const results = await Promise.all(Array.from({ length: 16 }, () => h.deliver(a, [dm])));
    expect(results.map((r) => r.status)).toEqual(results.map(() => 200));
    expect(results.map((r) => r.body.data.stored).sort()).toEqual([...Array(15).fill(0), 1]);
    await h.drain();
    expect(h.retell.completions.filter((c) => c.content === 'sixteen times')).toHaveLength(1);
    expect(h.graph.sent.filter((s) => s.recipientId === visitor)).toHaveLength(1);
    expect(await storedFor(a)).toBe(2); // the DM and the echo of the one reply
  });

  test('when callers share a batch, then each gets its own count: the same event twice in one insert is stored once, a redelivery of a stored one counts 0', async () => {
    const visitor = h.aVisitor();
    const [e1] = eventsOf(
      a.accountId,
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'e1' }),
    );
    const [e2, e3] = eventsOf(
      a.accountId,
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'e2' }),
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'e3' }),
    );
    const store = (events: InboundEvent[]) => h.t.deps.inbox.store(a.sub.id, a.agentId, events);
    const watch = watchInboxInserts((d) => d.agentId === a.agentId);
    let counts;
    try {
      // The first goes out at once; the other three wait for it and go out together as the second insert.
      counts = await Promise.all([store([e1!]), store([e2!]), store([e2!, e3!]), store([e1!])]);
    } finally {
      watch.stop();
    }
    expect(watch.sizes).toEqual([1, 4]);
    expect(counts).toEqual([1, 1, 1, 0]);
    expect(await storedFor(a)).toBeGreaterThanOrEqual(3);
    await h.drain();
    expect(h.retell.completions.filter((c) => ['e1', 'e2', 'e3'].includes(c.content))).toHaveLength(3);
  });

  test('when the server refuses one document of a shared insert, then only its caller fails and the others are stored', async () => {
    const visitor = h.aVisitor();
    const [ok1, bad, ok2] = eventsOf(
      a.accountId,
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'ok one' }),
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'refused' }),
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'ok two' }),
    );
    const refused = { ...bad!, raw: { $notAField: 1 } }; // a field name the server refuses
    const store = (events: InboundEvent[]) => h.t.deps.inbox.store(a.sub.id, a.agentId, events);
    const watch = watchInboxInserts((d) => d.agentId === a.agentId);
    const first = store([ok1!]);
    const results = await Promise.allSettled([store([refused]), store([ok2!])]);
    watch.stop();
    expect(watch.sizes).toEqual([1, 2]); // the refused document and `ok two` shared the second insert
    await expect(first).resolves.toBe(1);
    expect(results[0]!.status).toBe('rejected');
    expect(results[1]).toEqual({ status: 'fulfilled', value: 1 });
    const ids = [ok1, bad, ok2].map((e) => `${a.sub.id}:${a.agentId}:${e!.key}`);
    const inbox = h.t.platformDb.collection<{ _id: string }>('instagram_inbound_events');
    const stored = async (id: string) =>
      (await inbox.countDocuments({ _id: id })) + (await h.t.deps.inbox.handledWhere({ _id: id })).length;
    expect(await Promise.all(ids.map(stored))).toEqual([1, 0, 1]);
  });
});
