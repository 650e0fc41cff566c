import { retryAfterFrom, toInt, type HeaderBag } from './graph.headers';

export { retryAfterFrom, type HeaderBag };

/**
 * Meta Graph API failures, translated once into a `GraphError` that says what to do about them.
 *
 * Error body: `{ error: { message, type, code, error_subcode, fbtrace_id } }`
 *   https://developers.facebook.com/docs/graph-api/guides/error-handling
 * Messenger/Instagram messaging codes (1/1357046 "sent anyway", 2, 4, 190):
 *   https://developers.facebook.com/documentation/business-messaging/messenger-platform/error-codes
 * Send API codes (1200 temporary send failure, 613, 100/2018001, 10 outside the window):
 *   https://developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes
 * Throttling codes 4 / 17 / 32 / 613, X-App-Usage and X-Business-Use-Case-Usage headers:
 *   https://developers.facebook.com/docs/graph-api/overview/rate-limiting/
 * `is_transient` in Instagram error bodies:
 *   https://developers.facebook.com/documentation/instagram-platform/instagram-graph-api/reference/error-codes
 */
export type GraphErrorKind =
  | 'transient'
  | 'rate_limit'
  | 'invalid_token'
  | 'permission'
  | 'window_closed'
  | 'user_unavailable'
  | 'bad_request'
  | 'unreachable'
  | 'other';

export interface GraphErrorInit {
  kind: GraphErrorKind;
  metaMessage: string;
  mayHaveBeenSent: boolean;
  status?: number;
  code?: number;
  subcode?: number;
  type?: string;
  fbtraceId?: string;
  retryAfterMs?: number;
}

/** What callers see of any Graph failure; it never carries the token, the request or an AxiosError. */
export class GraphError extends Error {
  readonly kind: GraphErrorKind;
  readonly metaMessage: string;
  /** The request may have reached Meta and the message been delivered: reconcile, never resend blindly. */
  readonly mayHaveBeenSent: boolean;
  readonly status?: number;
  readonly code?: number;
  readonly subcode?: number;
  readonly type?: string;
  readonly fbtraceId?: string;
  readonly retryAfterMs?: number;

  constructor(init: GraphErrorInit) {
    const codes = [init.code, init.subcode].filter((c) => c !== undefined).join('/');
    super(
      `Graph API ${init.kind}: ${init.metaMessage}` +
        (codes ? ` (#${codes})` : '') +
        (init.status !== undefined ? ` [HTTP ${init.status}]` : ''),
    );
    this.name = 'GraphError';
    this.kind = init.kind;
    this.metaMessage = init.metaMessage;
    this.mayHaveBeenSent = init.mayHaveBeenSent;
    if (init.status !== undefined) this.status = init.status;
    if (init.code !== undefined) this.code = init.code;
    if (init.subcode !== undefined) this.subcode = init.subcode;
    if (init.type !== undefined) this.type = init.type;
    if (init.fbtraceId !== undefined) this.fbtraceId = init.fbtraceId;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
  }

  /** Worth another attempt later (by a non-send call, or a send that certainly did not deliver). */
  get retryable(): boolean {
    return this.kind === 'transient' || this.kind === 'rate_limit' || this.kind === 'unreachable';
  }
}

export interface GraphFailure {
  status?: number;
  body?: unknown;
  headers?: HeaderBag;
  /** Node/axios error code when no HTTP answer came back (ECONNREFUSED, ENOTFOUND, ECONNABORTED, …). */
  networkCode?: string;
}

/** Failures before a connection existed: the request certainly never reached Meta. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
/** Code 1: unknown, code 2: service, 1200: "Temporary send message failure" (Send API error page). */
const TRANSIENT_CODES = new Set([1, 2, 1200]);
/** 4 app, 17 account, 32 page, 613 custom throttling (rate-limiting page). */
const RATE_LIMIT_CODES = new Set([4, 17, 32, 613]);
/** Outside the messaging window: 2534022 Instagram, 2018278 Messenger (Send API error page, code 10). */
const WINDOW_SUBCODES = new Set([2534022, 2018278]);

export function classifyGraphError(input: GraphFailure): GraphError {
  const { status, networkCode } = input;
  const retryAfterMs = retryAfterFrom(input.headers);
  const e = graphErrorBody(input.body);

  if (status === undefined && networkCode !== undefined) {
    const refused = NOT_CONNECTED.has(networkCode);
    return new GraphError({
      kind: refused ? 'unreachable' : 'transient',
      metaMessage: refused
        ? `Graph API unreachable (${networkCode})`
        : `Graph API network error (${networkCode})`,
      // A timeout or reset after the request was written may still have delivered the message.
      mayHaveBeenSent: !refused,
    });
  }

  const kind = kindOf(status, e?.code, e?.subcode, e?.isTransient);
  const refusedByMeta = kind !== 'transient' && kind !== 'other';
  return new GraphError({
    kind,
    metaMessage: e?.message ?? (status !== undefined ? `HTTP ${status}` : 'Unexpected Graph API answer'),
    // Codes 1 and 2 (1/1357046 "messages are all sent successfully") and any 5xx may have delivered.
    mayHaveBeenSent: !refusedByMeta && (kind === 'transient' || status === undefined || status < 400),
    status,
    code: e?.code,
    subcode: e?.subcode,
    type: e?.type,
    fbtraceId: e?.fbtraceId,
    retryAfterMs: kind === 'rate_limit' || kind === 'transient' ? retryAfterMs : undefined,
  });
}

function kindOf(status?: number, code?: number, subcode?: number, isTransient?: boolean): GraphErrorKind {
  if (code !== undefined) {
    // 1/99 "An unknown error occurred": missing permissions (Advanced Access, Business Verification), per
    // https://developers.facebook.com/docs/messenger-platform/error-codes; it lasts, so never retried.
    if (code === 1 && subcode === 99) return 'permission';
    if (TRANSIENT_CODES.has(code)) return 'transient';
    // 80000–80014: Business Use Case throttling (80002 Instagram, 80001 Pages, 80006 Messenger), from the
    // rate-limiting page's BUC table; recalled, not in the stored excerpts.
    if (RATE_LIMIT_CODES.has(code) || (code >= 80000 && code <= 80014)) return 'rate_limit';
    if (code === 190 || code === 102) return 'invalid_token';
    if (code === 10 && subcode !== undefined && WINDOW_SUBCODES.has(subcode)) return 'window_closed';
    // 3: "capability" (error-handling page); 10 and 200–299: permission denied.
    if (code === 3 || code === 10 || (code >= 200 && code <= 299)) return 'permission';
    // "This person isn't available right now": blocked, messages off or deactivated; never retry.
    if (code === 551) return 'user_unavailable';
    if (code === 100) return 'bad_request';
    if (isTransient === true) return 'transient';
  }
  if (status === undefined) return 'other';
  if (status >= 500) return 'transient';
  if (status === 429) return 'rate_limit';
  return 'other';
}

interface ParsedGraphError {
  message?: string;
  type?: string;
  code?: number;
  subcode?: number;
  fbtraceId?: string;
  isTransient?: boolean;
}

function graphErrorBody(body: unknown): ParsedGraphError | undefined {
  const err = (body as { error?: unknown } | null | undefined)?.error;
  if (!err || typeof err !== 'object') return undefined;
  const r = err as Record<string, unknown>;
  return {
    message: typeof r.message === 'string' ? r.message : undefined,
    type: typeof r.type === 'string' ? r.type : undefined,
    code: toInt(r.code),
    subcode: toInt(r.error_subcode),
    fbtraceId: typeof r.fbtrace_id === 'string' ? r.fbtrace_id : undefined,
    isTransient: typeof r.is_transient === 'boolean' ? r.is_transient : undefined,
  };
}
