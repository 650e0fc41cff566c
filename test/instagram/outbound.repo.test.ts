import type { Connection } from 'mongoose';
import { OutboundRepo } from '../../src/instagram/outbound.repo';
import { dropTestDatabase, openTestDatabase } from '../setup/db';

/** The notes of our own sends, against the run's real database server. */
let db: Connection;
beforeAll(async () => {
  db = await openTestDatabase('outbound');
});
afterAll(() => dropTestDatabase(db));

const note = (key: string) => ({ key, agentId: 'agent_o', userId: '1791', text: 'Yes, we do!' });

test('when a send is noted but not yet completed, then its echo is not dropped at intake; once completed with its mid, it is', async () => {
  const outbound = new OutboundRepo();
  await outbound.begin(db, note('evt:0'));
  // Meta answered with a mid, but the note is not completed yet (it may fail, or the process may stop):
  // a retry must find the echo stored, so intake must not drop it.
  expect(outbound.sentHere('agent_o', 'mid_0')).toBe(false);

  await outbound.complete(db, 'agent_o', 'evt:0', { status: 'sent', mid: 'mid_0' });

  expect(outbound.sentHere('agent_o', 'mid_0')).toBe(true);
  expect(await outbound.find(db, 'agent_o', 'evt:0')).toMatchObject({ status: 'sent', mid: 'mid_0' });
  expect(outbound.sentHere('agent_other', 'mid_0')).toBe(false);
});

test('when an echo claims an in-flight note, then later copies of that echo are dropped at intake', async () => {
  const outbound = new OutboundRepo();
  await outbound.begin(db, note('evt:1'));

  expect(await outbound.claimEcho(db, 'agent_o', '1791', 'mid_1', 'Yes, we do!')).toBe(true);

  expect(outbound.sentHere('agent_o', 'mid_1')).toBe(true);
  expect(await outbound.isOurs(db, 'agent_o', 'mid_1')).toBe(true);
});
