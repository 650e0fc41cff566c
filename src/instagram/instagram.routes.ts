import { Router, type RequestHandler } from 'express';
import type { Deps } from '../deps';
import { authenticate, requireRole } from '../http/auth';
import { requireSubaccountAccess, resolveTenant } from '../http/tenant';
import { validate } from '../http/validate';
import { AppError } from '../http/app-error';
import { connectSchema, noBody } from './instagram.schemas';
import { instagramController } from './instagram.controller';

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

  const r = Router({ mergeParams: true });
  r.post('/connect', admin, validate(connectSchema), c.connect);
  r.get('/status', user, c.status);
  r.post('/send', admin, notImplemented);
  r.get('/messages', user, notImplemented);
  r.get('/conversations', user, notImplemented);
  r.post('/disconnect', admin, validate(noBody), c.disconnect);
  r.get('/webhook', meta, c.verifyWebhook);
  r.post('/webhook', meta, c.receiveWebhook);
  return r;
}

const notImplemented: RequestHandler = () => {
  throw new AppError('NOT_IMPLEMENTED', 'This route is not implemented yet', 501);
};
