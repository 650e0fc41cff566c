import { startHarness, type Harness, type ConnectedAgent } from '../setup/harness';
import { anInstagramDm } from '../factories/instagram';
import { tenantDb } from '../factories/turns';
import { handledCollection, handledShard } from '../../src/inbound/inbound-event.repo';

/**
 * Retention: what exists only to deduplicate Meta's redeliveries and recognise our own echoes (handled
 * events, outbound notes and their mids) is deleted after the retention period (7 days by default),
 * hourly by the worker; everything younger stays.
 */
let h: Harness;
let a: ConnectedAgent;
beforeAll(async () => {
  h = await startHarness();
  a = await h.connectAgent();
});
afterAll(() => h.close());

const DAY = 24 * 3_600_000;

test('when handled events, outbound notes and mids are older than the retention, then a sweep deletes them and keeps the younger ones', async () => {
  const [old, recent] = [h.aVisitor('old_visitor'), h.aVisitor('recent_visitor')];
  const oldDm = anInstagramDm({ userId: old, accountId: a.accountId, text: 'Long ago' });
  const recentDm = anInstagramDm({ userId: recent, accountId: a.accountId, text: 'Just now' });
  await h.deliver(a, [oldDm, recentDm]);
  await h.drain();
  const mid = (visitor: string) => h.graph.sent.find((s) => s.recipientId === visitor)!.messageId;
  const db = await tenantDb(h, a);
  const notes = db.collection('instagram_outbound');
  const midId = (visitor: string) => `mid:${a.agentId}:${mid(visitor)}`; // beside the notes

  // Everything about the old visitor's DM is eight days old.
  const eightDaysAgo = new Date(Date.now() - 8 * DAY);
  const [handled] = await h.t.deps.inbox.handledWhere({ 'event.mid': oldDm.message!.mid });
  await h.t.platformDb
    .collection(handledCollection(handledShard(handled!._id)))
    .updateOne({ _id: handled!._id as never }, { $set: { doneAt: eightDaysAgo } });
  await notes.updateMany({ userId: old }, { $set: { createdAt: eightDaysAgo } });
  await notes.updateOne({ _id: midId(old) as never }, { $set: { createdAt: eightDaysAgo } });

  const removed = await h.t.deps.worker.sweep();

  expect(removed).toBe(3);
  expect(await h.t.deps.inbox.handledWhere({ 'event.mid': oldDm.message!.mid })).toEqual([]);
  expect(await notes.countDocuments({ userId: old })).toBe(0);
  expect(await notes.countDocuments({ _id: midId(old) as never })).toBe(0);
  // The recent DM's records stay: its redelivery is still recognised.
  expect(await h.t.deps.inbox.handledWhere({ 'event.mid': recentDm.message!.mid })).toHaveLength(1);
  expect(await notes.countDocuments({ userId: recent })).toBe(1);
  expect(await notes.countDocuments({ _id: midId(recent) as never })).toBe(1);
  await h.deliver(a, [recentDm]);
  await h.drain();
  expect(h.graph.sent.filter((s) => s.recipientId === recent)).toHaveLength(1);
});
