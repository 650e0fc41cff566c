import { parseWebhookPayload, type InboundEvent } from '../../src/inbound/inbound-event';
import {
  aDeletion,
  aMid,
  anAttachmentDm,
  anEcho,
  anEdit,
  anIgsid,
  anInstagramDm,
  aPostback,
  aReaction,
  aRead,
  aWebhookPayload,
} from '../factories/instagram';
import type { MessagingEvent } from '../../src/instagram/webhook.types';

const ACCOUNT = '17841400000000777';

function parse(...items: unknown[]): InboundEvent[] {
  const result = parseWebhookPayload(aWebhookPayload(ACCOUNT, items as MessagingEvent[]));
  if (!result.ok) throw new Error(result.reason);
  return result.events;
}

function one(item: unknown): InboundEvent {
  const events = parse(item);
  expect(events).toHaveLength(1);
  return events[0];
}

describe('parseWebhookPayload: kinds', () => {
  test('when a text DM arrives, then it is a message from the sender with its mid, text and time', () => {
    const dm = anInstagramDm({ accountId: ACCOUNT, text: 'Hello', timestamp: 1763712000123 });
    expect(one(dm)).toEqual({
      key: `message:${dm.message!.mid}`,
      kind: 'message',
      accountId: ACCOUNT,
      userId: dm.sender.id,
      timestamp: 1763712000123,
      mid: dm.message!.mid,
      text: 'Hello',
      attachments: [],
      raw: dm,
    });
  });

  test('when an echo arrives, then it is an echo whose user is the recipient', () => {
    const echo = anEcho({ accountId: ACCOUNT, text: 'Sure' });
    const event = one(echo);
    expect(event).toMatchObject({ kind: 'echo', key: `echo:${echo.message!.mid}`, text: 'Sure' });
    expect(event.userId).toBe(echo.recipient.id);
  });

  test('when an attachment DM arrives, then its attachments are kept as type and url, url only when sent', () => {
    const withUrl = one(anAttachmentDm('image', 'https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1'));
    expect(withUrl.attachments).toEqual([
      { type: 'image', url: 'https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1' },
    ]);
    expect(one(anAttachmentDm('ephemeral')).attachments).toEqual([{ type: 'ephemeral' }]);
    expect(one(anAttachmentDm('some_future_type', 'https://x.example/1')).attachments[0].type).toBe(
      'some_future_type',
    );
  });

  test('when a DM replies to a story or a message, then the story url and the replied mid are kept', () => {
    const replied = aMid();
    const dm = anInstagramDm({
      message: { reply_to: { mid: replied, story: { url: 'https://cdn.example/story', id: '42' } } },
    });
    expect(one(dm)).toMatchObject({
      kind: 'message',
      replyToMid: replied,
      storyUrl: 'https://cdn.example/story',
    });
  });

  test('when a story mention arrives, then the story url is the attachment url', () => {
    const event = one(anAttachmentDm('story_mention', 'https://cdn.example/mention'));
    expect(event.storyUrl).toBe('https://cdn.example/mention');
  });

  test('when a quick reply arrives without text, then its payload is the text', () => {
    const withText = one(anInstagramDm({ text: 'Yes please', message: { quick_reply: { payload: 'YES' } } }));
    expect(withText).toMatchObject({ text: 'Yes please', payload: 'YES' });
    const dm = anInstagramDm({ message: { quick_reply: { payload: 'YES' } } });
    delete dm.message!.text;
    expect(one(dm)).toMatchObject({ text: 'YES', payload: 'YES' });
  });

  test('when a postback arrives, then its title is the text and its payload is kept', () => {
    const pb = aPostback({ title: 'Opening hours?', payload: 'HOURS' });
    expect(one(pb)).toMatchObject({
      kind: 'postback',
      key: `postback:${pb.postback!.mid}`,
      text: 'Opening hours?',
      payload: 'HOURS',
    });
    const untitled = aPostback({ payload: 'HOURS' });
    delete untitled.postback!.title;
    expect(one(untitled).text).toBe('HOURS');
  });

  test('when a deletion, an unsupported message, a read, an edit and a reaction arrive, then each has its kind', () => {
    const mid = aMid();
    const user = anIgsid();
    const unsupported = anInstagramDm({ userId: user, message: { is_unsupported: true } });
    const [del, unsup, read, edit, reaction] = parse(
      aDeletion({ userId: user, mid }),
      unsupported,
      aRead({ userId: user, mid }),
      anEdit({ userId: user, mid, text: 'edited', numEdit: 2 }),
      aReaction({ userId: user, mid, reaction: 'love', timestamp: 1763712000000 }),
    );
    expect(del).toMatchObject({ kind: 'delete', key: `delete:${mid}`, mid, userId: user });
    expect(unsup).toMatchObject({ kind: 'unsupported', key: `unsupported:${unsupported.message!.mid}` });
    expect(read).toMatchObject({ kind: 'read', key: `read:${mid}:${user}`, mid });
    expect(edit).toMatchObject({ kind: 'edit', key: `edit:${mid}:2`, text: 'edited' });
    expect(reaction).toMatchObject({
      kind: 'reaction',
      key: `reaction:${mid}:react:love:${user}:1763712000000`,
    });
  });

  test('when a referral arrives, then it is a referral keyed by a hash of the item', () => {
    const item = {
      ...aRead(),
      read: undefined,
      referral: { ref: 'spring', source: 'SHORTLINKS', type: 'OPEN_THREAD' },
    };
    const event = one(item);
    expect(event.kind).toBe('referral');
    expect(event.key).toMatch(/^referral:[0-9a-f]{64}$/);
  });

  test('when an item has no timestamp, then entry.time is used', () => {
    const dm: Partial<MessagingEvent> = anInstagramDm();
    delete dm.timestamp;
    const body = aWebhookPayload(ACCOUNT, [{ time: 1763712000999, messaging: [dm as MessagingEvent] }]);
    const result = parseWebhookPayload(body);
    expect(result.ok && result.events[0].timestamp).toBe(1763712000999);
  });
});

describe('parseWebhookPayload: keys', () => {
  test('when the same events are delivered again (later entry.time, reordered keys), then the keys are the same', () => {
    const items = [
      anInstagramDm(),
      anEcho(),
      aPostback(),
      aReaction(),
      aRead(),
      anEdit(),
      aDeletion(),
      { ...aRead(), read: undefined, referral: { ref: 'r1', source: 'SHORTLINKS' } },
    ] as MessagingEvent[];
    const first = parseWebhookPayload(aWebhookPayload(ACCOUNT, [{ time: 1, messaging: items }]));
    const reordered = JSON.parse(JSON.stringify(items)).map((item: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(item).reverse()),
    );
    const again = parseWebhookPayload(aWebhookPayload(ACCOUNT, [{ time: 2, messaging: reordered }]));
    const keys = (r: typeof first): string[] => (r.ok ? r.events.map((e) => e.key) : []);
    expect(keys(first)).toHaveLength(8);
    expect(keys(again)).toEqual(keys(first));
  });

  test('when several kinds concern the same mid, then their keys are distinct', () => {
    const mid = aMid();
    const user = anIgsid();
    const events = parse(
      anInstagramDm({ userId: user, mid }),
      anEcho({ userId: user, mid }),
      aDeletion({ userId: user, mid }),
      aRead({ userId: user, mid }),
      anEdit({ userId: user, mid, numEdit: 1 }),
      anEdit({ userId: user, mid, numEdit: 2 }),
      aReaction({ userId: user, mid, timestamp: 1 }),
      aReaction({ userId: user, mid, action: 'unreact', timestamp: 2 }),
      aReaction({ userId: user, mid, timestamp: 3 }),
    );
    const keys = events.map((e) => e.key);
    expect(new Set(keys).size).toBe(9);
  });
});

describe('parseWebhookPayload: batches and bad input', () => {
  test('when one POST has 3 entries of 2 events each, then 6 events come out, each with its entry account', () => {
    const accounts = ['1001', '1002', '1003'];
    const body = aWebhookPayload(
      ACCOUNT,
      accounts.map((id) => ({ id, messaging: [anInstagramDm({ accountId: id }), aRead({ accountId: id })] })),
    );
    const result = parseWebhookPayload(body);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.events).toHaveLength(6);
    expect(result.events.map((e) => e.accountId)).toEqual(['1001', '1001', '1002', '1002', '1003', '1003']);
  });

  test('when items and entries are malformed, then they are skipped and their siblings survive', () => {
    const good1 = anInstagramDm({ text: 'first' });
    const good2 = anInstagramDm({ text: 'second' });
    const body = {
      object: 'instagram',
      entry: [
        null,
        { time: 1, messaging: [anInstagramDm()] }, // no id
        { id: ACCOUNT, messaging: 'nope' },
        { id: ACCOUNT, standby: [anInstagramDm()] }, // another app owns the thread
        { id: ACCOUNT, changes: [{ field: 'comments' }] },
        {
          id: ACCOUNT,
          time: 1,
          messaging: [
            42,
            null,
            good1,
            { sender: {}, recipient: { id: ACCOUNT }, message: { mid: 'm', text: 'x' } },
            { sender: { id: '1' }, recipient: { id: ACCOUNT }, timestamp: 1, optin: { ref: 'x' } },
            {
              ...anInstagramDm(),
              message: { mid: aMid(), attachments: [null, { url: 'x' }, { type: 'image' }] },
            },
            good2,
          ],
        },
      ],
    };
    const result = parseWebhookPayload(body);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.events.map((e) => e.text)).toEqual(['first', undefined, 'second']);
    expect(result.events[1].attachments).toEqual([{ type: 'image' }]);
    expect(result.skipped.map((s) => [s.entry, s.item])).toEqual([
      [0, undefined],
      [1, undefined],
      [2, undefined],
      [5, 0],
      [5, 1],
      [5, 3],
      [5, 4],
    ]);
  });

  test.each([
    ['a non-object body', 'hello'],
    ['null', null],
    ['an array', []],
    ['a page object', { object: 'page', entry: [] }],
    ['no entry array', { object: 'instagram', entry: {} }],
  ])('when the body is %s, then it is refused', (_name, body) => {
    expect(parseWebhookPayload(body)).toMatchObject({ ok: false, reason: expect.any(String) });
  });

  test('when the body has an empty entry array, then it is accepted with no events', () => {
    expect(parseWebhookPayload({ object: 'instagram', entry: [] })).toEqual({
      ok: true,
      events: [],
      skipped: [],
    });
  });
});
