import type { Connection } from 'mongoose';
import { canAccessSubaccount, type Principal } from '../http/auth';
import { TenantDatabases } from '../db/tenant-db';
import { TtlCache } from '../lib/ttl-cache';
import { RetellClient } from '../retell/retell.client';
import { findActiveAgent } from './chat-agents.repo';
import { findActiveSubaccount } from './subaccounts.repo';
import type { ChatAgent, Platform, Subaccount } from './platform';

/**
 * The default platform: the contract's collections in the platform database, one Retell key for all.
 * Active subaccounts and agents are cached for `TENANT_CACHE_MS` (found ones only: a subaccount or agent
 * created a moment ago is never reported missing); a deactivation is seen within that time.
 */
export const TENANT_CACHE_MS = 5_000;

export class MongoPlatform implements Platform {
  private readonly tenants: TenantDatabases;
  private readonly subaccounts = new TtlCache<Subaccount>(TENANT_CACHE_MS);
  private readonly agents = new TtlCache<ChatAgent>(TENANT_CACHE_MS);

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
    return this.subaccounts.getOrLoad(subaccountId, () =>
      findActiveSubaccount(this.platformDb, subaccountId),
    );
  }

  subaccountDb(subaccount: Subaccount): Promise<Connection> {
    return this.tenants.get(subaccount.id, subaccount.databaseName, subaccount.mongodbUri);
  }

  findAgent(db: Connection, agentId: string): Promise<ChatAgent | undefined> {
    const key = `${db.host}:${db.port}/${db.name}\u0000${agentId}`;
    return this.agents.getOrLoad(key, () => findActiveAgent(db, agentId));
  }

  retellFor(_subaccount: Subaccount): RetellClient {
    return this.retell;
  }

  close(): Promise<void> {
    return this.tenants.close();
  }
}
