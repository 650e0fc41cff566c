import { Router, type RequestHandler } from 'express';
import type { Deps } from '../deps';
import { authenticate, requireRole } from '../http/auth';
import { requireSubaccountAccess, resolveTenant } from '../http/tenant';
import { validate } from '../http/validate';
import { connectSchema, noBody, noQuery } from './instagram.schemas';
import { instagramController } from './instagram.controller';
import {
  conversationsSchema,
  messagesSchema,
  pauseSchema,
  resumeSchema,
  sendSchema,
} from './operator.schemas';
import { operatorController } from './operator.controller';

/**
 * The table of contents of the product: one line per route (path, who may call it, input, handler).
 * `user` reads; `admin` connects, disconnects and sends; `meta` is Meta calling the webhook.
 */
export function instagramRouter(deps: Deps): Router {
  const { platform, config } = deps;
  const tenant = resolveTenant(platform);
  const signedIn = [authenticate(config.jwtSecret), requireSubaccountAccess(platform)];
  const user: RequestHandler[] = [...signedIn, requireRole('user'), tenant];
  const admin: RequestHandler[] = [...signedIn, requireRole('admin'), tenant];
  const meta: RequestHandler[] = [tenant];
  const c = instagramController(deps.connections, deps.webhooks);
  const op = operatorController(deps.operator);

  const r = Router({ mergeParams: true });
  // Meta's calls first: every DM and every echo is a POST /webhook, and each route before it is matched
  // in vain.
  r.get('/webhook', meta, c.verifyWebhook);
  r.post('/webhook', meta, c.receiveWebhook);
  r.post('/connect', admin, validate(connectSchema), c.connect);
  r.get('/status', user, validate(noQuery), c.status);
  r.post('/send', admin, validate(sendSchema), op.send);
  r.get('/messages', user, validate(messagesSchema), op.messages);
  r.get('/conversations', user, validate(conversationsSchema), op.conversations);
  r.post('/conversations/:userId/pause', admin, validate(pauseSchema), op.pause);
  r.post('/conversations/:userId/resume', admin, validate(resumeSchema), op.resume);
  r.post('/disconnect', admin, validate(noBody), c.disconnect);
  return r;
}
