import type { Connection } from 'mongoose';
import { OutboundRepo } from '../../src/instagram/outbound.repo';
import { connectPlatform } from '../../src/db/mongo';
import { dropTestDatabase, openTestDatabase, testDbUri } from '../setup/db';

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
  expect(await outbound.sentHere('agent_o', 'mid_0')).toBe(false);

  await outbound.complete(db, 'agent_o', 'evt:0', { status: 'sent', mid: 'mid_0' });

  expect(await outbound.sentHere('agent_o', 'mid_0')).toBe(true);
  expect(await outbound.find(db, 'agent_o', 'evt:0')).toMatchObject({ status: 'sent', mid: 'mid_0' });
  expect(await outbound.sentHere('agent_other', 'mid_0')).toBe(false);
});

test('when an echo claims an in-flight note, then later copies of that echo are dropped at intake', async () => {
  const outbound = new OutboundRepo();
  await outbound.begin(db, note('evt:1'));

  expect(await outbound.claimEcho(db, 'agent_o', '1791', 'mid_1', 'Yes, we do!')).toBe(true);

  expect(await outbound.sentHere('agent_o', 'mid_1')).toBe(true);
  expect(await outbound.isOurs(db, 'agent_o', 'mid_1')).toBe(true);
});

test('when an echo registered the mid before the send completed its note, then the note is completed all the same', async () => {
  const outbound = new OutboundRepo();
  await outbound.begin(db, note('evt:5'));
  // What a claim of the echo leaves when it registers the mid first: the completion's upsert then races it.
  await db
    .collection('instagram_outbound')
    .insertOne({ _id: 'mid:agent_o:mid_5' as never, createdAt: new Date() });

  await outbound.complete(db, 'agent_o', 'evt:5', { status: 'sent', mid: 'mid_5' });

  expect(await outbound.find(db, 'agent_o', 'evt:5')).toMatchObject({ status: 'sent', mid: 'mid_5' });
  expect(await outbound.isOurs(db, 'agent_o', 'mid_5')).toBe(true);
  expect(await outbound.sentHere('agent_o', 'mid_5')).toBe(true);
});

test('when an echo comes while its note is being completed, then it waits for the note and is ours', async () => {
  const outbound = new OutboundRepo();
  await outbound.begin(db, note('evt:2'));

  const completing = outbound.complete(db, 'agent_o', 'evt:2', { status: 'sent', mid: 'mid_2' });
  // Asked before the note's writes have returned: the answer waits for them.
  const asked = outbound.sentHere('agent_o', 'mid_2');

  expect(await asked).toBe(true);
  await completing;
  expect(await outbound.find(db, 'agent_o', 'evt:2')).toMatchObject({ status: 'sent', mid: 'mid_2' });
});

test('when completing a note fails, then an echo that waited for it is not ours here (it is stored)', async () => {
  const outbound = new OutboundRepo();
  await outbound.begin(db, note('evt:3'));
  // A database name the server refuses (over 63 characters): every write to it fails, at once.
  const refused = await connectPlatform(testDbUri('x'.repeat(70)));
  const completing = outbound.complete(refused, 'agent_o', 'evt:3', { status: 'sent', mid: 'mid_3' });
  const asked = outbound.sentHere('agent_o', 'mid_3');

  await expect(completing).rejects.toThrow();
  expect(await asked).toBe(false);
  await refused.close();
});
