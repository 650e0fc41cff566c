import crypto from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { logContext, type Logger } from '../lib/logger';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;

/**
 * A request id on every log line: taken from `X-Request-Id` when it is sane, otherwise generated, echoed
 * back in the response. Then one access line per request when its answer is finished (or the client went
 * away first): method, path without the query string (hub.verify_token travels there), status, time,
 * request id. Request and response bodies are never logged.
 *
 * The line is the one pino-http wrote, written here instead: pino-http makes a child logger for every
 * request, and that was a fifth of the connector's CPU per webhook delivery (docs/performance-history.md,
 * session 8). The request id is in the line's own object, so a line written outside the request's
 * logContext (an aborted request) names it too, and the logger's mixin merges into the same key: once.
 */
export function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const incoming = req.headers['x-request-id'];
    const reqId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    res.setHeader('X-Request-Id', reqId);
    const started = Date.now();
    const done = () => {
      res.off('finish', done);
      res.off('close', done);
      accessLine(logger, req, res, reqId, Date.now() - started);
    };
    res.on('finish', done);
    res.on('close', done);
    logContext.run({ reqId }, () => next());
  };
}

function accessLine(logger: Logger, req: Request, res: Response, reqId: string, responseTime: number): void {
  const line = {
    req: { method: req.method, path: req.originalUrl.split('?')[0] },
    res: { statusCode: res.statusCode },
    responseTime,
    reqId,
  };
  if (res.statusCode >= 500) logger.error(line, 'request errored');
  else if (!req.readableAborted && res.writableEnded) logger.info(line, 'request completed');
  else logger.info(line, 'request aborted');
}
