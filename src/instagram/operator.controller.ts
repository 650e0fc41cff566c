import type { Request, Response } from 'express';
import type { Tenant } from '../http/tenant';
import type { Validated } from '../http/validate';
import type { Cursor } from '../chats/messages.repo';
import type { ConversationCursor } from '../chats/conversations.repo';
import type { OperatorService, SendInput } from './operator.service';

/** Glue only: validated input and the tenant in, the service's answer out in the envelope. */
export function operatorController(operator: OperatorService) {
  const tenant = (res: Response) => res.locals.tenant as Tenant;
  const input = (res: Response) => res.locals.validated as Validated;
  const userId = (res: Response) => String(input(res).params.userId);
  const ok = (res: Response, data: unknown) => res.json({ success: true, data });

  return {
    send: async (_req: Request, res: Response) =>
      ok(res, await operator.sendOperatorMessage(tenant(res), input(res).body as unknown as SendInput)),
    messages: async (_req: Request, res: Response) =>
      ok(
        res,
        await operator.messages(
          tenant(res),
          input(res).query as { userId?: string; limit: number; before?: Cursor },
        ),
      ),
    conversations: async (_req: Request, res: Response) =>
      ok(
        res,
        await operator.conversations(
          tenant(res),
          input(res).query as { limit: number; before?: ConversationCursor },
        ),
      ),
    pause: async (_req: Request, res: Response) =>
      ok(res, await operator.pause(tenant(res), userId(res), Number(input(res).body.minutes))),
    resume: async (_req: Request, res: Response) => ok(res, await operator.resume(tenant(res), userId(res))),
  };
}
