import type { RequestHandler } from 'express';
import type Joi from 'joi';
import { AppError, type FieldError } from './app-error';

export interface RouteSchema {
  params?: Joi.ObjectSchema;
  query?: Joi.ObjectSchema;
  body?: Joi.ObjectSchema;
}

/** Validated input, kept on res.locals (Express 5 does not allow overwriting req.query). */
export interface Validated {
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  body: Record<string, unknown>;
}

/**
 * Joi per route: unknown keys refused, every error reported, one `{ field, message }` per bad field.
 * Bad input never reaches a service.
 */
export function validate(schema: RouteSchema): RequestHandler {
  return (req, res, next) => {
    const details: FieldError[] = [];
    const out: Validated = { params: {}, query: {}, body: {} };
    for (const part of ['params', 'query', 'body'] as const) {
      const s = schema[part];
      if (!s) continue;
      // A body that came in other than as JSON was read as bytes (for its size limit, see app.ts).
      const bytes = part === 'body' && Buffer.isBuffer(req.body) ? (req.body as Buffer) : undefined;
      if (bytes?.length) {
        details.push({ field: 'body', message: 'must be JSON, sent with Content-Type: application/json' });
        continue;
      }
      const input = part === 'body' ? (bytes ? {} : (req.body ?? {})) : req[part];
      const { error, value } = s.validate(input, {
        abortEarly: false,
        allowUnknown: part === 'params',
        stripUnknown: false,
        convert: true,
      });
      if (error) {
        for (const d of error.details) {
          details.push({ field: [part, ...d.path].join('.'), message: d.message.replace(/"/g, '') });
        }
      } else {
        out[part] = value as Record<string, unknown>;
      }
    }
    if (details.length) return next(AppError.validation(details));
    res.locals.validated = out;
    next();
  };
}
