import { startHarness, type Harness, type ConnectedAgent } from '../setup/harness';
import { aWebhookPayload, anInstagramDm, signPayload } from '../factories/instagram';

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
  (await h.t.platformDb.collection('instagram_inbound_handled').countDocuments({ agentId: agent.agentId }));

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

describe('the inbox', () => {
  test('when events are handled, then they leave the inbox for the handled collection, and a later redelivery is dropped there', async () => {
    const visitor = h.aVisitor();
    const dm = anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'moved along' });
    await h.deliver(a, [dm]);
    await h.drain();
    const pending = h.t.platformDb.collection('instagram_inbound_events');
    const handled = h.t.platformDb.collection('instagram_inbound_handled');
    expect(await pending.countDocuments({ agentId: a.agentId })).toBe(0);
    expect(await handled.findOne({ agentId: a.agentId, 'event.mid': dm.message!.mid })).toMatchObject({
      status: 'done',
    });

    // Meta delivers it again, a day later: stored (intake cannot tell cheaply), recognised by the worker, dropped.
    expect((await h.deliver(a, [dm])).body.data.stored).toBe(1);
    await h.drain();
    expect(await pending.countDocuments({ agentId: a.agentId })).toBe(0);
    expect(h.retell.completions.filter((c) => c.content === 'moved along')).toHaveLength(1);
    expect(h.graph.sent.filter((s) => s.recipientId === visitor)).toHaveLength(1);
  });
});
