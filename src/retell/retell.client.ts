import Retell from 'retell-sdk';

/**
 * The one place that talks to Retell (retell-sdk). Callers see `RetellError` with `transient` set for what
 * is worth retrying (429, 5xx, timeouts, network), never the SDK's error classes.
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
}

export class RetellClient {
  private readonly sdk: Retell | undefined;

  constructor(opts: RetellClientOptions) {
    this.sdk = opts.apiKey
      ? new Retell({
          apiKey: opts.apiKey,
          baseURL: opts.baseUrl,
          timeout: opts.timeoutMs ?? 30_000,
          // The SDK retries 408/409/429/5xx and network errors with backoff, honouring retry-after.
          maxRetries: opts.maxRetries ?? 2,
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

  /** The agent's new messages for `content` (tool calls and transitions included; callers filter). */
  async complete(chatId: string, content: string): Promise<RetellMessage[]> {
    const res = await this.call(
      () => this.client().chat.createChatCompletion({ chat_id: chatId, content }),
      true,
    );
    return res.messages;
  }

  async endChat(chatId: string): Promise<void> {
    await this.call(() => this.client().chat.end(chatId));
  }

  private client(): Retell {
    if (!this.sdk) throw new RetellError('RETELL_API_KEY is not set', undefined, false);
    return this.sdk;
  }

  private async call<T>(fn: () => Promise<T>, onChat = false): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toRetellError(err, onChat);
    }
  }
}

export function toRetellError(err: unknown, onChat: boolean): RetellError {
  if (err instanceof RetellError) return err;
  if (err instanceof Retell.APIConnectionTimeoutError)
    return new RetellError('Retell timed out', undefined, true);
  if (err instanceof Retell.APIConnectionError)
    return new RetellError(`Retell unreachable: ${err.message}`, undefined, true);
  if (err instanceof Retell.APIError) {
    const status = err.status as number | undefined;
    const transient = status === undefined || status === 408 || status === 429 || status >= 500;
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
