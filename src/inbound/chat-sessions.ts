import crypto from 'node:crypto';
import type { Connection } from 'mongoose';
import type { ChatHead, ChatsRepo } from '../chats/chats.repo';
import type { ConversationRow, ConversationsRepo } from '../chats/conversations.repo';
import type { InstagramConnection } from '../instagram/connection.repo';
import type { Logger } from '../lib/logger';
import type { EarlierAsk, RetellClient } from '../retell/retell.client';
import { RetellError } from '../retell/retell.client';

interface ThreadRef {
  subaccount: { id: string };
  db: Connection;
  connection: InstagramConnection;
  agentId: string;
  userId: string;
}

interface SessionDeps {
  chats: ChatsRepo;
  conversations: ConversationsRepo;
  logger: Logger;
  chatSessionTtlMs: number;
}

/**
 * One Retell chat per Instagram thread: the ongoing one is reused; one idle longer than the TTL is ended
 * and replaced; one Retell reports unusable (ended, unknown) is replaced. The `chats` document is created
 * with the Retell chat, so the two always correspond, and becomes the thread's current chat on its
 * conversation row: finding it is two reads by `_id`, never a query over the shared `chats` collection.
 * (A crash between the two leaves a chat document with no turns that nothing points to; the retry starts
 * another.)
 */
export class ChatSessions {
  constructor(
    private readonly d: SessionDeps,
    private readonly retell: RetellClient,
  ) {}

  /**
   * The chat to answer in: the ongoing one if it is fresh and a Retell chat, else a new one. `conversation`:
   * the thread's row when the caller has just read it (saves reading it again).
   */
  async current(t: ThreadRef, conversation?: ConversationRow): Promise<string> {
    const username = conversation?.username;
    const ongoing = await this.ongoing(t, conversation);
    if (ongoing && !this.isIdle(ongoing) && ongoing.metadata.retell_chat !== false) return ongoing.chat_id;
    if (ongoing) await this.end(t, ongoing);
    return this.start(t, username);
  }

  /**
   * Asks the agent; a chat Retell no longer accepts is replaced once and asked again. `earlier`: this
   * question may have been asked already; `beforeAsk`: called before every ask (see
   * `RetellClient.complete`).
   */
  async complete(
    t: ThreadRef,
    chatId: string,
    content: string,
    opts: { username?: string; earlier?: EarlierAsk; beforeAsk?: () => Promise<void> } = {},
  ): Promise<{ chatId: string; replies: string[] }> {
    const { username, earlier, beforeAsk } = opts;
    try {
      return { chatId, replies: await this.agentReplies(chatId, content, earlier, beforeAsk) };
    } catch (err) {
      if (!(err instanceof RetellError) || !err.chatUnusable) throw err;
      this.d.logger.warn({ status: err.status }, 'Retell refused the chat; starting a new one');
      await this.d.chats.end(t.db, chatId);
      const fresh = await this.start(t, username);
      return { chatId: fresh, replies: await this.agentReplies(fresh, content, undefined, beforeAsk) };
    }
  }

  /**
   * Where an operator's message goes: the ongoing chat, or — when none is ongoing — a document of its own
   * (no Retell chat is started just to hold a person's message; the next visitor DM starts one).
   */
  async currentForOperator(t: ThreadRef): Promise<string> {
    const ongoing = await this.ongoing(t);
    if (ongoing && !this.isIdle(ongoing)) return ongoing.chat_id;
    if (ongoing) await this.end(t, ongoing);
    const chatId = `igop_${crypto.randomUUID().replace(/-/g, '')}`;
    await this.d.chats.create(t.db, {
      chat_id: chatId,
      agent_id: t.agentId,
      subaccountId: t.subaccount.id,
      start_timestamp: Date.now(),
      metadata: { ...this.metadata(t), retell_chat: false },
    });
    await this.d.conversations.setChat(t.db, t.agentId, t.userId, chatId);
    return chatId;
  }

  /** The thread's current chat if it is still ongoing. */
  private async ongoing(t: ThreadRef, row?: ConversationRow): Promise<ChatHead | undefined> {
    const chatId = (row ?? (await this.d.conversations.get(t.db, t.agentId, t.userId)))?.chatId;
    const chat = chatId ? await this.d.chats.head(t.db, chatId) : undefined;
    return chat?.chat_status === 'ongoing' ? chat : undefined;
  }

  private async agentReplies(
    chatId: string,
    content: string,
    earlier?: EarlierAsk,
    beforeAsk?: () => Promise<void>,
  ): Promise<string[]> {
    const messages = await this.retell.complete(chatId, content, earlier, beforeAsk);
    // Tool calls, tool results and node/state transitions are the agent's workings, not words for the visitor.
    return messages.flatMap((m) =>
      m.role === 'agent' && 'content' in m && m.content.trim() ? [m.content] : [],
    );
  }

  private async start(t: ThreadRef, username?: string): Promise<string> {
    const metadata = {
      ...this.metadata(t),
      subaccount_id: t.subaccount.id,
      ...(username ? { instagram_username: username } : {}),
    };
    const variables: Record<string, string> = {
      channel: 'instagram',
      ...(username ? { instagram_username: username } : {}),
    };
    const chat = await this.retell.createChat(t.agentId, metadata, variables);
    await this.d.chats.create(t.db, {
      chat_id: chat.chatId,
      agent_id: t.agentId,
      subaccountId: t.subaccount.id,
      start_timestamp: chat.startTimestamp,
      metadata: { ...this.metadata(t), ...(username ? { instagram_username: username } : {}) },
    });
    await this.d.conversations.setChat(t.db, t.agentId, t.userId, chat.chatId);
    return chat.chatId;
  }

  private async end(t: ThreadRef, chat: ChatHead): Promise<void> {
    if (chat.metadata.retell_chat !== false) {
      await this.retell.endChat(chat.chat_id).catch((err: unknown) => {
        this.d.logger.warn(
          { status: (err as RetellError).status },
          'ending the idle Retell chat failed; continuing',
        );
      });
    }
    await this.d.chats.end(t.db, chat.chat_id);
  }

  private isIdle(chat: ChatHead): boolean {
    return Date.now() - new Date(chat.lastMessageAt).getTime() > this.d.chatSessionTtlMs;
  }

  private metadata(t: ThreadRef) {
    return {
      channel: 'instagram' as const,
      instagram_user_id: t.userId,
      instagram_account_id: t.connection.instagramAccountId,
    };
  }
}
