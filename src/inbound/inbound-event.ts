import { createHash } from 'node:crypto';

/**
 * The normalised form of one Meta messaging event: what the webhook stores and the worker handles.
 * Field notes and payload shapes: src/instagram/webhook.types.ts and docs/meta-api-notes.md §5.
 */
export type InboundKind =
  'message' | 'echo' | 'postback' | 'reaction' | 'read' | 'edit' | 'delete' | 'referral' | 'unsupported';

export interface InboundAttachment {
  type: string;
  url?: string;
}

export interface InboundEvent {
  /** Unique per Meta event and the same on every redelivery of it: the inbox's unique key. */
  key: string;
  kind: InboundKind;
  /** `entry[].id`: the Instagram professional account. */
  accountId: string;
  /** The visitor's IGSID: `sender.id`, or `recipient.id` for echoes (the business is the sender). */
  userId: string;
  /** ms: `messaging[].timestamp`, else `entry.time`, else the time of parsing. */
  timestamp: number;
  mid?: string;
  /**
   * What the visitor said: `message.text`, else the quick reply's payload; for postbacks the button's
   * `title` (the words the visitor saw and tapped), else its `payload`; for edits the new text.
   */
  text?: string;
  /** The quick reply's or postback's developer-defined payload, when there is one. */
  payload?: string;
  attachments: InboundAttachment[];
  replyToMid?: string;
  /** The story replied to (`reply_to.story.url`), or the story the account was mentioned in. */
  storyUrl?: string;
  /** The messaging item as Meta sent it. */
  raw: unknown;
}

export interface SkippedItem {
  entry: number;
  item?: number;
  reason: string;
}

export type ParseResult =
  { ok: true; events: InboundEvent[]; skipped: SkippedItem[] } | { ok: false; reason: string };

type Obj = Record<string, unknown>;

/**
 * Turns a webhook body into events. Only the envelope can fail (the route answers 400); a malformed entry
 * or item is reported in `skipped` and never costs its siblings. Only `entry[].messaging` is read:
 * `standby` (another app owns the thread under the handover protocol) and `changes` (comments, mentions)
 * are not ours to answer. Items with an event body we do not know (optins, handover) are skipped too.
 */
export function parseWebhookPayload(body: unknown): ParseResult {
  if (!isObj(body)) return { ok: false, reason: 'body is not a JSON object' };
  if (body.object !== 'instagram') return { ok: false, reason: 'object is not "instagram"' };
  if (!Array.isArray(body.entry)) return { ok: false, reason: 'entry is not an array' };

  const events: InboundEvent[] = [];
  const skipped: SkippedItem[] = [];
  body.entry.forEach((entry: unknown, e) => {
    const accountId = isObj(entry) ? id(entry.id) : undefined;
    if (!isObj(entry) || !accountId) return skipped.push({ entry: e, reason: 'entry without id' });
    if (entry.messaging === undefined) return;
    if (!Array.isArray(entry.messaging))
      return skipped.push({ entry: e, reason: 'messaging is not an array' });
    entry.messaging.forEach((item: unknown, i) => {
      const parsed = parseItem(item, accountId, entry.time);
      if (typeof parsed === 'string') skipped.push({ entry: e, item: i, reason: parsed });
      else events.push(parsed);
    });
  });
  return { ok: true, events, skipped };
}

/** One messaging item → an event, or the reason it was skipped. Never throws on odd input. */
function parseItem(item: unknown, accountId: string, entryTime: unknown): InboundEvent | string {
  if (!isObj(item)) return 'item is not an object';
  const senderId = isObj(item.sender) ? id(item.sender.id) : undefined;
  const recipientId = isObj(item.recipient) ? id(item.recipient.id) : undefined;
  if (!senderId || !recipientId) return 'item without sender.id or recipient.id';

  const base = {
    accountId,
    userId: senderId,
    timestamp: millis(item.timestamp) ?? millis(entryTime) ?? Date.now(),
    attachments: [] as InboundAttachment[],
    raw: item,
  };
  const byMid = (kind: InboundKind, mid: string | undefined, ...parts: unknown[]): string =>
    mid ? [kind, mid, ...parts].join(':') : `${kind}:${sha256(canonicalJson(item))}`;

  if (isObj(item.message)) {
    const m = item.message;
    const mid = str(m.mid);
    const kind = messageKind(m);
    const replyTo = isObj(m.reply_to) ? m.reply_to : {};
    const attachments = Array.isArray(m.attachments) ? m.attachments.flatMap(attachment) : [];
    const quickReply = isObj(m.quick_reply) ? str(m.quick_reply.payload) : undefined;
    const storyUrl =
      (isObj(replyTo.story) ? str(replyTo.story.url) : undefined) ??
      attachments.find((a) => a.type === 'story_mention')?.url;
    return strip({
      ...base,
      key: byMid(kind, mid),
      kind,
      userId: m.is_echo === true ? recipientId : senderId,
      mid,
      text: str(m.text) ?? quickReply,
      payload: quickReply,
      attachments,
      replyToMid: str(replyTo.mid),
      storyUrl,
    });
  }
  if (isObj(item.postback)) {
    const p = item.postback;
    const mid = str(p.mid);
    const payload = str(p.payload);
    return strip({
      ...base,
      key: byMid('postback', mid),
      kind: 'postback',
      mid,
      text: str(p.title) ?? payload,
      payload,
    });
  }
  if (isObj(item.reaction)) {
    const r = item.reaction;
    const mid = str(r.mid);
    // Reacting, unreacting and reacting again to one message are distinct events; redeliveries repeat
    // the item's own timestamp (entry.time changes on each delivery, so it must not be part of the key).
    const key =
      millis(item.timestamp) === undefined
        ? byMid('reaction', undefined)
        : byMid(
            'reaction',
            mid,
            str(r.action) ?? '',
            str(r.reaction) ?? str(r.emoji) ?? '',
            senderId,
            item.timestamp,
          );
    return strip({ ...base, key, kind: 'reaction', mid });
  }
  if (isObj(item.read)) {
    const mid = str(item.read.mid);
    return strip({ ...base, key: byMid('read', mid, senderId), kind: 'read', mid });
  }
  if (isObj(item.message_edit)) {
    const ed = item.message_edit;
    const mid = str(ed.mid);
    const numEdit = typeof ed.num_edit === 'number' ? ed.num_edit : undefined;
    // Without num_edit two edits of one message would share a key; hash the item instead.
    const key = numEdit === undefined ? byMid('edit', undefined) : byMid('edit', mid, numEdit);
    return strip({ ...base, key, kind: 'edit', mid, text: str(ed.text) });
  }
  if (isObj(item.referral)) {
    return { ...base, key: byMid('referral', undefined), kind: 'referral' };
  }
  return 'item with no known event body';
}

/**
 * A deletion is a deletion whoever made it; an echo is never 'unsupported' (which would be sent to the
 * agent as if the visitor had written it).
 */
function messageKind(m: Obj): InboundKind {
  if (m.is_deleted === true) return 'delete';
  if (m.is_echo === true) return 'echo';
  if (m.is_unsupported === true) return 'unsupported';
  return 'message';
}

function attachment(a: unknown): InboundAttachment[] {
  if (!isObj(a) || !str(a.type)) return [];
  const url = isObj(a.payload) ? str(a.payload.url) : undefined;
  return [url ? { type: a.type as string, url } : { type: a.type as string }];
}

/** JSON with object keys sorted at every level, so equal items hash equally whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObj(value)) {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Ids are strings in Meta's JSON; a number is accepted and kept as its decimal string. */
function id(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v);
  return str(v);
}

/** Meta's timestamps are ms; a value that can only be seconds (before 2001 as ms) is converted. */
function millis(v: unknown): number | undefined {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return undefined;
  return v < 1e12 ? Math.round(v * 1000) : Math.round(v);
}

/** Drops undefined optional fields so stored documents carry no `null`s. */
function strip(event: InboundEvent): InboundEvent {
  // A copy, not `delete`: an object that lost properties turns into a slow dictionary for V8.
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(event)) if (v !== undefined) out[k] = v;
  return out as unknown as InboundEvent;
}
