import { setTimeout as sleep } from 'node:timers/promises';
import Retell from 'retell-sdk';

/**
 * The one place that talks to Retell (retell-sdk). Callers see `RetellError` with `transient` set for what
 * is worth retrying (408, 409, 429, 5xx, timeouts, network), never the SDK's error classes.
 * API: https://docs.retellai.com/api-references/create-chat, …/create-chat-completion, …/end-chat
 */
export type RetellMessage = Awaited<ReturnType<Retell['chat']['createChatCompletion']>>['messages'][number];

export interface RetellChat {
  chatId: string;
  status: 'ongoing' | 'ended' | 'error';
  startTimestamp: number;
}

export class RetellError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly transient: boolean,
    /** Retell says the chat is gone or ended: start a new one rather than retry. */
    readonly chatUnusable = false,
    /** How long Retell asked to be left alone (a retry-after longer than the connector waits in a call). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'RetellError';
  }
}

export interface RetellClientOptions {
  apiKey: string | undefined;
  baseUrl: string | undefined;
  timeoutMs?: number;
  maxRetries?: number;
  /** How often the chat is read for an answer whose completion came to no clear end (default 1 s). */
  answerPollMs?: number;
}

/**
 * How far Retell's timestamp of a question may lie before the moment we asked it and still be taken for
 * ours (clocks differ a little). Kept short: an earlier identical question from the same visitor, already
 * answered, must not pass for this one.
 */
const CLOCK_SKEW_MS = 1_000;

const TIMED_OUT = 'Retell timed out';
const unreadable = () => new RetellError(`${TIMED_OUT}: the chat could not be read`, undefined, true);

/** Whether a failed attempt's error (`lastError`) was a completion that timed out. */
export function isRetellTimeout(error: string | undefined): boolean {
  return error?.startsWith(TIMED_OUT) ?? false;
}

/** A question an earlier attempt may have asked: since when, and whether its answer may still come. */
export interface EarlierAsk {
  since: number;
  mayBeAnswering: boolean;
}

export class RetellClient {
  private readonly sdk: Retell | undefined;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly answerPollMs: number;

  constructor(opts: RetellClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxRetries = opts.maxRetries ?? 2;
    this.answerPollMs = opts.answerPollMs ?? 1_000;
    this.sdk = opts.apiKey
      ? new Retell({
          apiKey: opts.apiKey,
          baseURL: opts.baseUrl,
          timeout: this.timeoutMs,
          // The SDK retries 408/409/429/5xx and network errors with backoff, honouring retry-after
          // (every call but the completion, which retries on its own: see `complete`).
          maxRetries: this.maxRetries,
          // Failures reach our logs through RetellError, with ids and codes only; the SDK's own console
          // output would bypass the structured logger and its redaction.
          logLevel: 'off',
        })
      : undefined;
  }

  get configured(): boolean {
    return this.sdk !== undefined;
  }

  async createChat(
    agentId: string,
    metadata: Record<string, unknown>,
    variables: Record<string, string>,
  ): Promise<RetellChat> {
    const chat = await this.call(() =>
      this.client().chat.create({ agent_id: agentId, metadata, retell_llm_dynamic_variables: variables }),
    );
    return {
      chatId: chat.chat_id,
      status: chat.chat_status,
      startTimestamp: chat.start_timestamp ?? Date.now(),
    };
  }

  /**
   * The agent's new messages for `content` (tool calls and transitions included; callers filter).
   *
   * Retell takes no idempotency key, so a completion asked twice runs the agent, and its tools, twice. A
   * completion is therefore retried here rather than by the SDK, and an attempt whose fate is unknown is
   * checked against the chat (get-chat) before it is asked again:
   * - a timeout (30 s): Retell may have the question and still be answering. The chat is read for up to
   *   another timeout and the answer taken from there; a question that shows without its answer fails the
   *   attempt as transient; one that never shows is asked again, once. A chat whose last read failed
   *   fails the attempt too ("timed out"): it is not taken for a question Retell never got;
   * - a broken connection (not a refused one): the same, but waiting only while the question shows;
   * - a 5xx: the chat is read (the answer may have been given anyway); a question without its answer is
   *   asked again, as Retell failed it;
   * - 408, 409, 429: Retell did not take the question; asked again after the wait it asks for.
   * Up to `maxRetries` retries, with the SDK's backoff.
   *
   * `earlier`: an earlier attempt (a retry, or a process that crashed) may have asked this question. The
   * chat is read first and an answer there is taken. When that attempt may still be answered (it was cut
   * off, or gave up waiting), a question there without its answer is waited on for up to one timeout.
   * Otherwise, or after that, the question is asked.
   *
   * `beforeAsk`: called before every ask, the first and each one again; what it throws ends the call
   * (the worker's check that it still holds the thread).
   */
  async complete(
    chatId: string,
    content: string,
    earlier?: EarlierAsk,
    beforeAsk?: () => Promise<void>,
  ): Promise<RetellMessage[]> {
    const sdk = this.client();
    if (earlier) {
      const seen = await this.answerInChat(
        chatId,
        content,
        earlier.since,
        earlier.mayBeAnswering ? 'if-asked' : 'never',
      );
      if (seen.answer) return seen.answer;
    }
    const askedAt = Date.now();
    let timeouts = 0;
    for (let retries = 0; ; retries++) {
      // The time limit is our own signal, which ends the attempt without a retry inside the SDK; the SDK's
      // own limit is set past it so that it never fires first.
      await beforeAsk?.();
      const deadline = AbortSignal.timeout(this.timeoutMs);
      try {
        const res = await sdk.chat.createChatCompletion(
          { chat_id: chatId, content },
          { signal: deadline, timeout: this.timeoutMs * 2, maxRetries: 0 },
        );
        return res.messages;
      } catch (err) {
        const failure = deadline.aborted
          ? new RetellError(TIMED_OUT, undefined, true)
          : toRetellError(err, true);
        if (!failure.transient) throw failure;
        const wait = readBeforeAskingAgain(deadline.aborted, failure, err);
        if (wait) {
          const seen = await this.answerInChat(chatId, content, askedAt, wait);
          if (seen.answer) return seen.answer;
          if (seen.asked && wait !== 'never')
            throw new RetellError(`${TIMED_OUT}: it has the message but no answer yet`, undefined, true);
        }
        if (deadline.aborted && ++timeouts >= 2) throw failure;
        if (retries >= this.maxRetries) throw failure;
        const retryAfter = retryAfterMsOf(err);
        // Longer than a call should hold its thread: the event's retry waits it out (the worker honours it).
        if (retryAfter !== undefined && retryAfter > this.timeoutMs)
          throw new RetellError(failure.message, failure.status, true, false, Math.ceil(retryAfter));
        await sleep(retryAfter ?? backoffMs(retries));
      }
    }
  }

  /**
   * Reads the chat for the answer to `content` asked at `askedAt`, for up to one timeout. `asked`: Retell
   * showed the question at some point. `wait`: `always` (a question may show only with its answer; a read
   * that fails is tried again), `if-asked` (only while the question shows), `never` (until the question is
   * seen or not; no waiting for an answer). An answer is taken when two reads in a row show it unchanged,
   * ending with the agent's words. A read that fails throws: in `never`, its own error; in `if-asked`, and in
   * `always` when it was the last read, "timed out: the chat could not be read", so that the event's retry
   * still waits for an answer that may be coming.
   */
  private async answerInChat(
    chatId: string,
    content: string,
    askedAt: number,
    wait: 'always' | 'if-asked' | 'never',
  ): Promise<{ asked: boolean; answer?: RetellMessage[] }> {
    const until = Date.now() + this.timeoutMs;
    let asked = false;
    let lastSeen: string | undefined;
    let extended = false;
    for (;;) {
      let messages: RetellMessage[] | undefined;
      try {
        const chat = await this.client().chat.retrieve(chatId, {
          maxRetries: 0,
          timeout: Math.max(1_000, Math.ceil(until - Date.now())),
        });
        messages = chat.message_with_tool_calls ?? [];
      } catch (err) {
        const e = toRetellError(err, true);
        if (!e.transient || wait === 'never') throw e;
        // Nothing can be told from it, and the earlier ask may still be answered: the error says "timed
        // out", so that the event's retry waits for that answer too.
        if (wait === 'if-asked') throw unreadable();
      }
      const lastReadWorked = messages !== undefined;
      if (messages) {
        const found = answerTo(messages, content, askedAt);
        asked ||= found.asked;
        const seen = found.answer && JSON.stringify(found.answer);
        if (seen && seen === lastSeen) return { asked, answer: found.answer };
        lastSeen = seen;
        if (!seen && (wait === 'never' || (wait === 'if-asked' && !found.asked))) return { asked };
      }
      if (Date.now() + this.answerPollMs > until) {
        // An answer first seen on the last read gets the one more read that can confirm it.
        if (lastSeen && !extended) extended = true;
        else if (!lastReadWorked) throw unreadable();
        else return { asked };
      }
      await sleep(this.answerPollMs);
    }
  }

  async endChat(chatId: string): Promise<void> {
    await this.call(() => this.client().chat.end(chatId));
  }

  private client(): Retell {
    if (!this.sdk) throw new RetellError('RETELL_API_KEY is not set', undefined, false);
    return this.sdk;
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toRetellError(err, false);
    }
  }
}

/**
 * The answer to `content` in a chat's messages (get-chat's `message_with_tool_calls`, oldest first): the
 * messages after the chat's last user message, when that message is `content` asked no earlier than
 * `askedAt` (by Retell's `created_timestamp`; a message without one is not taken for ours) and the agent
 * seems to have finished (the last of them is the agent's words; a tool call still running or a
 * transition means it is still working). Retell does not document when a completion's messages
 * appear in get-chat; this reads them whether the question shows at once or only with its answer.
 */
export function answerTo(
  messages: readonly RetellMessage[],
  content: string,
  askedAt: number,
): { asked: boolean; answer?: RetellMessage[] } {
  let i = messages.length - 1;
  while (i >= 0 && messages[i]!.role !== 'user') i--;
  const question = messages[i];
  if (
    !question ||
    !('content' in question) ||
    question.content.trim() !== content.trim() ||
    question.created_timestamp === undefined ||
    question.created_timestamp < askedAt - CLOCK_SKEW_MS
  )
    return { asked: false };
  const after = messages.slice(i + 1);
  return after.at(-1)?.role === 'agent' ? { asked: true, answer: after } : { asked: true };
}

/**
 * The wait Retell asks for before a retry, as retell-sdk reads it (client.js `retryRequest`):
 * `retry-after-ms`, else `retry-after` (seconds or an HTTP date); undefined when it asks for none.
 */
export function retryAfterMsOf(err: unknown): number | undefined {
  const headers = err instanceof Retell.APIError ? err.headers : undefined;
  const ms = Number.parseFloat(headers?.get('retry-after-ms') ?? '');
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const after = headers?.get('retry-after');
  if (!after) return undefined;
  const seconds = Number.parseFloat(after);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(after);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/** retell-sdk's own backoff when Retell asks for no wait: min(0.5 × 2ⁿ, 8) s, less up to a quarter. */
function backoffMs(retries: number): number {
  return Math.min(0.5 * 2 ** retries, 8) * (1 - Math.random() * 0.25) * 1000;
}

/**
 * How the chat is read after a failed completion, before it is asked again (see `answerInChat`): after a
 * timeout Retell may still be answering, and the question may show only with its answer; after a broken
 * (not refused) connection it may still be answering; after a 5xx it failed the question, though a
 * gateway's 502/504 may hide an answer. Undefined: Retell did not take the question (408, 409, 429, refused).
 */
function readBeforeAskingAgain(
  timedOut: boolean,
  failure: RetellError,
  err: unknown,
): 'always' | 'if-asked' | 'never' | undefined {
  if (timedOut) return 'always';
  if (failure.status === undefined) return neverConnected(err) ? undefined : 'if-asked';
  return failure.status >= 500 ? 'never' : undefined;
}

/** A connection refused: nothing was sent (undici's "fetch failed", caused by ECONNREFUSED). */
function neverConnected(err: unknown): boolean {
  const fetchError = (err as { cause?: { cause?: { code?: unknown } } } | undefined)?.cause;
  return fetchError?.cause?.code === 'ECONNREFUSED';
}

export function toRetellError(err: unknown, onChat: boolean): RetellError {
  if (err instanceof RetellError) return err;
  if (err instanceof Retell.APIConnectionTimeoutError) return new RetellError(TIMED_OUT, undefined, true);
  if (err instanceof Retell.APIConnectionError)
    return new RetellError(`Retell unreachable: ${err.message}`, undefined, true);
  if (err instanceof Retell.APIError) {
    const status = err.status as number | undefined;
    // As retell-sdk retries (409: Retell's "resource update conflict", the question not taken).
    const transient =
      status === undefined || status === 408 || status === 409 || status === 429 || status >= 500;
    // Retell answers 422 "Cannot find requested asset" for unknown ids, and refuses completions on ended chats.
    const chatUnusable = onChat && (status === 400 || status === 404 || status === 422);
    return new RetellError(
      `Retell ${status ?? 'error'}: ${retellMessage(err)}`,
      status,
      transient,
      chatUnusable,
    );
  }
  return new RetellError(String((err as Error)?.message ?? err), undefined, false);
}

/** Retell's own words from its `{status:'error', message}` body; the SDK's `message` repeats the status. */
function retellMessage(err: InstanceType<typeof Retell.APIError>): string {
  const body = err.error as { message?: unknown } | undefined;
  if (typeof body?.message === 'string' && body.message) return body.message;
  return err.message.replace(/^\d{3}\s*/, '') || 'no message';
}
