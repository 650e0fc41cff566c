import axios, { type AxiosInstance } from 'axios';
import { classifyGraphError, GraphError, type HeaderBag } from './graph.errors';
import { DEFAULT_RETRY, realSleep, withRetry, type RetryOptions, type Sleep } from './graph.retry';
import {
  INSTAGRAM_WEBHOOK_FIELDS,
  PAGE_WEBHOOK_FIELDS,
  tokenKindOf,
  type GraphAccount,
  type GraphUserProfile,
  type OutgoingMessage,
  type SentMessage,
  type TokenKind,
} from './graph.types';

export * from './graph.types';

export interface GraphClientOptions {
  metaGraphUrl: string;
  instagramGraphUrl: string;
  version: string;
  timeoutMs?: number;
  retry?: Partial<RetryOptions>;
  /** How retries wait; tests pass one that records the waits instead of taking them. */
  sleep?: Sleep;
}

interface CallSpec {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  params?: Record<string, string>;
  data?: unknown;
  /** A send: never retried once it may have reached Meta. */
  send?: boolean;
}

type Body = Record<string, unknown>;

/**
 * The one place that talks to Meta's Graph API. Two flavours of token, two hosts:
 * - Instagram Login ("Business Login for Instagram") user tokens → graph.instagram.com
 *   https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/messaging-api/
 * - Facebook Login Page tokens (Messenger API for Instagram) → graph.facebook.com
 *   https://developers.facebook.com/documentation/business-messaging/instagram-messaging/features/send-message
 * The token travels as `Authorization: Bearer`, as in Meta's Postman collection
 * (https://github.com/fbsamples/messenger-platform-samples/blob/b5a1fbf3bbe82ac1db259e437634c1d897eb133d/postman/instagram-platform-api.postman_collection.json),
 * never in a URL; failures are `GraphError`s, which never carry it.
 */
export class GraphClient {
  private readonly http: Record<TokenKind, AxiosInstance>;
  private readonly retry: RetryOptions;
  private readonly sleep: Sleep;

  constructor(private readonly opts: GraphClientOptions) {
    const make = (baseURL: string): AxiosInstance =>
      axios.create({
        baseURL: baseURL.replace(/\/+$/, ''),
        timeout: opts.timeoutMs ?? 10_000,
        maxRedirects: 0,
        validateStatus: () => true, // every status is classified below, not thrown by axios
      });
    this.http = { page: make(opts.metaGraphUrl), instagram: make(opts.instagramGraphUrl) };
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.sleep = opts.sleep ?? realSleep;
  }

  /**
   * Page tokens read the IG user node (https://developers.facebook.com/docs/instagram-api/reference/ig-user);
   * Instagram-Login tokens read `/me`, whose `user_id` (not the app-scoped `id`) is the professional account
   * id that webhooks carry in `entry[].id`
   * (https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/get-started).
   */
  async getAccount(token: string, instagramAccountId?: string): Promise<GraphAccount> {
    const igLogin = tokenKindOf(token) === 'instagram';
    if (!igLogin && !instagramAccountId) {
      throw new GraphError({
        kind: 'bad_request',
        metaMessage: 'instagramAccountId is required with a Page access token',
        mayHaveBeenSent: false,
      });
    }
    const body = igLogin
      ? await this.call(token, {
          method: 'GET',
          path: 'me',
          params: { fields: 'user_id,username,name,profile_picture_url' },
        })
      : await this.call(token, {
          method: 'GET',
          path: seg(instagramAccountId as string),
          params: { fields: 'id,username,name,profile_picture_url' },
        });
    const id = igLogin ? body.user_id : body.id;
    if ((typeof id !== 'string' && typeof id !== 'number') || typeof body.username !== 'string') {
      throw unexpected(`account without ${igLogin ? 'user_id' : 'id'} or username`, false);
    }
    return {
      instagramAccountId: String(id),
      username: body.username,
      name: str(body.name),
      profilePictureUrl: str(body.profile_picture_url),
    };
  }

  /**
   * Page: `POST /{page-id}/subscribed_apps?subscribed_fields=…` answering `{ success: true }`
   * (https://developers.facebook.com/docs/graph-api/webhooks/getting-started/webhooks-for-instagram/).
   * Instagram Login: `POST /me/subscribed_apps` on graph.instagram.com
   * (https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/webhooks).
   */
  async subscribeWebhooks(token: string, pageId?: string): Promise<void> {
    const fields = tokenKindOf(token) === 'instagram' ? INSTAGRAM_WEBHOOK_FIELDS : PAGE_WEBHOOK_FIELDS;
    await this.expectSuccess(token, 'POST', pageId, { subscribed_fields: fields.join(',') });
  }

  /** DELETE on the same edge (https://developers.facebook.com/docs/graph-api/reference/page/subscribed_apps/). */
  async unsubscribeWebhooks(token: string, pageId?: string): Promise<void> {
    await this.expectSuccess(token, 'DELETE', pageId);
  }

  /**
   * `POST /me/messages` with `{ recipient: { id }, message }`, answering `{ recipient_id, message_id }`.
   * Outside the 24-hour window a human agent must tag the message HUMAN_AGENT
   * (https://developers.secure.facebook.com/docs/messenger-platform/instagram/features/send-message).
   * Never retried once the request may have reached Meta: the caller reconciles such failures with echoes.
   */
  async sendMessage(
    token: string,
    recipientId: string,
    message: OutgoingMessage,
    opts?: { tag?: 'HUMAN_AGENT' },
  ): Promise<SentMessage> {
    const payload =
      'text' in message
        ? { text: message.text }
        : { attachment: { type: message.attachment.type, payload: { url: message.attachment.url } } };
    const data = {
      recipient: { id: recipientId },
      message: payload,
      ...(opts?.tag ? { messaging_type: 'MESSAGE_TAG', tag: opts.tag } : {}),
    };
    const body = await this.call(token, { method: 'POST', path: 'me/messages', data, send: true });
    if (typeof body.message_id !== 'string') throw unexpected('send answer without message_id', true);
    return { messageId: body.message_id, recipientId: str(body.recipient_id) ?? recipientId };
  }

  /** https://developers.facebook.com/docs/messenger-platform/instagram/features/user-profile/ */
  async getUserProfile(token: string, igsid: string): Promise<GraphUserProfile> {
    const body = await this.call(token, {
      method: 'GET',
      path: seg(igsid),
      params: { fields: 'name,username,profile_pic' },
    });
    return { username: str(body.username), name: str(body.name), profilePic: str(body.profile_pic) };
  }

  private async expectSuccess(
    token: string,
    method: 'POST' | 'DELETE',
    pageId: string | undefined,
    params?: Record<string, string>,
  ): Promise<void> {
    const node = tokenKindOf(token) === 'page' && pageId ? seg(pageId) : 'me';
    const body = await this.call(token, { method, path: `${node}/subscribed_apps`, params });
    if (body.success !== true) throw unexpected('subscribed_apps did not answer { success: true }', false);
  }

  private call(token: string, spec: CallSpec): Promise<Body> {
    const shouldRetry = (e: GraphError): boolean => e.retryable && !(spec.send && e.mayHaveBeenSent);
    return withRetry(() => this.once(token, spec), shouldRetry, this.retry, this.sleep);
  }

  private async once(token: string, spec: CallSpec): Promise<Body> {
    let res;
    try {
      res = await this.http[tokenKindOf(token)].request({
        method: spec.method,
        url: `/${this.opts.version}/${spec.path}`,
        params: spec.params,
        data: spec.data,
        headers: { Authorization: `Bearer ${token}` },
      });
    } catch (err) {
      // Rebuilt from the code alone: the AxiosError (config, headers, token) never leaves this method.
      const code = (err as { code?: unknown })?.code;
      throw classifyGraphError({ networkCode: typeof code === 'string' ? code : 'ENETWORK' });
    }
    const body: unknown = res.data;
    if (res.status >= 200 && res.status < 300 && body && typeof body === 'object' && !('error' in body)) {
      return body as Body;
    }
    throw classifyGraphError({
      status: res.status,
      body: redact(body, token),
      headers: res.headers as HeaderBag,
    });
  }
}

function seg(id: string): string {
  return encodeURIComponent(id);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function unexpected(what: string, mayHaveBeenSent: boolean): GraphError {
  return new GraphError({
    kind: 'other',
    metaMessage: `Unexpected Graph API answer: ${what}`,
    status: 200,
    mayHaveBeenSent,
  });
}

/** Meta's messages are echoed to callers: make sure none of them can carry the token back. */
function redact(body: unknown, token: string): unknown {
  if (!token || body === undefined || body === null) return body;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  if (!text.includes(token)) return body;
  const clean = text.split(token).join('[redacted]');
  return typeof body === 'string' ? clean : JSON.parse(clean);
}
