import type { InboundAttachment, InboundEvent } from './inbound-event';

/**
 * What the Retell agent is asked with for one inbound event, or undefined when the event is never sent to
 * the agent (echoes, reads, reactions, edits, deletions, referrals without text, empty messages).
 * Retell chat completions take text only, so media is described in short English brackets with its URL,
 * which lets the agent mention it and a human open it. Meta's CDN URLs expire after a while.
 */
export function textForAgent(event: InboundEvent): string | undefined {
  switch (event.kind) {
    case 'message':
    case 'unsupported':
      return describeMessage(event);
    case 'postback':
    case 'referral':
      return nonEmpty(event.text);
    default:
      return undefined;
  }
}

/** One attachment as a short bracketed sentence, e.g. `[The user sent an image: https://…]`. */
export function describeAttachment(attachment: InboundAttachment): string {
  const { type, url } = attachment;
  const withUrl = (what: string): string => (url ? `[${what}: ${url}]` : `[${what}]`);
  switch (type) {
    case 'image':
      return withUrl('The user sent an image');
    case 'video':
      return withUrl('The user sent a video');
    case 'audio':
      return withUrl('The user sent an audio message');
    case 'file':
      return withUrl('The user sent a file');
    case 'share':
    case 'ig_post':
      return withUrl('The user shared a post');
    case 'ig_reel':
    case 'reel':
      return withUrl('The user shared a reel');
    case 'story_mention':
      return withUrl('The user mentioned you in their story');
    case 'ephemeral':
      return '[The user sent a disappearing (view-once) photo or video, which cannot be viewed]';
    case 'unsupported_type':
      return UNSUPPORTED;
    default:
      return withUrl(`The user sent an attachment (${type})`);
  }
}

const UNSUPPORTED = '[The user sent a message Instagram does not support showing]';

function describeMessage(event: InboundEvent): string | undefined {
  const lines: string[] = [];
  const text = nonEmpty(event.text);
  const isMention = event.attachments.some((a) => a.type === 'story_mention');
  // storyUrl is also set for mentions, which their attachment already describes.
  const storyReply =
    event.storyUrl && !isMention ? `[The user replied to your story (${event.storyUrl})]` : '';
  const quickReply =
    text && event.payload && event.payload !== event.text ? ` [quick reply: ${event.payload}]` : '';
  if (storyReply || text) lines.push(`${[storyReply, text].filter(Boolean).join(' ')}${quickReply}`);

  // Since Nov 2025 a shared post comes as both `share` and `ig_post`: describe it once.
  const hasIgPost = event.attachments.some((a) => a.type === 'ig_post');
  for (const a of event.attachments) {
    if (hasIgPost && a.type === 'share') continue;
    const line = describeAttachment(a);
    if (!lines.includes(line)) lines.push(line);
  }
  if (event.kind === 'unsupported' && !lines.includes(UNSUPPORTED)) lines.push(UNSUPPORTED);
  return lines.length > 0 ? lines.join('\n') : undefined;
}

function nonEmpty(text: string | undefined): string | undefined {
  return text !== undefined && text.trim() !== '' ? text : undefined;
}
