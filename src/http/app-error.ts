/** Every error code the API can answer with. The union is the catalogue; docs/ lists what each means. */
export type ErrorCode =
  | 'VALIDATION_ERROR'
  | 'MALFORMED_JSON'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'SUBACCOUNT_NOT_FOUND'
  | 'AGENT_NOT_FOUND'
  | 'NOT_IMPLEMENTED'
  | 'INSTAGRAM_AUTH_FAILED'
  | 'INSTAGRAM_UNAVAILABLE'
  | 'INSTAGRAM_ACCOUNT_IN_USE'
  | 'INSTAGRAM_NOT_CONNECTED'
  | 'INSTAGRAM_SEND_FAILED'
  | 'INSTAGRAM_RATE_LIMITED'
  | 'MESSAGING_WINDOW_CLOSED'
  | 'WEBHOOK_SIGNATURE_INVALID'
  | 'WEBHOOK_VERIFICATION_FAILED'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL_ERROR';

export interface FieldError {
  field: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly status: number,
    readonly details?: unknown,
    /** Extra response headers, e.g. Retry-After. */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'AppError';
  }

  static validation(details: FieldError[]): AppError {
    return new AppError('VALIDATION_ERROR', 'The request has invalid fields', 400, details);
  }
}
