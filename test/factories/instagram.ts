import { randomBytes, randomInt } from 'node:crypto';
import type {
  InstagramWebhookPayload,
  MessagingEvent,
  WebhookEntry,
  WebhookMessage,
  WebhookPostback,
  WebhookReaction,
} from '../../src/instagram/webhook.types';

/**
 * Meta's Instagram webhook payloads, built the way Meta documents them (docs/meta-api-notes.md §5).
 * Every messaging factory returns ONE `entry[].messaging[]` item; wrap items with `aWebhookPayload`.
 * Defaults: a fresh visitor IGSID, the account `DEFAULT_ACCOUNT_ID`, now as the timestamp, a unique mid.
 */

export const DEFAULT_ACCOUNT_ID = '17841400000000001';

let counter = 0;
const unique = (): string => `${(++counter).toString(36)}${randomBytes(6).toString('hex')}`;

/** A unique message id shaped like Meta's (base64-ish, starting `aWdf`). */
export function aMid(): string {
  return `aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlE${unique()}`;
}

/** A unique Instagram-scoped user id (IGSID): a numeric string. */
export function anIgsid(): string {
  return `${randomInt(1e11, 1e12)}${String(++counter % 10000).padStart(4, '0')}`;
}

interface Common {
  /** The visitor's IGSID (the sender, or the recipient of an echo). */
  userId?: string;
  /** The business's Instagram account (the recipient, or the sender of an echo). */
  accountId?: string;
  timestamp?: number;
}

function inbound(o: Common): Pick<MessagingEvent, 'sender' | 'recipient' | 'timestamp'> {
  return {
    sender: { id: o.userId ?? anIgsid() },
    recipient: { id: o.accountId ?? DEFAULT_ACCOUNT_ID },
    timestamp: o.timestamp ?? Date.now(),
  };
}

/** A visitor's text DM. */
export function anInstagramDm(
  o: Common & { mid?: string; text?: string; message?: Partial<WebhookMessage> } = {},
): MessagingEvent {
  return {
    ...inbound(o),
    message: { mid: o.mid ?? aMid(), text: o.text ?? 'Hi! Do you ship to Canada?', ...o.message },
  };
}

/** The echo of a message the business sent (from the API or typed in the Instagram app). */
export function anEcho(
  o: Common & { mid?: string; text?: string; message?: Partial<WebhookMessage> } = {},
): MessagingEvent {
  const userId = o.userId ?? anIgsid();
  return {
    sender: { id: o.accountId ?? DEFAULT_ACCOUNT_ID },
    recipient: { id: userId },
    timestamp: o.timestamp ?? Date.now(),
    message: { mid: o.mid ?? aMid(), text: o.text ?? 'Yes, we do!', is_echo: true, ...o.message },
  };
}

/** A DM with one attachment; `url` omitted for kinds Meta sends without one (e.g. ephemeral). */
export function anAttachmentDm(
  type: string,
  url?: string,
  o: Common & { mid?: string; text?: string; message?: Partial<WebhookMessage> } = {},
): MessagingEvent {
  const attachment = url === undefined ? { type } : { type, payload: { url } };
  const message: WebhookMessage = { mid: o.mid ?? aMid(), attachments: [attachment], ...o.message };
  if (o.text !== undefined) message.text = o.text;
  return { ...inbound(o), message };
}

/** An icebreaker or button tap. */
export function aPostback(o: Common & Partial<WebhookPostback> = {}): MessagingEvent {
  const { mid, title, payload, referral } = o;
  return {
    ...inbound(o),
    postback: {
      mid: mid ?? aMid(),
      title: title ?? 'What are your opening hours?',
      payload: payload ?? 'OPENING_HOURS',
      ...(referral ? { referral } : {}),
    },
  };
}

/** A reaction to (or its removal from) the message `mid`. */
export function aReaction(o: Common & Partial<WebhookReaction> = {}): MessagingEvent {
  const action = o.action ?? 'react';
  const reaction: WebhookReaction = { mid: o.mid ?? aMid(), action };
  if (action === 'react') Object.assign(reaction, { reaction: o.reaction ?? 'love', emoji: o.emoji ?? '❤️' });
  return { ...inbound(o), reaction };
}

/** The visitor read the business's messages up to `mid`. */
export function aRead(o: Common & { mid?: string } = {}): MessagingEvent {
  return { ...inbound(o), read: { mid: o.mid ?? aMid() } };
}

/** The visitor unsent the message `mid`. */
export function aDeletion(o: Common & { mid?: string } = {}): MessagingEvent {
  return { ...inbound(o), message: { mid: o.mid ?? aMid(), is_deleted: true } };
}

/** The visitor edited the message `mid`. */
export function anEdit(o: Common & { mid?: string; text?: string; numEdit?: number } = {}): MessagingEvent {
  return {
    ...inbound(o),
    message_edit: {
      mid: o.mid ?? aMid(),
      text: o.text ?? 'Hi! Do you ship to the US?',
      num_edit: o.numEdit ?? 1,
    },
  };
}

export interface EntrySpec {
  id?: string;
  time?: number;
  messaging: MessagingEvent[];
}

/**
 * `{ object: 'instagram', entry: [...] }`. Given items: one entry for `accountId`. Given entries: one
 * entry each, `id` defaulting to `accountId`. Items are used as they are (build them with the same
 * `accountId` when it matters).
 */
export function aWebhookPayload(
  accountId: string = DEFAULT_ACCOUNT_ID,
  itemsOrEntries: MessagingEvent[] | EntrySpec[] = [],
): InstagramWebhookPayload {
  const isEntries = itemsOrEntries.length > 0 && 'messaging' in itemsOrEntries[0];
  const specs: EntrySpec[] = isEntries
    ? (itemsOrEntries as EntrySpec[])
    : [{ messaging: itemsOrEntries as MessagingEvent[] }];
  const entry: WebhookEntry[] = specs.map((s) => ({
    id: s.id ?? accountId,
    time: s.time ?? Date.now(),
    messaging: s.messaging,
  }));
  return { object: 'instagram', entry };
}

/** The `X-Hub-Signature-256` header value for a raw body (Meta's side of a delivery, shared with the demo). */
export { signPayload } from '../../src/simulators/meta-webhook';
