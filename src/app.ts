import express, { type Express, type Router } from 'express';
import helmet from 'helmet';
import { withTimeout } from './lib/with-timeout';
import type { Deps } from './deps';
import { errorHandler, notFoundHandler } from './http/error-handler';
import { requestContext } from './http/request-context';
import { AppError } from './http/app-error';
import { instagramRouter } from './instagram/instagram.routes';
import { webRouter } from './web/web.routes';

export const INSTAGRAM_BASE_PATH = '/api/database/:subaccountId/chat-agents/:agentId/instagram';

/**
 * Builds the HTTP app from its dependencies. Never listens: main.ts owns the process. `extraRouters` are
 * mounted after the product's own routes (only the demo passes any).
 */
export function createApp(deps: Deps, extraRouters: Router[] = []): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 1);
  app.use(helmet());
  app.use(requestContext(deps.logger));
  app.use(
    express.json({
      limit: '1mb',
      // Keep the exact bytes: webhook signatures are computed over them, not over re-serialised JSON.
      verify: (req, _res, buf) => {
        (req as express.Request & { rawBody?: Buffer }).rawBody = buf;
      },
    }),
  );
  // Any other body is read too, as bytes, so the 1 MB limit (413) holds whatever its Content-Type; a route
  // then refuses it as not JSON (validate).
  app.use(express.raw({ type: () => true, limit: '1mb' }));

  app.get('/healthz', (_req, res) => {
    res.json({ success: true, data: { status: 'ok' } });
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await withTimeout(deps.platformDb.db!.admin().ping(), 2000);
      res.json({ success: true, data: { status: 'ready' } });
    } catch {
      throw new AppError('SERVICE_UNAVAILABLE', 'The database is not reachable', 503);
    }
  });

  app.use(INSTAGRAM_BASE_PATH, instagramRouter(deps));
  app.use(webRouter());
  for (const router of extraRouters) app.use(router);

  app.use(notFoundHandler);
  app.use(errorHandler(deps.logger));
  return app;
}
