import type { ConnectResult, DemoShop } from './demo-shop';

export interface BannerInfo {
  /** Where the connector answers locally (the printed links). */
  baseUrl: string;
  graphUrl: string;
  retellUrl: string;
  database: string;
  shop: DemoShop;
  connected: ConnectResult;
  jwt: string;
  interactive: boolean;
}

/** What the demo prints once it is ready: what is real, what is simulated, and where to click. */
export function banner(i: BannerInfo): string {
  const ids = `subaccountId=${i.shop.subaccountId}&agentId=${encodeURIComponent(i.shop.agentId)}`;
  const connectPage = `${i.baseUrl}/instagram/connect?${ids}&token=${i.jwt}`;
  const say = `${i.baseUrl}/demo/visitor/messages`;
  return [
    '',
    '════════ Instagram DM connector · DEMO ════════',
    'SIMULATED (on loopback, nothing leaves this machine):',
    `  SIMULATED Meta Graph API    ${i.graphUrl}  — no real Instagram involved`,
    `  SIMULATED Retell chat API   ${i.retellUrl}  — a canned sales assistant, no real AI`,
    'REAL (the product, exactly as `npm start` runs it):',
    `  Connector                   ${i.baseUrl}`,
    `  Database                    ${i.database}`,
    '',
    `Seeded: subaccount "Demo Shop" ${i.shop.subaccountId}, chat agent ${i.shop.agentId}`,
    `Connected @${i.shop.username} (simulated account ${i.shop.accountId}) through POST /connect:` +
      ` webhook subscription ${i.connected.webhookSubscription}, DM link ${i.connected.dmUrl}`,
    '',
    `super_admin JWT (12 h): ${i.jwt}`,
    `Connect page:  ${connectPage}`,
    `Webhook URL:   ${i.connected.webhookUrl}`,
    `Verify token:  ${i.connected.webhookVerificationToken}`,
    `Simulated Instagram token (to paste in the connect page): ${i.shop.accessToken}`,
    `API reader:    ${i.baseUrl}/docs`,
    '',
    'Play the visitor:',
    `  in a browser:  ${i.baseUrl}/demo/visitor`,
    `  with curl:     curl -s -X POST ${say} -H 'Content-Type: application/json' -d '{"text":"Do you ship to Canada?"}'`,
    `                 then GET ${say}?userId=<userId from the answer>`,
    ...(i.interactive ? ['  right here:    type a message and press Enter'] : []),
    'Stop with Ctrl+C.',
    '',
  ].join('\n');
}
