/**
 * Loopback simulator of the Retell chat API, spoken to by the REAL retell-sdk through `baseURL`.
 *
 * Shapes follow Retell's API reference and retell-sdk 5.66.1 (see docs/retell-api-notes.md):
 * - https://docs.retellai.com/api-references/create-chat            POST  /create-chat             → 201 ChatResponse
 * - https://docs.retellai.com/api-references/create-chat-completion POST  /create-chat-completion  → 201 { messages }
 *   (only the NEW messages: agent replies, tool call invocations/results, node transitions; never the input)
 * - https://docs.retellai.com/api-references/end-chat               PATCH /end-chat/{chat_id}      → 204 No Content
 * - https://docs.retellai.com/api-references/get-chat               GET   /get-chat/{chat_id}      → 200 ChatResponse
 * - https://docs.retellai.com/deploy/create-chat-completion (flow; history is kept server-side)
 * Errors are `{"status":"error","message":"…"}`; unknown ids answer 422 "Cannot find requested asset under
 * given api key." (from Retell's OpenAPI; not checked against the live API). What Retell answers for a
 * completion on an ended chat is undocumented: this simulator says 400.
 * Every body is `application/json`: retell-sdk hands back a plain string for anything else.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import express, { type NextFunction, type Request, type Response } from 'express';
import type Retell from 'retell-sdk';

/** One item of a completion's `messages` (agent/user text, tool_call_invocation, tool_call_result, …). */
export type SimMessage = Awaited<ReturnType<Retell['chat']['createChatCompletion']>>['messages'][number];

export interface SimChat {
  chat_id: string;
  agent_id: string;
  agent_version?: string | number;
  chat_status: 'ongoing' | 'ended' | 'error';
  chat_type: 'api_chat';
  start_timestamp: number;
  end_timestamp?: number;
  metadata?: unknown;
  retell_llm_dynamic_variables?: Record<string, string>;
  /** Everything said, in order (what get-chat returns as `message_with_tool_calls`). */
  message_with_tool_calls: SimMessage[];
  /** The user `content` of each accepted completion, in the order received. */
  userContents: string[];
}

/** Text becomes one agent message; an array is sent as is (ids and timestamps filled in when missing). */
export type ReplyFn = (
  content: string,
  chat: SimChat,
) => string | SimMessage[] | Promise<string | SimMessage[]>;

export interface InjectedFailure {
  status: number;
  headers?: Record<string, string>;
  delayMs?: number;
  message?: string;
}

export interface RetellSimulator {
  url: string;
  apiKey: string;
  chats: Map<string, SimChat>;
  completions: Array<{ chat_id: string; content: string; at: number }>;
  created: Array<Record<string, unknown>>;
  ended: string[];
  /** Every request that reached the simulator (after the body was parsed), including refused ones. */
  requests: Array<{ method: string; path: string; body: unknown; headers: http.IncomingHttpHeaders }>;
  setReply(fn: ReplyFn): void;
  setDelay(ms: number): void;
  failNext(path: string, responses: InjectedFailure[]): void;
  /** Forgets failures queued by failNext and not yet used. */
  clearFailures(): void;
  waitForCompletions(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const NOT_FOUND_MESSAGE = 'Cannot find requested asset under given api key.';
const BAD_REQUEST_MESSAGE = 'Invalid request format, please check API reference.';

export const echoReply: ReplyFn = (content) => `Echo: ${content}`;

/** Builders for reply functions that return several items. */
export const simMessages = {
  agent: (content: string): SimMessage => ({ role: 'agent', content }),
  toolCall: (name: string, args: unknown, toolCallId = `tool_${randomUUID()}`): SimMessage => ({
    role: 'tool_call_invocation',
    name,
    arguments: JSON.stringify(args),
    tool_call_id: toolCallId,
  }),
  toolResult: (toolCallId: string, content: string): SimMessage => ({
    role: 'tool_call_result',
    tool_call_id: toolCallId,
    content,
    successful: true,
  }),
  nodeTransition: (from: string, to: string): SimMessage => ({
    role: 'node_transition',
    former_node_name: from,
    new_node_name: to,
    transition_type: 'normal',
  }),
};

const newId = (): string => randomUUID().replace(/-/g, '');

export async function startRetellSimulator(opts: { apiKey?: string } = {}): Promise<RetellSimulator> {
  const apiKey = opts.apiKey ?? 'retell-test-key';
  const chats = new Map<string, SimChat>();
  const completions: RetellSimulator['completions'] = [];
  const created: RetellSimulator['created'] = [];
  const ended: string[] = [];
  const requests: RetellSimulator['requests'] = [];
  const failures = new Map<string, InjectedFailure[]>();
  const waiters = new Set<{ check: () => void; abandon: () => void }>();
  const closing = new AbortController();
  // Every slow completion listens for the close on this one signal; more than ten at once is the load the
  // bench puts on it (up to 64 users), not a leak: the listeners go when their delay ends. A real leak
  // would still pass this bound and be reported.
  setMaxListeners(1000, closing.signal);
  let reply: ReplyFn = echoReply;
  let completionDelayMs = 0;

  const fail = (res: Response, status: number, message: string): void => {
    res.status(status).json({ status: 'error', message });
  };
  /** Resolves false when the simulator is closing, so a slow handler simply stops. */
  const wait = (ms: number): Promise<boolean> =>
    ms > 0
      ? delay(ms, true, { signal: closing.signal }).catch(() => false)
      : Promise.resolve(!closing.signal.aborted);
  const takeFailure = (path: string): InjectedFailure | undefined => {
    for (const [prefix, queue] of failures) {
      if ((path === prefix || path.startsWith(`${prefix}/`)) && queue.length > 0) return queue.shift();
    }
    return undefined;
  };
  const view = (chat: SimChat) => {
    const rest: Partial<SimChat> = { ...chat };
    delete rest.userContents;
    const transcript = chat.message_with_tool_calls
      .filter(
        (m): m is Extract<SimMessage, { role: 'agent' | 'user' }> => m.role === 'agent' || m.role === 'user',
      )
      .map((m) => `${m.role === 'agent' ? 'Agent' : 'User'}: ${m.content}\n`)
      .join('');
    return { ...rest, transcript };
  };

  const app = express();
  app.use(express.json({ limit: '1mb' }));
  app.use(async (req: Request, res: Response, next: NextFunction) => {
    requests.push({ method: req.method, path: req.path, body: req.body, headers: req.headers });
    if (req.headers.authorization !== `Bearer ${apiKey}`)
      return fail(res, 401, 'API key is missing or invalid.');
    const failure = takeFailure(req.path);
    if (!failure) return next();
    if (!(await wait(failure.delayMs ?? 0))) return;
    res.set(failure.headers ?? {});
    fail(res, failure.status, failure.message ?? `injected ${failure.status}`);
  });

  app.post('/create-chat', (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const { agent_id, agent_version, metadata, retell_llm_dynamic_variables } = body;
    if (typeof agent_id !== 'string' || agent_id === '') return fail(res, 400, BAD_REQUEST_MESSAGE);
    created.push(body);
    const chat: SimChat = {
      chat_id: `chat_${newId()}`,
      agent_id,
      ...(agent_version !== undefined ? { agent_version: agent_version as string | number } : {}),
      chat_status: 'ongoing',
      chat_type: 'api_chat',
      start_timestamp: Date.now(),
      metadata,
      retell_llm_dynamic_variables: retell_llm_dynamic_variables as Record<string, string> | undefined,
      message_with_tool_calls: [],
      userContents: [],
    };
    chats.set(chat.chat_id, chat);
    res.status(201).json(view(chat));
  });

  app.post('/create-chat-completion', async (req, res) => {
    const { chat_id, content } = (req.body ?? {}) as Record<string, unknown>;
    if (typeof chat_id !== 'string' || typeof content !== 'string')
      return fail(res, 400, BAD_REQUEST_MESSAGE);
    const chat = chats.get(chat_id);
    if (!chat) return fail(res, 422, NOT_FOUND_MESSAGE);
    if (chat.chat_status !== 'ongoing') return fail(res, 400, 'Chat has already ended.');
    const at = Date.now();
    chat.userContents.push(content);
    chat.message_with_tool_calls.push({ role: 'user', content, message_id: newId(), created_timestamp: at });
    completions.push({ chat_id, content, at });
    for (const waiter of [...waiters]) waiter.check();
    if (!(await wait(completionDelayMs))) return;
    const produced = await reply(content, chat);
    const items = typeof produced === 'string' ? [simMessages.agent(produced)] : produced;
    const messages = items.map(
      (m) => ({ message_id: newId(), created_timestamp: Date.now(), ...m }) as SimMessage,
    );
    chat.message_with_tool_calls.push(...messages);
    res.status(201).json({ messages });
  });

  app.patch('/end-chat/:chat_id', (req, res) => {
    const chat = chats.get(req.params.chat_id);
    if (!chat) return fail(res, 422, NOT_FOUND_MESSAGE);
    chat.chat_status = 'ended';
    chat.end_timestamp = Date.now();
    ended.push(chat.chat_id);
    res.status(204).end();
  });

  app.get('/get-chat/:chat_id', (req, res) => {
    const chat = chats.get(req.params.chat_id);
    if (!chat) return fail(res, 422, NOT_FOUND_MESSAGE);
    res.status(200).json(view(chat));
  });

  app.use((_req: Request, res: Response) => fail(res, 404, 'The requested resource was not found.'));
  // Malformed JSON and throwing reply functions still answer in Retell's error shape, never express's HTML.
  app.use((err: { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    const status = typeof err.status === 'number' && err.status >= 400 && err.status < 500 ? err.status : 500;
    fail(res, status, status === 500 ? 'An unexpected server error occurred.' : BAD_REQUEST_MESSAGE);
  });

  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    chats,
    completions,
    created,
    ended,
    requests,
    setReply: (fn) => {
      reply = fn;
    },
    setDelay: (ms) => {
      completionDelayMs = ms;
    },
    clearFailures: () => failures.clear(),
    failNext: (path, responses) => {
      failures.set(path, [...(failures.get(path) ?? []), ...responses]);
    },
    waitForCompletions: (n, timeoutMs = 5_000) =>
      new Promise<void>((resolve, reject) => {
        const stop = (err?: Error): void => {
          clearTimeout(timer);
          waiters.delete(waiter);
          if (err) reject(err);
          else resolve();
        };
        const waiter = {
          check: () => (completions.length >= n ? stop() : undefined),
          abandon: () => stop(new Error('Retell simulator closed while waiting for completions')),
        };
        const timer = setTimeout(
          () =>
            stop(
              new Error(`Retell simulator: ${completions.length} of ${n} completions after ${timeoutMs} ms`),
            ),
          timeoutMs,
        );
        waiters.add(waiter);
        waiter.check();
      }),
    close: async () => {
      closing.abort();
      for (const waiter of [...waiters]) waiter.abandon();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
