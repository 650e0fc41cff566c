import type { Connection } from 'mongoose';
import type { Principal } from '../http/auth';
import type { RetellClient } from '../retell/retell.client';

export interface Subaccount {
  id: string;
  name: string;
  databaseName?: string;
  mongodbUri?: string;
}

export interface ChatAgent {
  agentId: string;
  name: string;
}

/**
 * Everything the connector needs from the platform around it, behind one small interface. The default
 * (`MongoPlatform`) reads the collections of the contract; a platform that keeps tenants in a tenant-manager
 * service supplies its own implementation without touching the features.
 */
export interface Platform {
  canAccess(principal: Principal, subaccountId: string): boolean;
  /** Active subaccount by id, or undefined (unknown, malformed id, or `isActive: false`). */
  findSubaccount(subaccountId: string): Promise<Subaccount | undefined>;
  subaccountDb(subaccount: Subaccount): Promise<Connection>;
  /** Active chat agent of the subaccount, or undefined. */
  findAgent(db: Connection, agentId: string): Promise<ChatAgent | undefined>;
  /** The Retell client that serves this subaccount (per-subaccount keys plug in here). */
  retellFor(subaccount: Subaccount): RetellClient;
  close(): Promise<void>;
}
