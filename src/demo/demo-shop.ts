import crypto from 'node:crypto';
import { Types, type Connection } from 'mongoose';
import type { GraphSimulator } from '../simulators/graph.simulator';

/** The demo's tenant: one subaccount, one chat agent, one (simulated) Instagram account. */
export interface DemoShop {
  subaccountId: string;
  databaseName: string;
  agentId: string;
  accountId: string;
  username: string;
  /** The simulated Instagram-Login token, valid only against the Graph simulator. */
  accessToken: string;
  /** Signs the simulated webhooks, so the connector checks signatures as it does in production. */
  appSecret: string;
}

/** Fixed ids (`64656d6f` is "demo"), so the printed URLs stay the same from one run to the next. */
export const DEMO_SUBACCOUNT_ID = '64656d6f0000000000000001';
export const DEMO_AGENT_ID = 'agent_demo_sales_assistant';
const DEMO_ACCOUNT_ID = '17841400000000042';

/**
 * Upserts the platform's side (the connector only reads these collections; the platform owns them) and
 * registers the account's token in the Graph simulator, as if the admin had created it in Meta's console.
 */
export async function seedDemoShop(platformDb: Connection, graph: GraphSimulator): Promise<DemoShop> {
  const _id = new Types.ObjectId(DEMO_SUBACCOUNT_ID);
  const databaseName = `subaccount_${DEMO_SUBACCOUNT_ID}`;
  await platformDb
    .collection('subaccounts')
    .updateOne({ _id }, { $set: { name: 'Demo Shop', isActive: true } }, { upsert: true });
  await platformDb
    .useDb(databaseName)
    .collection('chatagents')
    .updateOne(
      { agentId: DEMO_AGENT_ID },
      { $set: { name: 'Demo Shop sales assistant', isActive: true } },
      { upsert: true },
    );

  const shop: DemoShop = {
    subaccountId: DEMO_SUBACCOUNT_ID,
    databaseName,
    agentId: DEMO_AGENT_ID,
    accountId: DEMO_ACCOUNT_ID,
    username: 'demo_shop',
    accessToken: `IGAAdemo${crypto.randomBytes(20).toString('hex')}`,
    appSecret: crypto.randomBytes(16).toString('hex'),
  };
  graph.accounts.set(shop.accessToken, {
    id: shop.accountId,
    username: shop.username,
    name: 'Demo Shop',
    appScopedId: `99${shop.accountId}`,
  });
  return shop;
}

export interface ConnectResult {
  webhookUrl: string;
  webhookVerificationToken: string;
  webhookSubscription: string;
  dmUrl: string;
}

/** Connects the account the way an admin does: through the connector's real `POST /connect`. */
export async function connectDemoShop(baseUrl: string, jwt: string, shop: DemoShop): Promise<ConnectResult> {
  const res = await fetch(`${baseUrl}${igPath(shop, 'connect')}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ accessToken: shop.accessToken, appSecret: shop.appSecret }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await res.json()) as { success: boolean; data?: ConnectResult; error?: { code: string } };
  if (!res.ok || !body.data) throw new Error(`demo connect failed: ${res.status} ${body.error?.code ?? ''}`);
  return body.data;
}

export function igPath(shop: DemoShop, route: string): string {
  return `/api/database/${shop.subaccountId}/chat-agents/${shop.agentId}/instagram/${route}`;
}
