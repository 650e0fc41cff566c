import crypto from 'node:crypto';
import type { Connection } from 'mongoose';
import { AppError } from '../http/app-error';
import type { Tenant } from '../http/tenant';
import type { Logger } from '../lib/logger';
import type { SecretBox } from '../lib/crypto';
import type { Platform } from '../platform/platform';
import type { AccountOwner, AccountRegistry } from './account-registry.repo';
import type { ConnectionRepo, InstagramConnection } from './connection.repo';
import { GraphError } from './graph.errors';
import { tokenKindOf, type GraphClient } from './graph.client';
import { instagramLinks, qrCodeDataUrl } from './qr-code';

export interface ConnectInput {
  accessToken: string;
  instagramAccountId?: string;
  pageId?: string;
  webhookVerificationToken?: string;
  appSecret?: string;
}

export interface ConnectionServiceDeps {
  graph: GraphClient;
  connections: ConnectionRepo;
  registry: AccountRegistry;
  platform: Platform;
  secrets: SecretBox;
  logger: Logger;
  publicBaseUrl: string;
  metaAppSecret: string | undefined;
}

/** Connect, status, disconnect and the webhook handshake: the life of one agent's Instagram connection. */
export class ConnectionService {
  constructor(private readonly d: ConnectionServiceDeps) {}

  webhookUrl(t: Tenant): string {
    return `${this.d.publicBaseUrl}/api/database/${t.subaccount.id}/chat-agents/${encodeURIComponent(t.agent.agentId)}/instagram/webhook`;
  }

  /** Check with Meta → claim the account → store (sealed) → subscribe webhooks → answer with the QR code. */
  async connect(t: Tenant, input: ConnectInput) {
    const tokenKind = tokenKindOf(input.accessToken);
    const account = await this.checkToken(input.accessToken, input.instagramAccountId);
    if (
      tokenKind === 'instagram' &&
      input.instagramAccountId &&
      input.instagramAccountId !== account.instagramAccountId
    ) {
      throw new AppError(
        'INSTAGRAM_AUTH_FAILED',
        'The token belongs to another Instagram account than instagramAccountId',
        422,
      );
    }
    const owner: AccountOwner = { subaccountId: t.subaccount.id, agentId: t.agent.agentId };
    const registryClaimId = await this.claim(account.instagramAccountId, owner);

    const previous = await this.d.connections.find(t.db, t.agent.agentId);
    const verifyToken = input.webhookVerificationToken ?? crypto.randomBytes(24).toString('base64url');
    const connection: InstagramConnection = {
      agentId: t.agent.agentId,
      instagramAccountId: account.instagramAccountId,
      username: account.username,
      name: account.name,
      profilePictureUrl: account.profilePictureUrl,
      pageId: input.pageId,
      tokenKind,
      accessToken: input.accessToken,
      appSecret: input.appSecret,
      verifyTokenHash: this.d.secrets.keyedHash(verifyToken),
      tokenStatus: 'valid',
      webhookSubscription: 'failed',
      connectedAt: new Date(),
      registryClaimId,
    };
    await this.d.connections.replace(t.db, connection);
    if (previous && previous.instagramAccountId !== account.instagramAccountId) {
      // Frees only the claim the previous connection was made under: if a connect that overlaps this one
      // has claimed that account again meanwhile, its claim stands (AccountRegistry).
      await this.d.registry.release(previous.instagramAccountId, owner, previous.registryClaimId);
    }

    const subscription = await this.subscribe(input.accessToken, input.pageId);
    // Not a second replace: a disconnect (or another connect) that completed while Meta was being asked
    // stands; this connect's answer then describes a connection already gone, as the admin asked later.
    const kept = await this.d.connections.setSubscription(t.db, connection, subscription);
    this.d.logger.info(
      {
        instagramAccountId: account.instagramAccountId,
        tokenKind,
        webhookSubscription: subscription.webhookSubscription,
        ...(kept ? {} : { supersededMeanwhile: true }),
      },
      'instagram connected',
    );

    const links = instagramLinks(account.username);
    return {
      qrCodeDataUrl: qrCodeDataUrl(links.dmUrl),
      ...links,
      username: account.username,
      instagramAccountId: account.instagramAccountId,
      webhookUrl: this.webhookUrl(t),
      webhookVerificationToken: verifyToken,
      webhookSubscription: subscription.webhookSubscription,
      ...(subscription.webhookSubscriptionError
        ? { webhookSubscriptionError: subscription.webhookSubscriptionError }
        : {}),
    };
  }

  async status(t: Tenant) {
    const c = await this.d.connections.find(t.db, t.agent.agentId);
    if (!c) return { isConnected: false as const };
    const links = instagramLinks(c.username);
    return {
      isConnected: true as const,
      username: c.username,
      instagramAccountId: c.instagramAccountId,
      pageId: c.pageId ?? null,
      connectedAt: c.connectedAt,
      webhookUrl: this.webhookUrl(t),
      webhookVerifiedAt: c.webhookVerifiedAt ?? null,
      lastEventAt: c.lastEventAt ?? null,
      signatureVerification: Boolean(c.appSecret ?? this.d.metaAppSecret),
      webhookSubscription: c.webhookSubscription,
      tokenStatus: c.tokenStatus,
      qrCodeDataUrl: qrCodeDataUrl(links.dmUrl),
      ...links,
    };
  }

  /** Forgets the token (the document is deleted), frees the account, unsubscribes at Meta if it can. */
  async disconnect(t: Tenant) {
    const c = await this.d.connections.find(t.db, t.agent.agentId);
    if (c) {
      if (c.secretsUnreadable)
        this.d.logger.warn(
          'the stored token cannot be opened with the configured keys: not unsubscribed at Meta',
        );
      else
        await this.d.graph.unsubscribeWebhooks(c.accessToken, c.pageId).catch((err: unknown) => {
          this.d.logger.warn(
            { code: (err as GraphError).code, kind: (err as GraphError).kind },
            'unsubscribe at Meta failed; continuing',
          );
        });
      await this.d.connections.delete(t.db, t.agent.agentId);
      await this.d.registry.release(
        c.instagramAccountId,
        { subaccountId: t.subaccount.id, agentId: t.agent.agentId },
        c.registryClaimId,
      );
      this.d.logger.info({ instagramAccountId: c.instagramAccountId }, 'instagram disconnected');
    }
    return { isConnected: false as const };
  }

  /** Meta's verification handshake: the challenge when the verify token matches, otherwise undefined. */
  async verifyHandshake(
    t: Tenant,
    mode: unknown,
    token: unknown,
    challenge: unknown,
  ): Promise<string | undefined> {
    if (mode !== 'subscribe' || typeof token !== 'string' || typeof challenge !== 'string') return undefined;
    const c = await this.d.connections.find(t.db, t.agent.agentId);
    if (!c || !this.d.secrets.matchesKeyedHash(token, c.verifyTokenHash)) return undefined;
    await this.d.connections.update(t.db, t.agent.agentId, { webhookVerifiedAt: new Date() });
    return challenge;
  }

  private async checkToken(token: string, instagramAccountId?: string) {
    try {
      return await this.d.graph.getAccount(token, instagramAccountId);
    } catch (err) {
      throw toConnectError(err);
    }
  }

  /** The account claimed for the owner (its claim id), or 409 when another agent holds it. */
  private async claim(accountId: string, owner: AccountOwner): Promise<string> {
    const result = await this.d.registry.claim(accountId, owner);
    if (result.claimed) return result.claimId;
    // A claim whose holder has no connection for the account is a leftover (crash between claim and save).
    if (!(await this.holderStillConnected(accountId, result.heldBy))) {
      const moved = await this.d.registry.takeOver(accountId, result.heldBy, owner);
      if (moved) return moved.claimId;
    }
    throw new AppError(
      'INSTAGRAM_ACCOUNT_IN_USE',
      'This Instagram account is already connected to another agent',
      409,
    );
  }

  private async holderStillConnected(accountId: string, holder: AccountOwner): Promise<boolean> {
    const sub = await this.d.platform.findSubaccount(holder.subaccountId);
    if (!sub) return false;
    const db: Connection = await this.d.platform.subaccountDb(sub);
    const c = await this.d.connections.find(db, holder.agentId);
    return c?.instagramAccountId === accountId;
  }

  private async subscribe(token: string, pageId?: string) {
    try {
      await this.d.graph.subscribeWebhooks(token, pageId);
      return { webhookSubscription: 'subscribed' as const, webhookSubscriptionError: undefined };
    } catch (err) {
      const message = err instanceof GraphError ? err.metaMessage : 'Meta could not be reached';
      return { webhookSubscription: 'failed' as const, webhookSubscriptionError: message };
    }
  }
}

/** Meta refusing the token is the admin's problem (422); Meta not answering is ours (502). */
function toConnectError(err: unknown): AppError {
  if (err instanceof GraphError) {
    const details = { code: err.code, error_subcode: err.subcode, fbtrace_id: err.fbtraceId };
    if (err.kind === 'unreachable' || err.kind === 'transient' || err.kind === 'rate_limit') {
      return new AppError(
        'INSTAGRAM_UNAVAILABLE',
        'Instagram could not be reached; try again shortly',
        502,
        details,
      );
    }
    return new AppError(
      'INSTAGRAM_AUTH_FAILED',
      err.metaMessage || 'Instagram refused the token',
      422,
      details,
    );
  }
  throw err;
}
