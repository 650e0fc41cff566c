/** The Graph client's vocabulary: token flavours, webhook fields, what goes in and comes out. */
export type TokenKind = 'instagram' | 'page';

/** Instagram-Login tokens start with `IG` (`IGAA…`, `IGQV…`); Page tokens with `EAA…`. Not stated by Meta. */
export function tokenKindOf(token: string): TokenKind {
  return token.startsWith('IG') ? 'instagram' : 'page';
}

/**
 * Fields for the Page subscribed_apps edge (Facebook Login). That edge takes the Page's field names, which
 * are Messenger's (`messaging_referrals`, `message_reads`), and only fields subscribed at both the Page and
 * the app level are delivered; Instagram events then arrive under the app's Instagram-object fields
 * (`messages`, `messaging_postbacks`, `messaging_seen`, `message_reactions`, `messaging_referral`).
 * https://developers.facebook.com/docs/graph-api/reference/page/subscribed_apps/
 * https://developers.facebook.com/documentation/business-messaging/instagram-messaging/webhooks
 * Not verified against a live Page: the quick start tells admins how to check the subscription.
 */
export const PAGE_WEBHOOK_FIELDS = [
  'messages',
  'messaging_postbacks',
  'message_reactions',
  'messaging_referrals',
  'message_reads',
] as const;

/**
 * Instagram-Login field names (`POST /me/subscribed_apps` on graph.instagram.com); note the singular
 * `message_edit` and `messaging_seen` for reads.
 * https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/webhooks
 */
export const INSTAGRAM_WEBHOOK_FIELDS = [
  'messages',
  'messaging_postbacks',
  'messaging_seen',
  'message_reactions',
  'messaging_referral',
  'message_edit',
] as const;

export interface GraphAccount {
  instagramAccountId: string;
  username: string;
  name?: string;
  profilePictureUrl?: string;
}

export type AttachmentType = 'image' | 'video' | 'audio' | 'file';
export type OutgoingMessage = { text: string } | { attachment: { type: AttachmentType; url: string } };

export interface SentMessage {
  messageId: string;
  recipientId: string;
}

export interface GraphUserProfile {
  username?: string;
  name?: string;
  profilePic?: string;
}
