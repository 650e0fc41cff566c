import type { Connection } from 'mongoose';
import { ChatsRepo, type ChatTurn } from './chats.repo';
import { ConversationsRepo } from './conversations.repo';
import { MessagesRepo } from './messages.repo';

/**
 * Writes one turn everywhere it belongs: appended to the chat document (the platform's record), a row in
 * the messages index, and the conversation summary. Each step is idempotent by message_id, so a retry
 * after a crash completes what was missing and adds nothing twice.
 */
export class TurnRecorder {
  constructor(
    readonly chats: ChatsRepo,
    readonly messages: MessagesRepo,
    readonly conversations: ConversationsRepo,
  ) {}

  async record(
    db: Connection,
    t: { agentId: string; userId: string; chatId: string; turn: ChatTurn },
  ): Promise<void> {
    const { turn } = t;
    await this.chats.appendTurn(db, t.chatId, turn);
    const at = new Date(turn.created_timestamp);
    const inserted = await this.messages.insert(db, {
      agentId: t.agentId,
      userId: t.userId,
      chatId: t.chatId,
      messageId: turn.message_id,
      role: turn.role,
      content: turn.content,
      attachments: turn.attachments ?? [],
      timestamp: at,
      status: turn.role === 'user' ? 'received' : (turn.delivery_status ?? 'sent'),
      ...(turn.instagram_mid ? { instagramMid: turn.instagram_mid } : {}),
      ...(turn.delivery_error ? { error: turn.delivery_error } : {}),
    });
    if (inserted) {
      const text = turn.content || (turn.attachments?.length ? `[${turn.attachments[0]!.type}]` : '');
      await this.conversations.recordTurn(db, t.agentId, t.userId, { role: turn.role, text, at });
    }
  }
}
