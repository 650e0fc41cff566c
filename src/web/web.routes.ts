import { Router } from 'express';

/**
 * Pages served by the connector for people: the connect page (for subaccount admins) and the API reference.
 * Mounted at the root by app.ts.
 */
export function webRouter(): Router {
  const r = Router();
  return r;
}
