/**
 * Meta's Instagram messaging webhook payload, as POSTed to `/webhook` (object "instagram").
 *
 * Envelope: https://developers.facebook.com/documentation/instagram-platform/webhooks/examples
 * Fields:   https://developers.facebook.com/documentation/business-messaging/instagram-messaging/webhooks
 * Research notes with confidence tags: docs/meta-api-notes.md §5.
 *
 * These types describe what Meta documents; they are not a guarantee. Parsing code must treat the body as
 * `unknown` and check every field (see src/inbound/inbound-event.ts).
 */

export interface InstagramWebhookPayload {
  object: 'instagram';
  entry: WebhookEntry[];
}

export interface WebhookEntry {
  /** The Instagram professional account (IGID) the events are for. */
  id: string;
  /** When Meta sent the notification (not when the event happened). */
  time: number;
  messaging?: MessagingEvent[];
  /**
   * Events for an app that is not the thread owner under the handover protocol. Same item shape as
   * `messaging`, but another app answers them; the connector does not act on them.
   */
  standby?: MessagingEvent[];
  /** Comments, mentions and other non-DM fields use `changes`; the connector ignores them. */
  changes?: unknown[];
}

/** One item of `entry[].messaging[]`: exactly one of the optional event bodies is present. */
export interface MessagingEvent {
  /** The IGSID of the visitor, or the business account for echoes. */
  sender: { id: string };
  /** The business account, or the visitor's IGSID for echoes. */
  recipient: { id: string };
  /** When the event happened, in ms. */
  timestamp: number;
  message?: WebhookMessage;
  postback?: WebhookPostback;
  read?: WebhookRead;
  reaction?: WebhookReaction;
  message_edit?: WebhookMessageEdit;
  referral?: WebhookReferral;
}

/**
 * Field `messages`. Echoes of the business's own messages arrive here too, with `is_echo: true`
 * (Instagram has no separate `message_echoes` field).
 * `is_deleted`, `is_unsupported`, `quick_reply` and `reply_to` are seen only in third-party copies of
 * the schema (https://support.huaweicloud.com/intl/en-us/api-cec/cec_07_0291.html).
 */
export interface WebhookMessage {
  mid: string;
  text?: string;
  /** Present when the visitor sends media, shares a post or reel, or mentions the account in a story. */
  attachments?: WebhookAttachment[];
  is_echo?: boolean;
  /** The visitor unsent the message `mid`. */
  is_deleted?: boolean;
  /** The visitor sent something the API cannot show (GIFs, stickers, …). */
  is_unsupported?: boolean;
  quick_reply?: { payload: string };
  reply_to?: { mid?: string; story?: { url: string; id: string } };
  referral?: WebhookReferral;
}

/**
 * Meta sends (at least) image, video, audio, file, share, ig_post, story_mention, ig_reel, reel, ephemeral
 * and unsupported_type; only the first four are confirmed in Meta's own text, so the type is kept open.
 * Post shares carry both `share` and `ig_post` since Nov 2025:
 * https://developers.facebook.com/docs/instagram-platform/webhooks/new
 */
export interface WebhookAttachment {
  type: AttachmentType;
  payload?: {
    /** A CDN URL such as https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=… (expires). */
    url?: string;
    title?: string;
    ig_post_media_id?: string;
    [key: string]: unknown;
  };
}

export type AttachmentType =
  | 'image'
  | 'video'
  | 'audio'
  | 'file'
  | 'share'
  | 'ig_post'
  | 'story_mention'
  | 'ig_reel'
  | 'reel'
  | 'ephemeral'
  | 'unsupported_type'
  // Any other string Meta adds later; `string & {}` keeps editor completion for the known ones.
  | (string & {});

/**
 * Field `messaging_postbacks`: an icebreaker or a template button was tapped. `mid` needs v11.0+.
 * https://developers.facebook.com/docs/messenger-platform/instagram/features/ig-me-links
 */
export interface WebhookPostback {
  mid?: string;
  /** The text of the button or icebreaker question, as the visitor saw it. */
  title?: string;
  /** The developer-defined payload of the button. */
  payload?: string;
  referral?: WebhookReferral;
}

/** Field `messaging_seen`: the visitor read the business's messages up to `mid`. */
export interface WebhookRead {
  mid: string;
}

/**
 * Field `message_reactions` (v12.0+): angry, sad, wow, love, like, laugh and others. No echo is sent for
 * the business's own reactions.
 */
export interface WebhookReaction {
  /** The message reacted to. */
  mid: string;
  action: 'react' | 'unreact';
  reaction?: string;
  emoji?: string;
}

/**
 * Field `message_edit`: at most 5 edits per message.
 * https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/message-edits
 */
export interface WebhookMessageEdit {
  mid: string;
  text?: string;
  num_edit?: number;
}

/**
 * Field `messaging_referral`: an ig.me link with `?ref=` was opened in an existing conversation, e.g.
 * `{ "ref": "...", "source": "SHORTLINKS", "type": "OPEN_THREAD" }`.
 */
export interface WebhookReferral {
  ref?: string;
  source?: string;
  type?: string;
  /** Instagram Shop: the product the visitor came from. */
  product?: { id?: string };
}
