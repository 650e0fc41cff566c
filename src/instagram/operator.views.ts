import type { ConversationRow } from '../chats/conversations.repo';
import type { MessageRow } from '../chats/messages.repo';
import { windowState } from './messaging-window';

/** The shapes `/messages` and `/conversations` answer with (contract §3), from the repositories' rows. */

export function toMessageItem(r: MessageRow, username: string | undefined) {
  return {
    messageId: r.messageId,
    chatId: r.chatId,
    userId: r.userId,
    username: username ?? null,
    role: r.role,
    content: r.content ?? '',
    attachments: r.attachments ?? [],
    timestamp: r.timestamp,
    status: r.status,
  };
}

export type ConversationItem = ReturnType<typeof toConversationItem>;

/** A row created by a pause alone (no turn yet) has no last message: those fields are null. */
export function toConversationItem(r: Partial<ConversationRow> & { userId: string }, now = Date.now()) {
  const window = windowState(r.lastInboundAt, now);
  const paused = r.aiPausedUntil && r.aiPausedUntil.getTime() > now ? r.aiPausedUntil : null;
  return {
    userId: r.userId,
    username: r.username ?? null,
    lastMessage: r.lastMessage ?? null,
    lastMessageRole: r.lastMessageRole ?? null,
    lastMessageAt: r.lastMessageAt ?? null,
    lastInboundAt: r.lastInboundAt ?? null,
    windowOpen: window.open,
    windowExpiresAt: window.expiresAt,
    messageCount: r.messageCount ?? 0,
    aiPausedUntil: paused,
  };
}
