import { describeAttachment, textForAgent } from '../../src/inbound/describe-for-agent';
import { parseWebhookPayload, type InboundEvent } from '../../src/inbound/inbound-event';
import type { MessagingEvent } from '../../src/instagram/webhook.types';
import {
  aDeletion,
  anAttachmentDm,
  anEcho,
  anEdit,
  anInstagramDm,
  aPostback,
  aReaction,
  aRead,
  aWebhookPayload,
} from '../factories/instagram';

const URL = 'https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=123';

function eventOf(item: MessagingEvent): InboundEvent {
  const result = parseWebhookPayload(aWebhookPayload(undefined, [item]));
  if (!result.ok || result.events.length !== 1) throw new Error('expected one event');
  return result.events[0];
}

const agentText = (item: MessagingEvent): string | undefined => textForAgent(eventOf(item));

test('when a text DM arrives, then the agent is asked with the text as is', () => {
  expect(agentText(anInstagramDm({ text: '  Hi there 👋  ' }))).toBe('  Hi there 👋  ');
});

test.each([
  ['image', `[The user sent an image: ${URL}]`],
  ['video', `[The user sent a video: ${URL}]`],
  ['audio', `[The user sent an audio message: ${URL}]`],
  ['file', `[The user sent a file: ${URL}]`],
  ['share', `[The user shared a post: ${URL}]`],
  ['ig_post', `[The user shared a post: ${URL}]`],
  ['ig_reel', `[The user shared a reel: ${URL}]`],
  ['reel', `[The user shared a reel: ${URL}]`],
  ['story_mention', `[The user mentioned you in their story: ${URL}]`],
  ['something_new', `[The user sent an attachment (something_new): ${URL}]`],
])('when a %s attachment arrives, then it is described with its url', (type, expected) => {
  expect(agentText(anAttachmentDm(type, URL))).toBe(expected);
});

test('when an attachment has no url, then it is described without one', () => {
  expect(describeAttachment({ type: 'image' })).toBe('[The user sent an image]');
});

test('when an ephemeral or unsupported attachment arrives, then the agent is told it cannot be viewed', () => {
  expect(agentText(anAttachmentDm('ephemeral'))).toBe(
    '[The user sent a disappearing (view-once) photo or video, which cannot be viewed]',
  );
  expect(agentText(anAttachmentDm('unsupported_type'))).toBe(
    '[The user sent a message Instagram does not support showing]',
  );
});

test('when a message is flagged unsupported, then the agent is told Instagram cannot show it', () => {
  const dm = anInstagramDm({ message: { is_unsupported: true } });
  delete dm.message!.text;
  expect(agentText(dm)).toBe('[The user sent a message Instagram does not support showing]');
});

test('when text comes with attachments, then the text comes first and each attachment follows on its own line', () => {
  const dm = anInstagramDm({
    text: 'Do you have this in red?',
    message: {
      attachments: [
        { type: 'image', payload: { url: `${URL}1` } },
        { type: 'image', payload: { url: `${URL}2` } },
      ],
    },
  });
  expect(agentText(dm)).toBe(
    `Do you have this in red?\n[The user sent an image: ${URL}1]\n[The user sent an image: ${URL}2]`,
  );
});

test('when a post is shared as both share and ig_post, then it is described once', () => {
  const dm = anAttachmentDm('share', URL, {
    message: {
      attachments: [
        { type: 'share', payload: { url: URL, ig_post_media_id: '1' } },
        { type: 'ig_post', payload: { url: URL, ig_post_media_id: '1' } },
      ],
    },
  });
  expect(agentText(dm)).toBe(`[The user shared a post: ${URL}]`);
});

test('when a DM replies to a story, then the story is named before the text', () => {
  const dm = anInstagramDm({
    text: 'Love this!',
    message: { reply_to: { story: { url: URL, id: '17900000000000000' } } },
  });
  expect(agentText(dm)).toBe(`[The user replied to your story (${URL})] Love this!`);
});

test('when a postback arrives, then its title is the user text, else its payload', () => {
  expect(agentText(aPostback({ title: 'What are your opening hours?', payload: 'HOURS' }))).toBe(
    'What are your opening hours?',
  );
  const untitled = aPostback({ payload: 'GET_STARTED' });
  delete untitled.postback!.title;
  expect(agentText(untitled)).toBe('GET_STARTED');
});

test('when a quick reply is tapped, then the text is sent with the payload in brackets if it differs', () => {
  expect(agentText(anInstagramDm({ text: 'Yes please', message: { quick_reply: { payload: 'YES' } } }))).toBe(
    'Yes please [quick reply: YES]',
  );
  expect(agentText(anInstagramDm({ text: 'YES', message: { quick_reply: { payload: 'YES' } } }))).toBe('YES');
});

test.each([
  ['an echo', anEcho()],
  ['a read', aRead()],
  ['a reaction', aReaction()],
  ['an edit', anEdit()],
  ['a deletion', aDeletion()],
])('when %s arrives, then nothing is sent to the agent', (_name, item) => {
  expect(agentText(item)).toBeUndefined();
});

test('when a referral without text or an empty message arrives, then nothing is sent to the agent', () => {
  const referral = { ...aRead(), read: undefined, referral: { ref: 'spring', source: 'SHORTLINKS' } };
  expect(agentText(referral as MessagingEvent)).toBeUndefined();
  expect(agentText(anInstagramDm({ text: '   ' }))).toBeUndefined();
});
