import { createHmac, randomBytes } from 'node:crypto';
import type {
  InstagramWebhookPayload,
  MessagingEvent,
  WebhookAttachment,
  WebhookMessage,
} from '../instagram/webhook.types';
import type { SentMessageRecord } from './graph.simulator';

/**
 * Meta's side of a webhook delivery: the `{ object: 'instagram', entry: [...] }` envelope and the
 * `X-Hub-Signature-256` header over the exact bytes sent.
 * https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads
 */

/** The `X-Hub-Signature-256` header value for a raw body: `sha256=` + lowercase hex HMAC-SHA256. */
export function signPayload(rawBody: string | Buffer, appSecret: string): string {
  return `sha256=${createHmac('sha256', appSecret).update(rawBody).digest('hex')}`;
}

/** A message id shaped like Meta's: base64 of `ig_item:…`, hence the familiar `aWdf…` prefix. */
export function simulatedMid(accountId: string, seq = ''): string {
  const item = `ig_item:1:IGMessageID:${accountId}:${seq}${randomBytes(6).toString('hex')}`;
  return Buffer.from(item).toString('base64url');
}

/** POSTs these messaging items for `accountId` to a webhook URL, signed like Meta does; returns the status. */
export async function postWebhook(
  url: string,
  accountId: string,
  items: MessagingEvent[],
  appSecret: string | undefined,
): Promise<number> {
  const payload: InstagramWebhookPayload = {
    object: 'instagram',
    entry: [{ id: accountId, time: Date.now(), messaging: items }],
  };
  const raw = JSON.stringify(payload);
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (appSecret) headers['X-Hub-Signature-256'] = signPayload(raw, appSecret);
  const res = await fetch(url, { method: 'POST', headers, body: raw, signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  return res.status;
}

type SentAttachment = { type?: string; payload?: { url?: string } } | undefined;

/**
 * Instagram's echo of a message the account sent through the Send API: `is_echo`, the same `mid`, sender
 * and recipient swapped. https://developers.facebook.com/documentation/business-messaging/instagram-messaging/webhooks
 */
export function echoOf(sent: SentMessageRecord): MessagingEvent {
  const message: WebhookMessage = { mid: sent.messageId, is_echo: true };
  const att = sent.message.attachment as SentAttachment;
  if (typeof sent.message.text === 'string') message.text = sent.message.text;
  else if (att?.type) {
    message.attachments = [
      { type: att.type as WebhookAttachment['type'], payload: { url: att.payload?.url } },
    ];
  }
  return {
    sender: { id: sent.accountId },
    recipient: { id: sent.recipientId },
    timestamp: sent.timestamp,
    message,
  };
}

/** A sent message as one line: its text, or `[image] https://…`. */
export function describeSent(sent: SentMessageRecord): string {
  if (typeof sent.message.text === 'string') return sent.message.text;
  const att = sent.message.attachment as SentAttachment;
  return `[${att?.type ?? 'attachment'}] ${att?.payload?.url ?? ''}`.trim();
}
