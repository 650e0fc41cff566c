import pino, { type DestinationStream, type Logger } from 'pino';
import { AsyncLocalStorage } from 'node:async_hooks';

/** Context carried through a request (or a worker job) so every log line names it. */
export interface LogContext {
  reqId?: string;
  subaccountId?: string;
  agentId?: string;
  eventId?: string;
}

export const logContext = new AsyncLocalStorage<LogContext>();

/**
 * Paths that must never reach a log line, wherever they appear. Logs carry ids, counts and codes, never
 * DM text or secrets; bodies are not logged at all, this list is the second line of defence.
 */
export const REDACT_PATHS = [
  'authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-hub-signature-256"]',
  'headers.authorization',
  'accessToken',
  'appSecret',
  'access_token',
  'token',
  'secret',
  '*.accessToken',
  '*.appSecret',
  '*.access_token',
  '*.token',
  '*.secret',
  '*.webhookVerificationToken',
  'config.headers.Authorization',
  'config.data',
  'body',
  'req.body',
  'text',
  'content',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      mixin: () => ({ ...logContext.getStore() }),
      serializers: { err: pino.stdSerializers.err },
    },
    destination,
  );
}

export type { Logger };
