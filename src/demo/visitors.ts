import crypto from 'node:crypto';
import type { Connection } from 'mongoose';
import type { MessagingEvent } from '../instagram/webhook.types';
import type { GraphSimulator, SentMessageRecord } from '../simulators/graph.simulator';
import { describeSent, echoOf, postWebhook, simulatedMid } from '../simulators/meta-webhook';
import type { DemoShop } from './demo-shop';

/** One line of a visitor's DM thread, as the visitor's Instagram app would show it. */
export interface ThreadMessage {
  from: 'visitor' | 'shop';
  text: string;
  mid: string;
  timestamp: number;
}

/** What the connector wrote to the platform's `chats` collection for this visitor's latest chat. */
export interface ChatSummary {
  chatId: string;
  status: string;
  messageCount: number;
  transcript: string;
}

export interface Visitor {
  userId: string;
  username: string;
}

interface VisitorDeps {
  graph: GraphSimulator;
  shop: DemoShop;
  /** The connector's real webhook route, on loopback. */
  webhookUrl: string;
  platformDb: Connection;
  /** Where the demo narrates what happens (the console). */
  report: (line: string) => void;
}

/**
 * Plays Instagram's side of a conversation: visitors known to the Graph simulator, their DMs delivered to
 * the connector's webhook as Meta delivers them (signed), the shop's replies read back from what the Graph
 * simulator "delivered", and Meta's echo of every message the shop sends.
 */
export class DemoVisitors {
  private readonly said = new Map<string, ThreadMessage[]>();

  constructor(private readonly d: VisitorDeps) {
    d.graph.onSend = (sent) => this.onShopMessage(sent);
  }

  /** A visitor Meta knows (a valid recipient with a profile); a new one when `userId` is absent. */
  visitor(userId?: string, username?: string): Visitor {
    const id = userId ?? `${crypto.randomInt(1e11, 1e12)}${crypto.randomInt(1e4)}`.padEnd(16, '0');
    const known = this.d.graph.users.get(id);
    const name = username ?? known?.username ?? `visitor_${id.slice(-4)}`;
    this.d.graph.users.set(id, { username: name, name: 'Demo visitor' });
    return { userId: id, username: name };
  }

  /** The visitor writes a DM: Meta POSTs it, signed, to the connector's webhook. */
  async say(v: Visitor, text: string): Promise<ThreadMessage> {
    const message: ThreadMessage = {
      from: 'visitor',
      text,
      mid: simulatedMid(v.userId),
      timestamp: Date.now(),
    };
    const event: MessagingEvent = {
      sender: { id: v.userId },
      recipient: { id: this.d.shop.accountId },
      timestamp: message.timestamp,
      message: { mid: message.mid, text },
    };
    const status = await postWebhook(
      this.d.webhookUrl,
      this.d.shop.accountId,
      [event],
      this.d.shop.appSecret,
    );
    if (status !== 200) throw new Error(`the connector's webhook answered ${status}`);
    this.said.set(v.userId, [...(this.said.get(v.userId) ?? []), message]);
    this.d.report(`\n[visitor @${v.username} → @${this.d.shop.username}]  ${text}`);
    return message;
  }

  /** The thread as the visitor sees it, oldest first. */
  thread(userId: string): ThreadMessage[] {
    const received = this.d.graph.sent
      .filter((s) => s.recipientId === userId)
      .map((s): ThreadMessage => ({
        from: 'shop',
        text: describeSent(s),
        mid: s.messageId,
        timestamp: s.timestamp,
      }));
    return [...(this.said.get(userId) ?? []), ...received].sort((a, b) => a.timestamp - b.timestamp);
  }

  /** The latest `chats` document of this visitor with the demo agent. */
  async chat(userId: string): Promise<ChatSummary | undefined> {
    const doc = await this.d.platformDb
      .useDb(this.d.shop.databaseName)
      .collection('chats')
      .findOne(
        { agent_id: this.d.shop.agentId, 'metadata.instagram_user_id': userId },
        { sort: { start_timestamp: -1 } },
      );
    if (!doc) return undefined;
    return {
      chatId: String(doc.chat_id),
      status: String(doc.chat_status),
      messageCount: Number(doc.message_count ?? 0),
      transcript: String(doc.transcript ?? ''),
    };
  }

  /** Waits until the shop's message `mid` is a turn of the visitor's chat, then narrates the chat. */
  async reportRecorded(userId: string, mid: string, timeoutMs = 15_000): Promise<void> {
    const chats = this.d.platformDb.useDb(this.d.shop.databaseName).collection('chats');
    const deadline = Date.now() + timeoutMs;
    while (!(await chats.findOne({ 'metadata.instagram_user_id': userId, 'messages.instagram_mid': mid }))) {
      if (Date.now() > deadline) return this.d.report('  (the reply is not in chats yet)');
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.reportChat(userId);
  }

  private async reportChat(userId: string): Promise<void> {
    const chat = await this.chat(userId);
    if (!chat) return;
    const lines = chat.transcript.trim().split('\n').slice(-4);
    this.d.report(
      `  chats ▸ ${chat.chatId} · ${chat.status} · message_count ${chat.messageCount}\n` +
        lines.map((l) => `    ${l}`).join('\n'),
    );
  }

  /** Narrates what follows a visitor's DM: the reply (printed as it is sent), then the turn in `chats`. */
  async narrateReply(userId: string, after: number): Promise<void> {
    const reply = await this.nextReply(userId, after);
    if (reply) return this.reportRecorded(userId, reply.mid);
    this.d.report(
      '  (no agent reply within 30 s: after an operator message the agent is paused for this visitor ' +
        'for HUMAN_TAKEOVER_MINUTES; otherwise run with LOG_LEVEL=info to see why)',
    );
    await this.reportChat(userId);
  }

  /** Waits for the next message the shop sends to this visitor after `after` messages. */
  async nextReply(userId: string, after: number, timeoutMs = 30_000): Promise<ThreadMessage | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const replies = this.thread(userId).filter((m) => m.from === 'shop');
      if (replies.length > after) return replies[after];
      if (Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  repliesTo(userId: string): number {
    return this.thread(userId).filter((m) => m.from === 'shop').length;
  }

  /**
   * The shop sent a message (the agent's reply, or an operator's through `/send`): narrate it, then emit
   * Meta's echo of it to the webhook, as Instagram does for every message the account sends.
   */
  private onShopMessage(sent: SentMessageRecord): void {
    const graph = this.d.graph;
    if (graph.requests.length > 500) graph.requests.splice(0, graph.requests.length - 100);
    const who = graph.users.get(sent.recipientId)?.username ?? sent.recipientId;
    this.d.report(`[@${this.d.shop.username} → visitor @${who}]  ${describeSent(sent)}`);
    const echo = echoOf(sent);
    setTimeout(() => {
      postWebhook(this.d.webhookUrl, this.d.shop.accountId, [echo], this.d.shop.appSecret)
        .then((status) => (status === 200 ? undefined : this.d.report(`  (echo refused: ${status})`)))
        .catch(() => this.d.report('  (echo not delivered: the connector is not reachable)'));
    }, 20).unref();
  }
}
