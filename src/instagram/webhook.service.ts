import { AppError } from '../http/app-error';
import type { Tenant } from '../http/tenant';
import type { Logger } from '../lib/logger';
import { threadKeyOf, type InboxRepo } from '../inbound/inbound-event.repo';
import { parseWebhookPayload } from '../inbound/inbound-event';
import type { ConnectionRepo } from './connection.repo';
import type { OutboundRepo } from './outbound.repo';
import { isValidSignature } from './webhook-signature';

export interface WebhookDeps {
  connectionRepo: ConnectionRepo;
  inbox: InboxRepo;
  outbound: Pick<OutboundRepo, 'sentHere'>;
  logger: Logger;
  metaAppSecret: string | undefined;
  /** Production refuses unsigned webhooks unless this is set. */
  requireSignature: boolean;
  /**
   * Called after events are stored, with their threads (agent × Instagram user), so an in-process worker
   * starts at once, and reads on under a lease it holds for one of them.
   */
  onStored(threadKeys: string[]): void;
}

/**
 * Webhook intake: verify, store, acknowledge. Nothing else happens before the 200 — the agent is asked
 * by the worker, after the events are durable, so Meta's 5-second budget never depends on Retell.
 */
export class WebhookService {
  constructor(private readonly d: WebhookDeps) {}

  /** Whether a delivery that cannot be verified (no app secret known) is refused. */
  get requiresSignature(): boolean {
    return this.d.requireSignature;
  }

  async receive(t: Tenant, rawBody: Buffer | undefined, signature: string | undefined, body: unknown) {
    const connection = await this.d.connectionRepo.find(t.db, t.agent.agentId);
    if (connection?.secretsUnreadable) {
      // Its own app secret may be among what cannot be opened: nothing here can tell a forged delivery from
      // Meta's. Refused, so Meta retries (perhaps on a process whose keys are right).
      throw new AppError(
        'WEBHOOK_SIGNATURE_INVALID',
        "The connection's secrets cannot be opened with the configured keys; deliveries cannot be verified",
        401,
      );
    }
    const secret = connection?.appSecret ?? this.d.metaAppSecret;
    if (secret) {
      if (!isValidSignature(rawBody, signature, secret)) {
        throw new AppError(
          'WEBHOOK_SIGNATURE_INVALID',
          'X-Hub-Signature-256 is missing or does not match',
          401,
        );
      }
    } else if (this.d.requireSignature && connection) {
      // Without a connection there is no secret to check with and nothing will be stored: a disconnected
      // account's deliveries are acknowledged below, or Meta would retry them (and may at length disable
      // the app's webhook, which other connected accounts share).
      throw new AppError(
        'WEBHOOK_SIGNATURE_INVALID',
        'No app secret is configured to verify webhooks (set META_APP_SECRET or connect with appSecret)',
        401,
      );
    }

    const parsed = parseWebhookPayload(body);
    if (!parsed.ok) throw AppError.validation([{ field: 'body', message: parsed.reason }]);
    if (parsed.skipped.length) this.d.logger.warn({ skipped: parsed.skipped }, 'webhook items skipped');
    // Disconnected: acknowledged (so Meta stops retrying) and dropped.
    if (!connection) return { received: parsed.events.length, stored: 0 };

    const ours = parsed.events.filter((e) => e.accountId === connection.instagramAccountId);
    // The echo of a message this process sent has nothing left to do: acknowledged, not stored (one
    // whose send is being recorded waits for that record first: OutboundRepo.sentHere).
    const own = await Promise.all(
      ours.map((e) => e.kind === 'echo' && !!e.mid && this.d.outbound.sentHere(t.agent.agentId, e.mid)),
    );
    const toStore = ours.filter((_, i) => !own[i]);
    const stored = await this.d.inbox.store(t.subaccount.id, t.agent.agentId, toStore);
    if (stored > 0)
      this.d.onStored(toStore.map((e) => threadKeyOf(t.subaccount.id, t.agent.agentId, e.userId)));
    // Debug: every delivery already has its access-log line (status, timing); this adds the counts.
    this.d.logger.debug(
      {
        received: parsed.events.length,
        foreign: parsed.events.length - ours.length,
        ownEchoes: ours.length - toStore.length,
        stored,
      },
      'webhook stored',
    );
    return { received: parsed.events.length, stored };
  }
}
