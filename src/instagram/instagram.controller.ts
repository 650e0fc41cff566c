import type { Request, Response } from 'express';
import type { Tenant } from '../http/tenant';
import type { Validated } from '../http/validate';
import { AppError } from '../http/app-error';
import type { ConnectionService, ConnectInput } from './connection.service';
import type { WebhookService } from './webhook.service';

/** Glue only: take validated input and the tenant, call a service, answer in the envelope. */
export function instagramController(connections: ConnectionService, webhooks: WebhookService) {
  const tenant = (res: Response) => res.locals.tenant as Tenant;
  const input = (res: Response) => res.locals.validated as Validated;
  const ok = (res: Response, data: unknown) => res.json({ success: true, data });

  return {
    connect: async (_req: Request, res: Response) =>
      ok(res, await connections.connect(tenant(res), input(res).body as unknown as ConnectInput)),
    status: async (_req: Request, res: Response) => ok(res, await connections.status(tenant(res))),
    disconnect: async (_req: Request, res: Response) => ok(res, await connections.disconnect(tenant(res))),
    verifyWebhook: async (req: Request, res: Response) => {
      const q = req.query;
      const challenge = await connections.verifyHandshake(
        tenant(res),
        q['hub.mode'],
        q['hub.verify_token'],
        q['hub.challenge'],
      );
      if (challenge === undefined)
        throw new AppError('WEBHOOK_VERIFICATION_FAILED', 'Webhook verification failed', 403);
      res.status(200).type('text/plain').send(challenge);
    },
    receiveWebhook: async (req: Request, res: Response) => {
      const raw = (req as Request & { rawBody?: Buffer }).rawBody;
      ok(res, await webhooks.receive(tenant(res), raw, req.get('x-hub-signature-256'), req.body));
    },
  };
}
