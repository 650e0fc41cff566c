import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError } from './app-error';
import type { Logger } from '../lib/logger';

/**
 * Turns anything thrown into an AppError. Used by the HTTP error handler and by the process-level
 * `unhandledRejection` handler, so both speak the same codes. Body-parser errors keep their own status
 * (a 413 stays a 413).
 */
export function normaliseError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = err as { type?: string; status?: number; statusCode?: number } | undefined;
  if (e?.type === 'entity.parse.failed')
    return new AppError('MALFORMED_JSON', 'The body is not valid JSON', 400);
  if (e?.type === 'entity.too.large')
    return new AppError('PAYLOAD_TOO_LARGE', 'The body is larger than 1 MB', 413);
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported')
    return new AppError('VALIDATION_ERROR', 'Unsupported body encoding', 415);
  return new AppError('INTERNAL_ERROR', 'Something went wrong on our side', 500);
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new AppError('NOT_FOUND', `No route for ${req.method} ${req.path}`, 404));
};

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, _req, res, next) => {
    if (res.headersSent) return next(err);
    const appError = normaliseError(err);
    if (appError.status >= 500) logger.error({ err }, 'request failed');
    if (appError.headers) res.set(appError.headers);
    const error: Record<string, unknown> = { code: appError.code, message: appError.message };
    if (appError.details !== undefined) error.details = appError.details;
    res.status(appError.status).json({ success: false, error });
  };
}
