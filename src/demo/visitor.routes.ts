import path from 'node:path';
import express, { Router, type RequestHandler } from 'express';
import Joi from 'joi';
import { AppError } from '../http/app-error';
import { validate, type Validated } from '../http/validate';
import type { DemoVisitors } from './visitors';

/** `public/` sits next to `src/` and `dist/`, so the same path works from sources and the build. */
const PAGE_DIR = path.resolve(__dirname, '../../public/demo');

const userId = Joi.string()
  .pattern(/^\d{5,20}$/)
  .description("the visitor's IGSID");
const saySchema = {
  body: Joi.object({
    text: Joi.string().trim().min(1).max(1000).required(),
    userId,
    username: Joi.string().pattern(/^[A-Za-z0-9._]{1,30}$/),
  }),
};
const threadSchema = { query: Joi.object({ userId: userId.required() }) };

/**
 * Demo only (mounted by `npm run demo`, never by `npm start`): a page to play an Instagram visitor, and
 * the two calls behind it. Sending builds Meta's signed webhook and POSTs it to the connector's real
 * webhook route; reading returns what the Graph simulator delivered to the visitor and the `chats` turn.
 */
export function visitorRouter(getVisitors: () => DemoVisitors | undefined): Router {
  const r = Router();
  const ready: RequestHandler = (_req, res, next) => {
    const visitors = getVisitors();
    if (!visitors) return next(new AppError('SERVICE_UNAVAILABLE', 'The demo is still starting', 503));
    res.locals.visitors = visitors;
    next();
  };

  r.get(['/demo/visitor', '/demo/visitor/'], (_req, res) => {
    res.set('Cache-Control', 'no-store');
    res.sendFile(path.join(PAGE_DIR, 'visitor.html'));
  });

  r.post('/demo/visitor/messages', ready, validate(saySchema), async (_req, res) => {
    const visitors = res.locals.visitors as DemoVisitors;
    const body = (res.locals.validated as Validated).body as {
      text: string;
      userId?: string;
      username?: string;
    };
    const visitor = visitors.visitor(body.userId, body.username);
    const before = visitors.repliesTo(visitor.userId);
    const sent = await visitors.say(visitor, body.text);
    res.status(202).json({ success: true, data: { ...visitor, mid: sent.mid } });
    void visitors.narrateReply(visitor.userId, before).catch(() => undefined);
  });

  r.get('/demo/visitor/messages', ready, validate(threadSchema), async (_req, res) => {
    const visitors = res.locals.visitors as DemoVisitors;
    const id = String((res.locals.validated as Validated).query.userId);
    res.json({
      success: true,
      data: { userId: id, messages: visitors.thread(id), chat: (await visitors.chat(id)) ?? null },
    });
  });

  r.use('/demo/visitor', express.static(PAGE_DIR, { index: false, redirect: false, fallthrough: true }));
  return r;
}
