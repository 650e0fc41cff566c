import type { Connection } from 'mongoose';
import { canAccessSubaccount, type Principal } from '../http/auth';
import { TenantDatabases } from '../db/tenant-db';
import { RetellClient } from '../retell/retell.client';
import { findActiveAgent } from './chat-agents.repo';
import { findActiveSubaccount } from './subaccounts.repo';
import type { ChatAgent, Platform, Subaccount } from './platform';

/** The default platform: the contract's collections in the platform database, one Retell key for all. */
export class MongoPlatform implements Platform {
  private readonly tenants: TenantDatabases;

  constructor(
    private readonly platformDb: Connection,
    private readonly retell: RetellClient,
  ) {
    this.tenants = new TenantDatabases(platformDb);
  }

  canAccess(principal: Principal, subaccountId: string): boolean {
    return canAccessSubaccount(principal, subaccountId);
  }

  findSubaccount(subaccountId: string): Promise<Subaccount | undefined> {
    return findActiveSubaccount(this.platformDb, subaccountId);
  }

  subaccountDb(subaccount: Subaccount): Promise<Connection> {
    return this.tenants.get(subaccount.id, subaccount.databaseName, subaccount.mongodbUri);
  }

  findAgent(db: Connection, agentId: string): Promise<ChatAgent | undefined> {
    return findActiveAgent(db, agentId);
  }

  retellFor(_subaccount: Subaccount): RetellClient {
    return this.retell;
  }

  close(): Promise<void> {
    return this.tenants.close();
  }
}
