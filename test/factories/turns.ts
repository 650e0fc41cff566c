import crypto from 'node:crypto';
import type { Connection } from 'mongoose';
import type { ChatTurn, TurnRole } from '../../src/chats/chats.repo';
import type { ConnectedAgent, Harness } from '../setup/harness';

/**
 * Turns written straight through the app's TurnRecorder (chats + messages index + conversation summary),
 * exactly as the pipeline writes them, but at any time in the past: "the visitor wrote 25 hours ago"
 * without waiting 25 hours.
 */
export const HOUR = 3_600_000;

export async function tenantDb(h: Harness, a: ConnectedAgent): Promise<Connection> {
  const sub = await h.t.deps.platform.findSubaccount(a.sub.id);
  if (!sub) throw new Error(`subaccount ${a.sub.id} not found`);
  return h.t.deps.platform.subaccountDb(sub);
}

export interface TurnSpec {
  role?: TurnRole;
  content?: string;
  /** ms since epoch */
  at?: number;
}

/** A chat document for this user holding these turns (in the order given); returns its id and turn ids. */
export async function storedTurns(
  h: Harness,
  a: ConnectedAgent,
  userId: string,
  turns: TurnSpec[],
  o: { chatId?: string; username?: string } = {},
): Promise<{ chatId: string; messageIds: string[] }> {
  const db = await tenantDb(h, a);
  const { recorder } = h.t.deps;
  const chatId = o.chatId ?? `chat_${crypto.randomBytes(8).toString('hex')}`;
  if (!o.chatId) {
    await recorder.chats.create(db, {
      chat_id: chatId,
      agent_id: a.agentId,
      subaccountId: a.sub.id,
      start_timestamp: turns[0]?.at ?? Date.now(),
      metadata: { channel: 'instagram', instagram_user_id: userId, instagram_account_id: a.accountId },
    });
    await recorder.conversations.setChat(db, a.agentId, userId, chatId);
  }
  const messageIds: string[] = [];
  for (const spec of turns) {
    const role = spec.role ?? 'user';
    const turn: ChatTurn = {
      message_id: `test_${crypto.randomBytes(8).toString('hex')}`,
      role,
      content: spec.content ?? `a ${role} turn`,
      created_timestamp: spec.at ?? Date.now(),
      attachments: [],
      ...(role === 'user' ? {} : { delivery_status: 'sent' as const }),
    };
    await recorder.record(db, { agentId: a.agentId, userId, chatId, turn });
    messageIds.push(turn.message_id);
  }
  if (o.username) await recorder.conversations.setUsername(db, a.agentId, userId, o.username);
  return { chatId, messageIds };
}

/** A visitor Meta knows (a valid recipient) whose last DM is `agoMs` old. */
export async function aVisitorWhoWrote(
  h: Harness,
  a: ConnectedAgent,
  agoMs: number,
  o: { username?: string; content?: string } = {},
): Promise<string> {
  const userId = h.aVisitor(o.username);
  await storedTurns(
    h,
    a,
    userId,
    [{ role: 'user', content: o.content ?? 'Hello?', at: Date.now() - agoMs }],
    {
      username: o.username,
    },
  );
  return userId;
}
