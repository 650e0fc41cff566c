import { Types, type Connection } from 'mongoose';

export interface SubaccountFixture {
  id: string;
  databaseName: string;
}

/** A subaccount in the platform's `subaccounts` collection; every test makes its own. */
export async function aSubaccount(
  platformDb: Connection,
  overrides: Partial<{ name: string; isActive: boolean; databaseName: string; mongodbUri: string }> = {},
): Promise<SubaccountFixture> {
  const _id = new Types.ObjectId();
  await platformDb
    .collection('subaccounts')
    .insertOne({ _id, name: `Sub ${_id.toHexString().slice(-6)}`, isActive: true, ...overrides });
  return { id: _id.toHexString(), databaseName: overrides.databaseName ?? `subaccount_${_id.toHexString()}` };
}

/** A chat agent in the subaccount's `chatagents` collection. */
export async function anAgent(
  platformDb: Connection,
  sub: SubaccountFixture,
  overrides: Partial<{ agentId: string; name: string; isActive: boolean }> = {},
): Promise<string> {
  const agentId = overrides.agentId ?? `agent_${new Types.ObjectId().toHexString()}`;
  await platformDb
    .useDb(sub.databaseName)
    .collection('chatagents')
    .insertOne({ agentId, name: 'Sales agent', isActive: true, ...overrides });
  return agentId;
}

export function igPath(subaccountId: string, agentId: string, route: string): string {
  return `/api/database/${subaccountId}/chat-agents/${agentId}/instagram/${route}`;
}
