import type { Connection } from 'mongoose';
import type { Config } from './config';
import type { Logger } from './lib/logger';
import { SecretBox } from './lib/crypto';
import { MongoPlatform } from './platform/mongo-platform';
import type { Platform } from './platform/platform';
import { RetellClient } from './retell/retell.client';
import { GraphClient } from './instagram/graph.client';
import { ConnectionRepo } from './instagram/connection.repo';
import { AccountRegistry } from './instagram/account-registry.repo';
import { ConnectionService } from './instagram/connection.service';
import { OutboundRepo } from './instagram/outbound.repo';
import { MessagingService } from './instagram/messaging.service';
import { WebhookService } from './instagram/webhook.service';
import { OperatorService } from './instagram/operator.service';
import { ChatsRepo } from './chats/chats.repo';
import { MessagesRepo } from './chats/messages.repo';
import { ConversationsRepo } from './chats/conversations.repo';
import { TurnRecorder } from './chats/turn-recorder';
import { InboxRepo, findEchoOf } from './inbound/inbound-event.repo';
import { InboundWorker, type WorkerOptions } from './inbound/inbound.worker';
import { handleInboundEvent, type InboundDeps } from './inbound/handle-inbound-event';

/**
 * The composition root: every service built with its dependencies, in order, no container.
 * Tests build the same graph with their own config (simulator URLs, per-file databases) and overrides.
 */
export interface Deps {
  config: Config;
  logger: Logger;
  platformDb: Connection;
  platform: Platform;
  secrets: SecretBox;
  graph: GraphClient;
  connectionRepo: ConnectionRepo;
  registry: AccountRegistry;
  connections: ConnectionService;
  recorder: TurnRecorder;
  messaging: MessagingService;
  inbox: InboxRepo;
  inbound: InboundDeps;
  worker: InboundWorker;
  webhooks: WebhookService;
  operator: OperatorService;
}

export interface DepsOverrides {
  platform?: (platformDb: Connection, retell: RetellClient) => Platform;
  graph?: GraphClient;
  retell?: RetellClient;
  worker?: Partial<WorkerOptions>;
  /** How long an ambiguous send waits for its echo before it is sent again (default 15 s). */
  reconcileWindowMs?: number;
  /** First wait before an operator's part Meta took is recorded again after a failure (default 1 s). */
  recordRetryBaseMs?: number;
}

export function buildDeps(
  config: Config,
  logger: Logger,
  platformDb: Connection,
  o: DepsOverrides = {},
): Deps {
  const retell = o.retell ?? new RetellClient({ apiKey: config.retellApiKey, baseUrl: config.retellBaseUrl });
  const platform = o.platform?.(platformDb, retell) ?? new MongoPlatform(platformDb, retell);
  const secrets = new SecretBox(config.tokenEncryptionKey, config.tokenEncryptionKeyPrevious);
  const graph =
    o.graph ??
    new GraphClient({
      metaGraphUrl: config.metaGraphUrl,
      instagramGraphUrl: config.instagramGraphUrl,
      version: config.metaGraphVersion,
    });

  const connectionRepo = new ConnectionRepo(secrets);
  const registry = new AccountRegistry(platformDb);
  const connections = new ConnectionService({
    graph,
    connections: connectionRepo,
    registry,
    platform,
    secrets,
    logger,
    publicBaseUrl: config.publicBaseUrl,
    metaAppSecret: config.metaAppSecret,
  });

  const chats = new ChatsRepo();
  const conversations = new ConversationsRepo();
  const recorder = new TurnRecorder(chats, new MessagesRepo(), conversations);
  const outbound = new OutboundRepo();
  const inbox = new InboxRepo(platformDb);
  const messaging = new MessagingService({
    graph,
    outbound,
    recorder,
    connectionRepo,
    logger,
    findEcho: (threadKey, text, since) => findEchoOf(inbox, threadKey, text, since),
    reconcileWindowMs: o.reconcileWindowMs ?? 15_000,
  });

  const inbound: InboundDeps = {
    platform,
    connectionRepo,
    chats,
    conversations,
    recorder,
    outbound,
    messaging,
    graph,
    inbox,
    logger,
    chatSessionTtlMs: config.chatSessionTtlHours * 3_600_000,
    humanTakeoverMs: config.humanTakeoverMinutes * 60_000,
  };
  const operator = new OperatorService({
    messaging,
    connectionRepo,
    recorder,
    platform,
    logger,
    chatSessionTtlMs: inbound.chatSessionTtlMs,
    humanTakeoverMs: inbound.humanTakeoverMs,
    outbound,
    recordRetryBaseMs: o.recordRetryBaseMs ?? 1_000,
  });
  // Outbound notes live in each subaccount's database: swept in every one with a connected account.
  const sweepOutbound = async (olderThan: Date) => {
    let removed = 0;
    const subaccountIds = new Set((await registry.owners()).map((owner) => owner.subaccountId));
    for (const id of subaccountIds) {
      const subaccount = await platform.findSubaccount(id);
      if (subaccount) removed += await outbound.sweep(await platform.subaccountDb(subaccount), olderThan);
    }
    return removed;
  };
  const worker = new InboundWorker(
    inbox,
    (stored, ctx) => handleInboundEvent(inbound, stored, ctx),
    logger,
    { leaseMs: config.workerLeaseMs, ...o.worker },
    [sweepOutbound],
  );
  const webhooks = new WebhookService({
    connectionRepo,
    inbox,
    outbound,
    logger,
    metaAppSecret: config.metaAppSecret,
    requireSignature: config.nodeEnv === 'production' && !config.allowUnsignedWebhooks,
    onStored: (threadKeys) => worker.notify(threadKeys),
  });

  return {
    config,
    logger,
    platformDb,
    platform,
    secrets,
    graph,
    connectionRepo,
    registry,
    connections,
    recorder,
    messaging,
    inbox,
    inbound,
    worker,
    webhooks,
    operator,
  };
}

/** Stops what buildDeps started, in reverse order: the worker finishes what it holds first. */
export async function destroyDeps(deps: Deps): Promise<void> {
  await deps.worker.stop();
  await deps.platform.close();
}
