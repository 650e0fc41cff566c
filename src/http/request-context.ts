import crypto from 'node:crypto';
import type { RequestHandler } from 'express';
import pinoHttp from 'pino-http';
import { logContext, type Logger } from '../lib/logger';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;

/**
 * A request id on every log line: taken from `X-Request-Id` when it is sane, otherwise generated, echoed
 * back in the response. Request and response bodies are never logged; only method, path, status, timing.
 */
export function requestContext(logger: Logger): RequestHandler[] {
  const assignId: RequestHandler = (req, res, next) => {
    const incoming = req.headers['x-request-id'];
    const reqId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    res.setHeader('X-Request-Id', reqId);
    logContext.run({ reqId }, () => next());
  };
  const http = pinoHttp({
    logger,
    genReqId: (_req, res) => String(res.getHeader('X-Request-Id')),
    // The request id goes into the access line's own object, where the logger's mixin (logContext) merges
    // into the same key: once per line (pino-http's quietReqLogger binding wrote it a second time), and
    // present on an aborted request's line too, which is written outside the request's logContext.
    customSuccessObject: (req, _res, val: object) => ({ ...val, reqId: req.id }),
    customErrorObject: (req, _res, _err, val: object) => ({ ...val, reqId: req.id }),
    serializers: {
      // URL without the query string: hub.verify_token travels there.
      req: (req: { method: string; url: string }) => ({ method: req.method, path: req.url.split('?')[0] }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : 'info'),
  });
  return [assignId, http];
}
