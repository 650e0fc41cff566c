import crypto from 'node:crypto';
import type { Tenant } from '../http/tenant';
import type { Logger } from '../lib/logger';
import type { Platform } from '../platform/platform';
import { turnId, type ChatTurn } from '../chats/chats.repo';
import { encodeCursor, type Cursor } from '../chats/messages.repo';
import type { TurnRecorder } from '../chats/turn-recorder';
import { encodeConversationCursor, type ConversationCursor } from '../chats/conversations.repo';
import { ChatSessions } from '../inbound/chat-sessions';
import type { ConnectionRepo, InstagramConnection } from './connection.repo';
import type { OutboundRepo } from './outbound.repo';
import type { AttachmentType, OutgoingMessage } from './graph.client';
import { DeliveredButUnrecorded, type MessagingService } from './messaging.service';
import { GraphError } from './graph.errors';
import { splitMessage } from './message-split';
import { windowState } from './messaging-window';
import { toConversationItem, toMessageItem } from './operator.views';
import { authFailed, deliveredNotRecorded, notConnected, sendFailure, windowClosed } from './operator.errors';

export interface OperatorDeps {
  messaging: MessagingService;
  connectionRepo: ConnectionRepo;
  recorder: TurnRecorder;
  platform: Platform;
  logger: Logger;
  chatSessionTtlMs: number;
  /** How long a person answering pauses the AI for that user; 0 disables the takeover. */
  humanTakeoverMs: number;
  outbound: OutboundRepo;
  /** First wait before recording again a part Meta took but the database refused; doubled each time. */
  recordRetryBaseMs: number;
}

/** Attempts to record again a part Meta took (waits of 1, 2, 4, 8, 16, 32 × recordRetryBaseMs). */
const RECORD_ATTEMPTS = 6;

export interface SendInput {
  to: string;
  message?: string;
  attachmentUrl?: string;
  attachmentType?: AttachmentType;
}

/**
 * People in the loop: an operator's message to one Instagram user, the inbox views (`/messages`,
 * `/conversations`) and the human-takeover switch. Knows tenants and inputs, never req/res.
 */
export class OperatorService {
  constructor(private readonly d: OperatorDeps) {}

  /**
   * Connected → window open → split → send each part (text first, attachment last) → record each as an
   * `operator` turn → the AI steps back for the takeover period. A failure after some parts went out keeps
   * those parts recorded and names them in the error's `details.sentMessageIds`. A part Meta took that could
   * not be recorded answers 500 with `details.delivered` and every mid that went out (`recordLater`).
   */
  async sendOperatorMessage(t: Tenant, input: SendInput) {
    const connection = await this.assertConnected(t);
    const lastInboundAt = await this.assertWindowOpen(t, input.to);
    const batch = crypto.randomUUID();
    const messageIds: string[] = [];
    const instagramMessageIds: string[] = [];
    let chatId: string | undefined;
    const recordPart = async (key: string, message: OutgoingMessage, mid: string) => {
      chatId ??= await this.chatFor(t, connection, input.to);
      return this.record(t, chatId, input.to, key, message, mid);
    };
    try {
      for (const [i, message] of outgoingParts(input).entries()) {
        const key = `operator:${batch}:${i}`;
        let mid: string | undefined;
        try {
          mid = await this.sendPart(t, connection, input.to, message, key);
          instagramMessageIds.push(mid);
          messageIds.push(await recordPart(key, message, mid));
        } catch (err) {
          // If Meta took it (and completing its note or recording it failed), it is recorded again later.
          const delivered = err instanceof DeliveredButUnrecorded ? err.mid : mid;
          if (delivered === undefined) throw err;
          this.recordLater(t, input.to, key, delivered, () => recordPart(key, message, delivered));
          throw err instanceof DeliveredButUnrecorded ? err : new DeliveredButUnrecorded(delivered, err);
        }
      }
    } catch (err) {
      if (err instanceof DeliveredButUnrecorded) {
        if (!instagramMessageIds.includes(err.mid)) instagramMessageIds.push(err.mid);
        this.d.logger.error(
          { err: err.cause, delivered: instagramMessageIds.length },
          'an operator message reached Instagram but was not recorded; recording it again in the background',
        );
        throw deliveredNotRecorded(instagramMessageIds, messageIds);
      }
      if (instagramMessageIds.length > 0) await this.takeOver(t, input.to);
      if (err instanceof GraphError) throw sendFailure(err, lastInboundAt, messageIds);
      throw err;
    }
    await this.takeOver(t, input.to);
    return { messageIds, instagramMessageIds, recipientId: input.to, chatId: chatId! };
  }

  /**
   * A part Meta took could not be recorded (the database failed): recorded again from here, a few times
   * over about a minute (the same message_id, so a write that did land is not repeated), and the AI paused.
   * Its echo cannot do it: it is ours and dropped. Lost with the process; logged when it gives up.
   */
  private recordLater(
    t: Tenant,
    userId: string,
    key: string,
    mid: string,
    recordPart: () => Promise<unknown>,
  ): void {
    const attempt = async (n: number): Promise<void> => {
      await new Promise((r) => setTimeout(r, this.d.recordRetryBaseMs * 2 ** n).unref());
      try {
        await this.d.outbound.complete(t.db, t.agent.agentId, key, { status: 'sent', mid });
        await recordPart();
        await this.takeOver(t, userId);
        this.d.logger.info({ mid }, 'an operator message not recorded at first is recorded');
      } catch (err) {
        if (n + 1 < RECORD_ATTEMPTS) return attempt(n + 1);
        this.d.logger.error(
          { err, mid, messageId: turnId(key) },
          'an operator message that reached Instagram could not be recorded',
        );
      }
    };
    void attempt(0);
  }

  /**
   * Newest first (record order). Each turn carries the username known when it was recorded; for a user
   * whose turns on the page carry none (the first exchange, before the profile was fetched), it is read
   * from the user's conversation row, by `_id`, once per user.
   */
  async messages(t: Tenant, q: { userId?: string; limit: number; before?: Cursor }) {
    const agentId = t.agent.agentId;
    const { messages, conversations } = this.d.recorder;
    const { rows, next } = await messages.page(t.db, agentId, q);
    const names = new Map<string, string | undefined>();
    for (const r of rows) if (r.username) names.set(r.userId, r.username);
    const unnamed = [...new Set(rows.map((r) => r.userId))].filter((u) => !names.has(u));
    const summaries = await Promise.all(unnamed.map((u) => conversations.get(t.db, agentId, u)));
    unnamed.forEach((u, i) => names.set(u, summaries[i]?.username));
    return {
      messages: rows.map((r) => toMessageItem(r, names.get(r.userId))),
      nextCursor: next ? encodeCursor(next) : null,
    };
  }

  /** One row per Instagram user, most recent first, with the 24-hour window and pause state. */
  async conversations(t: Tenant, q: { limit: number; before?: ConversationCursor }) {
    const { rows, next } = await this.d.recorder.conversations.page(t.db, t.agent.agentId, q);
    const now = Date.now();
    return {
      conversations: rows.map((r) => toConversationItem(r, now)),
      nextCursor: next ? encodeConversationCursor(next) : null,
    };
  }

  /** Pauses the AI for this user for exactly `minutes` (replacing any pause, longer or shorter). */
  async pause(t: Tenant, userId: string, minutes: number) {
    const until = new Date(Date.now() + minutes * 60_000);
    await this.d.recorder.conversations.setPause(t.db, t.agent.agentId, userId, until);
    return this.conversation(t, userId);
  }

  /** Hands the thread back to the AI at once: the next DM is answered. */
  async resume(t: Tenant, userId: string) {
    await this.d.recorder.conversations.setPause(t.db, t.agent.agentId, userId, undefined);
    return this.conversation(t, userId);
  }

  private async conversation(t: Tenant, userId: string) {
    const row = await this.d.recorder.conversations.get(t.db, t.agent.agentId, userId);
    return toConversationItem(row ?? { userId });
  }

  private async assertConnected(t: Tenant): Promise<InstagramConnection> {
    const c = await this.d.connectionRepo.find(t.db, t.agent.agentId);
    if (!c) throw notConnected();
    if (c.secretsUnreadable)
      throw authFailed('The stored token cannot be opened with the configured encryption keys');
    // Meta said 190 before: every send would fail the same way until the account is connected again.
    if (c.tokenStatus === 'invalid') throw authFailed('Instagram no longer accepts the connection token');
    return c;
  }

  /** The window is computed from the stored inbound turns (the summary keeps their latest time). */
  private async assertWindowOpen(t: Tenant, userId: string): Promise<Date | null> {
    const agentId = t.agent.agentId;
    const row = await this.d.recorder.conversations.get(t.db, agentId, userId);
    const last = row?.lastInboundAt;
    if (!windowState(last).open) throw windowClosed(last ?? null);
    return last ?? null;
  }

  /**
   * One Graph call with its bookkeeping (MessagingService.sendNoted). An unknown outcome is marked failed,
   * not uncertain: should it have been delivered after all, its late echo is recorded as an operator turn
   * instead of being claimed as ours and dropped.
   */
  private sendPart(
    t: Tenant,
    connection: InstagramConnection,
    userId: string,
    message: OutgoingMessage,
    key: string,
  ): Promise<string> {
    return this.d.messaging.sendNoted(t.db, connection, {
      key,
      agentId: t.agent.agentId,
      userId,
      message,
      ifUnknown: 'failed',
    });
  }

  /** The thread's ongoing chat, or a chat document of its own when none is ongoing. */
  private chatFor(t: Tenant, connection: InstagramConnection, userId: string): Promise<string> {
    const sessions = new ChatSessions(
      {
        chats: this.d.recorder.chats,
        conversations: this.d.recorder.conversations,
        logger: this.d.logger,
        chatSessionTtlMs: this.d.chatSessionTtlMs,
      },
      this.d.platform.retellFor(t.subaccount),
    );
    return sessions.currentForOperator({
      subaccount: t.subaccount,
      db: t.db,
      connection,
      agentId: t.agent.agentId,
      userId,
    });
  }

  private async record(
    t: Tenant,
    chatId: string,
    userId: string,
    key: string,
    message: OutgoingMessage,
    mid: string,
  ): Promise<string> {
    const turn: ChatTurn = {
      message_id: turnId(key),
      role: 'operator',
      content: 'text' in message ? message.text : '',
      created_timestamp: Date.now(),
      instagram_mid: mid,
      attachments: 'text' in message ? [] : [{ type: message.attachment.type, url: message.attachment.url }],
      delivery_status: 'sent',
    };
    await this.d.recorder.record(t.db, { agentId: t.agent.agentId, userId, chatId, turn });
    return turn.message_id;
  }

  /** A person answered: the AI steps back (never shortening a longer pause already set). */
  private async takeOver(t: Tenant, userId: string): Promise<void> {
    if (this.d.humanTakeoverMs <= 0) return;
    const until = new Date(Date.now() + this.d.humanTakeoverMs);
    await this.d.recorder.conversations.extendPause(t.db, t.agent.agentId, userId, until);
  }
}

/** Text split to Instagram's limit (MAX_MESSAGE_BYTES), in order; the attachment, if any, last. */
function outgoingParts(input: SendInput): OutgoingMessage[] {
  const parts: OutgoingMessage[] = splitMessage(input.message ?? '').map((text) => ({ text }));
  if (input.attachmentUrl && input.attachmentType)
    parts.push({ attachment: { type: input.attachmentType, url: input.attachmentUrl } });
  return parts;
}
