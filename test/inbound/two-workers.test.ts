import { startHarness, type Harness, type ConnectedAgent } from '../setup/harness';
import { anInstagramDm } from '../factories/instagram';
import { InboundWorker, type HandlerContext } from '../../src/inbound/inbound.worker';
import type { StoredEvent } from '../../src/inbound/inbound-event.repo';
import { handleInboundEvent } from '../../src/inbound/handle-inbound-event';
import { waitFor } from '../setup/wait-for';

jest.setTimeout(180_000);
let h: Harness;
let a: ConnectedAgent;
beforeAll(async () => {
  h = await startHarness();
  a = await h.connectAgent();
});
afterAll(() => h.close());

test("when two workers share one database, then 200 events over 20 users are each handled once and in each user's order", async () => {
  const users = Array.from({ length: 20 }, () => h.aVisitor());
  const t0 = Date.now();
  for (let round = 0; round < 10; round++) {
    await h.deliver(
      a,
      users.map((u, i) =>
        anInstagramDm({
          userId: u,
          accountId: a.accountId,
          text: `${u}#${round}`,
          timestamp: t0 + round * 100 + i,
        }),
      ),
    );
  }
  h.retell.setDelay(5);

  const handledBy = new Map<string, number>();
  const workers = ['one', 'two'].map(
    (name) =>
      new InboundWorker(
        h.t.deps.inbox,
        async (stored, ctx) => {
          handledBy.set(name, (handledBy.get(name) ?? 0) + 1);
          return handleInboundEvent(h.t.deps.inbound, stored, ctx);
        },
        h.t.deps.logger,
        { concurrency: 8, leaseMs: 5000, pollMs: 20, backoffBaseMs: 5 },
      ),
  );
  workers.forEach((w) => w.start());
  try {
    await waitFor('the backlog to drain', async () => (await h.t.deps.inbox.backlog()) === 0, 150_000);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    h.retell.setDelay(0);
  }

  const completions = h.retell.completions.filter((c) => c.content.includes('#'));
  expect(completions).toHaveLength(200);
  for (const u of users) {
    const expected = Array.from({ length: 10 }, (_, r) => `${u}#${r}`);
    expect(completions.filter((c) => c.content.startsWith(`${u}#`)).map((c) => c.content)).toEqual(expected);
    expect(h.graph.sent.filter((s) => s.recipientId === u).map((s) => s.message.text)).toEqual(
      expected.map((e) => `Echo: ${e}`),
    );
  }
  // Both workers took part.
  expect(handledBy.get('one')).toBeGreaterThan(0);
  expect(handledBy.get('two')).toBeGreaterThan(0);
});

test('when a thread lease is taken, then a free one is "free", a held one is refused, and one left expired and never released is "abandoned"', async () => {
  const { inbox } = h.t.deps;
  const thread = `lease-test:${h.aVisitor()}`;

  expect(await inbox.acquireLease(thread, 'worker-a', 1_000)).toBe('free');
  expect(await inbox.acquireLease(thread, 'worker-b', 1_000)).toBe(false);
  // worker-a never releases it (it crashed): once expired, the next holder learns the thread was abandoned,
  // so its oldest event is a rerun (Retell's chat is read before the agent is asked).
  await new Promise((r) => setTimeout(r, 1_100));
  expect(await inbox.acquireLease(thread, 'worker-b', 1_000)).toBe('abandoned');
  await inbox.releaseLease(thread, 'worker-b');
  expect(await inbox.acquireLease(thread, 'worker-c', 1_000)).toBe('free');
});

test('when a worker cannot renew its lease and it runs out before the agent is asked, then that worker stops there and the one that takes the thread over asks the agent once', async () => {
  const visitor = h.aVisitor();
  const { inbox, inbound, logger } = h.t.deps;
  const handler = (name: string) => (stored: StoredEvent, ctx: HandlerContext) =>
    name === 'first' && stored.event.userId === visitor
      ? slowStart().then(() => handleInboundEvent(inbound, stored, ctx))
      : handleInboundEvent(inbound, stored, ctx);
  // The first holder is held up (a long pause, a slow database) past its lease, before it asks the agent.
  let started = false;
  const slowStart = async () => {
    started = true;
    await new Promise((r) => setTimeout(r, 1_500));
  };
  const opts = { concurrency: 4, leaseMs: 600, pollMs: 20, backoffBaseMs: 5, backoffMaxMs: 50 };
  const first = new InboundWorker(inbox, handler('first'), logger, opts);
  const second = new InboundWorker(inbox, handler('second'), logger, opts);
  const renew = inbox.renewLease.bind(inbox);
  const renewals = jest
    .spyOn(inbox, 'renewLease')
    .mockImplementation((key, owner, ms) =>
      owner === first.id ? Promise.reject(new Error('not primary')) : renew(key, owner, ms),
    );
  const seenBefore = h.retell.completions.length;
  try {
    first.start();
    await h.deliver(a, [
      anInstagramDm({ userId: visitor, accountId: a.accountId, text: 'where is my parcel' }),
    ]);
    await waitFor('the first worker to hold the thread', () => started);
    second.start(); // takes the thread once the first one's lease has run out
    await waitFor('the reply', () => h.graph.sent.some((s) => s.recipientId === visitor));
    await first.stop(); // its run in hand ends
    await second.drain();
  } finally {
    await Promise.all([first.stop(), second.stop()]);
    renewals.mockRestore();
  }
  const asked = h.retell.completions.slice(seenBefore).filter((c) => c.content === 'where is my parcel');
  expect(asked).toHaveLength(1);
  expect(h.graph.sent.filter((s) => s.recipientId === visitor).map((s) => s.message.text)).toEqual([
    'Echo: where is my parcel',
  ]);
});
