import type { RequestHandler } from 'express';
import type { Connection } from 'mongoose';
import { AppError } from './app-error';
import type { Principal } from './auth';
import { logContext } from '../lib/logger';
import type { ChatAgent, Platform, Subaccount } from '../platform/platform';

/** The tenant a request acts on, resolved once per request before any handler. */
export interface Tenant {
  subaccount: Subaccount;
  db: Connection;
  agent: ChatAgent;
}

/** 403 before 404: a caller without access to a subaccount learns nothing about whether it exists. */
export function requireSubaccountAccess(platform: Platform): RequestHandler {
  return (req, res, next) => {
    const principal = res.locals.principal as Principal;
    if (!platform.canAccess(principal, String(req.params.subaccountId))) {
      return next(new AppError('FORBIDDEN', 'No access to this subaccount', 403));
    }
    next();
  };
}

export function resolveTenant(platform: Platform): RequestHandler {
  return async (req, res, next) => {
    const subaccountId = String(req.params.subaccountId);
    const agentId = String(req.params.agentId);
    const subaccount = await platform.findSubaccount(subaccountId);
    if (!subaccount) throw new AppError('SUBACCOUNT_NOT_FOUND', 'Subaccount not found', 404);
    const db = await platform.subaccountDb(subaccount);
    const agent = await platform.findAgent(db, agentId);
    if (!agent) throw new AppError('AGENT_NOT_FOUND', 'Chat agent not found', 404);
    const store = logContext.getStore();
    if (store) Object.assign(store, { subaccountId, agentId });
    res.locals.tenant = { subaccount, db, agent } satisfies Tenant;
    next();
  };
}
