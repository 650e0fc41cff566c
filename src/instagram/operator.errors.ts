import { AppError } from '../http/app-error';
import type { GraphError } from './graph.errors';
import { windowState } from './messaging-window';

/** What can go wrong with an operator's message, in the API's codes (docs/OPERATORS.md lists them). */

/** Meta rarely says how long to wait; when it does not, this is what Retry-After advises. */
const DEFAULT_RETRY_AFTER_MS = 60_000;

export const notConnected = () =>
  new AppError('INSTAGRAM_NOT_CONNECTED', 'This agent has no Instagram account connected', 409);

export const authFailed = (why: string, details?: Record<string, unknown>) =>
  new AppError('INSTAGRAM_AUTH_FAILED', `${why}: connect the Instagram account again`, 422, {
    tokenStatus: 'invalid',
    ...details,
  });

export const windowClosed = (lastInboundAt: Date | null, details?: Record<string, unknown>) =>
  new AppError(
    'MESSAGING_WINDOW_CLOSED',
    'Instagram only allows messages within 24 hours of the person’s last message',
    422,
    { lastInboundAt, windowExpiresAt: windowState(lastInboundAt).expiresAt, ...details },
  );

/**
 * Meta took the message but it could not be recorded (the database failed): a 500, which says what went
 * out so that nobody sends it again. The service records the turn again in the background.
 */
export const deliveredNotRecorded = (instagramMessageIds: string[], sentMessageIds: string[]) =>
  new AppError(
    'INTERNAL_ERROR',
    'The message reached Instagram but could not be recorded yet; it will appear in the history once it is. Do not send it again.',
    500,
    { delivered: true, instagramMessageIds, ...(sentMessageIds.length ? { sentMessageIds } : {}) },
  );

/** Meta's refusal, in our codes; Meta's code, subcode and trace id travel in `details`. */
export function sendFailure(err: GraphError, lastInboundAt: Date | null, sentMessageIds: string[]): AppError {
  const details = {
    code: err.code ?? null,
    error_subcode: err.subcode ?? null,
    fbtrace_id: err.fbtraceId ?? null,
    ...(sentMessageIds.length ? { sentMessageIds } : {}),
  };
  switch (err.kind) {
    case 'rate_limit': {
      const seconds = Math.max(1, Math.ceil((err.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS) / 1000));
      return new AppError(
        'INSTAGRAM_RATE_LIMITED',
        `Instagram is limiting messages from this account; retry in ${seconds} s`,
        429,
        { ...details, retryAfterSeconds: seconds },
        { 'Retry-After': String(seconds) },
      );
    }
    case 'invalid_token':
      return authFailed(`Instagram rejected the connection token (${err.metaMessage})`, details);
    case 'window_closed':
      return windowClosed(lastInboundAt, details);
    case 'unreachable':
      return new AppError('INSTAGRAM_UNAVAILABLE', 'Instagram could not be reached', 502, {
        ...details,
        mayHaveBeenSent: false,
      });
    default:
      return new AppError('INSTAGRAM_SEND_FAILED', `Instagram refused the message: ${err.metaMessage}`, 502, {
        ...details,
        mayHaveBeenSent: err.mayHaveBeenSent,
      });
  }
}
