import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { setTimeout as wait } from 'node:timers/promises';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { graphRoutes } from './graph.simulator.routes';
import { simulatedMid } from './meta-webhook';

/**
 * A loopback Meta Graph API (tests and `npm run demo`): both hosts, the shapes Meta documents.
 * - Instagram Login (graph.instagram.com), `/me` with `user_id` vs app-scoped `id`:
 *   https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/get-started
 * - Facebook Login (graph.facebook.com), IG user node: https://developers.facebook.com/docs/instagram-api/reference/ig-user
 * - Send API `{ recipient_id, message_id }`: https://developers.facebook.com/documentation/business-messaging/instagram-messaging/features/send-message
 * - Page subscribed_apps `{ success: true }`: https://developers.facebook.com/docs/graph-api/reference/page/subscribed_apps/
 * - User profile: https://developers.facebook.com/docs/messenger-platform/instagram/features/user-profile/
 * - Errors `{ error: { message, type, code, error_subcode, fbtrace_id } }`:
 *   https://developers.facebook.com/docs/graph-api/guides/error-handling ,
 *   https://developers.facebook.com/documentation/business-messaging/messenger-platform/error-codes
 *
 * `metaGraphUrl` / `instagramGraphUrl` are the two hosts (path prefixes on one port, so a token used on the
 * wrong host is refused like Meta does); `url` serves both flavours, picking by token.
 */
export type GraphHost = 'graph.facebook.com' | 'graph.instagram.com';

export interface SimAccount {
  /** The Instagram professional account id: the IG user node; `user_id` of IG-Login `/me`; `entry[].id`. */
  id: string;
  username: string;
  name?: string;
  profilePictureUrl?: string;
  /** Facebook Login: the linked Page. */
  pageId?: string;
  /** Instagram Login: `/me`'s app-scoped `id`, deliberately not equal to `id`. */
  appScopedId?: string;
}

export interface SimUser {
  name?: string;
  username?: string;
  profilePic?: string;
}

export interface RecordedRequest {
  method: string;
  host?: GraphHost;
  path: string;
  query: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export interface SentMessageRecord {
  accountId: string;
  recipientId: string;
  message: Record<string, unknown>;
  messageId: string;
  timestamp: number;
  tag?: string;
}

export interface FailResponse {
  status: number;
  body?: object;
  headers?: Record<string, string>;
  delayMs?: number;
  /** Record the message in `sent` (and call `onSend`) although the answer is an error. */
  deliverAnyway?: boolean;
}

export interface FailMatcher {
  method?: string;
  /** A string matches the path with or without the version (`/me/messages` ≈ `/v25.0/me/messages`). */
  path?: string | RegExp;
}

export interface GraphSimulator {
  url: string;
  metaGraphUrl: string;
  instagramGraphUrl: string;
  version: string;
  /** token → account. Tokens starting with `IG` are Instagram-Login tokens, others Page tokens. */
  accounts: Map<string, SimAccount>;
  /** IGSID → profile: the people who wrote to the accounts (valid recipients). */
  users: Map<string, SimUser>;
  /** account id → fields subscribed through subscribed_apps. */
  subscriptions: Map<string, string[]>;
  requests: RecordedRequest[];
  sent: SentMessageRecord[];
  failNext(matcher: FailMatcher, responses: FailResponse[]): void;
  /** Forgets failures queued by failNext and not yet used. */
  clearFailures(): void;
  setDelay(ms: number): void;
  /** Awaited after a message is recorded and before the answer: an echo webhook can be emitted here. */
  onSend?: (sent: SentMessageRecord, account: SimAccount) => void | Promise<void>;
  close(): Promise<void>;
}

export interface SimState extends GraphSimulator {
  nextMessageId(accountId: string): string;
}

export async function startGraphSimulator(opts: { version?: string } = {}): Promise<GraphSimulator> {
  const failures: Array<{ matcher: FailMatcher; responses: FailResponse[] }> = [];
  let delayMs = 0;
  let counter = 0;

  const sim: SimState = {
    url: '',
    metaGraphUrl: '',
    instagramGraphUrl: '',
    version: opts.version ?? 'v25.0',
    accounts: new Map(),
    users: new Map(),
    subscriptions: new Map(),
    requests: [],
    sent: [],
    failNext: (matcher, responses) => void failures.push({ matcher, responses: [...responses] }),
    clearFailures: () => void failures.splice(0),
    setDelay: (ms) => void (delayMs = ms),
    nextMessageId: (accountId) => simulatedMid(accountId, String(++counter)),
    close: async () => undefined,
  };

  const takeFailure = (req: Request, path: string): FailResponse | undefined => {
    const i = failures.findIndex(({ matcher: m }) => {
      if (m.method && m.method.toUpperCase() !== req.method) return false;
      if (m.path === undefined) return true;
      if (m.path instanceof RegExp) return m.path.test(path);
      return path === m.path || path === `/${sim.version}${m.path}`;
    });
    if (i < 0) return undefined;
    const response = failures[i].responses.shift();
    if (failures[i].responses.length === 0) failures.splice(i, 1);
    return response;
  };

  const mount = (host: GraphHost | undefined): Router => {
    const router = express.Router();
    router.use(express.json(), express.urlencoded({ extended: false }));
    router.use(async (req: Request, res: Response, next: NextFunction) => {
      res.locals.host = host;
      sim.requests.push({
        method: req.method,
        host,
        path: req.path,
        query: { ...req.query },
        headers: { ...req.headers },
        body: req.body,
      });
      if (delayMs > 0) await wait(delayMs);
      const failure = takeFailure(req, req.path);
      if (!failure) return next();
      res.locals.failure = failure;
      if (failure.delayMs) await wait(failure.delayMs);
      if (failure.deliverAnyway) return next(); // the messages route records it, then answers the failure
      res.status(failure.status).set(failure.headers ?? {});
      return failure.body === undefined ? res.end() : res.json(failure.body);
    });
    router.use(graphRoutes(sim));
    return router;
  };

  const app = express();
  app.use('/graph.facebook.com', mount('graph.facebook.com'));
  app.use('/graph.instagram.com', mount('graph.instagram.com'));
  app.use(mount(undefined));

  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  sim.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  sim.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sim.metaGraphUrl = `${sim.url}/graph.facebook.com`;
  sim.instagramGraphUrl = `${sim.url}/graph.instagram.com`;
  return sim;
}
