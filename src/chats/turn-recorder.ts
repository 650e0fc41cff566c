import type { Connection } from 'mongoose';
import { ChatsRepo, type ChatTurn } from './chats.repo';
import { ConversationsRepo } from './conversations.repo';
import { MessagesRepo, oneTurnAtATime } from './messages.repo';

/**
 * Writes one turn everywhere it belongs: a row in the messages index, appended to the chat document (the
 * platform's record), and the conversation summary. Each step is idempotent by message_id, so a retry
 * after a crash completes what was missing and adds nothing twice.
 *
 * The messages row comes first: its insert is the turn's unique-key claim. When it is new, the turn cannot
 * be in the chat or the message streams yet (nothing appends before the row exists, and one worker holds
 * a thread at a time), so neither append looks first; only a repeat checks them. After the claim the
 * three writes are independent and go out together. Two calls for the same turn in this process run one
 * after the other (`oneTurnAtATime`): the second, a repeat, then sees everything the first wrote.
 */
export class TurnRecorder {
  constructor(
    readonly chats: ChatsRepo,
    readonly messages: MessagesRepo,
    readonly conversations: ConversationsRepo,
  ) {}

  async record(
    db: Connection,
    t: { agentId: string; userId: string; chatId: string; turn: ChatTurn; username?: string },
  ): Promise<void> {
    await oneTurnAtATime(db, t.agentId, t.turn.message_id, () => this.write(db, t));
  }

  private async write(
    db: Connection,
    t: { agentId: string; userId: string; chatId: string; turn: ChatTurn; username?: string },
  ): Promise<void> {
    const { turn } = t;
    const at = new Date(turn.created_timestamp);
    const { row, fresh } = await this.messages.claim(db, {
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
      ...(t.username ? { username: t.username } : {}),
    });
    const text = turn.content || (turn.attachments?.length ? `[${turn.attachments[0]!.type}]` : '');
    // Each settles before a failure is thrown, so a retry never overlaps a write still in flight.
    const results = await Promise.allSettled([
      this.messages.list(db, row, { fresh }),
      this.chats.appendTurn(db, t.chatId, turn, { fresh }),
      this.conversations.recordTurn(db, t.agentId, t.userId, { role: turn.role, text, at, repeat: !fresh }),
    ]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
