import type { Connection } from 'mongoose';
import type { Logger } from '../lib/logger';
import type { Platform, Subaccount } from '../platform/platform';
import { turnId, type ChatsRepo, type ChatTurn } from '../chats/chats.repo';
import type { ConversationsRepo } from '../chats/conversations.repo';
import type { TurnRecorder } from '../chats/turn-recorder';
import type { ConnectionRepo, InstagramConnection } from '../instagram/connection.repo';
import type { GraphClient } from '../instagram/graph.client';
import type { MessagingService } from '../instagram/messaging.service';
import type { OutboundRepo } from '../instagram/outbound.repo';
import { textForAgent } from './describe-for-agent';
import type { InboundEvent } from './inbound-event';
import type { HandlerContext } from './inbound.worker';
import type { InboxRepo, StoredEvent } from './inbound-event.repo';
import { ChatSessions } from './chat-sessions';
import { isRetellTimeout } from '../retell/retell.client';

export interface InboundDeps {
  platform: Platform;
  connectionRepo: ConnectionRepo;
  chats: ChatsRepo;
  conversations: ConversationsRepo;
  recorder: TurnRecorder;
  outbound: OutboundRepo;
  messaging: MessagingService;
  graph: GraphClient;
  inbox: InboxRepo;
  logger: Logger;
  chatSessionTtlMs: number;
  humanTakeoverMs: number;
}

interface Thread {
  subaccount: Subaccount;
  db: Connection;
  connection: InstagramConnection;
  agentId: string;
  userId: string;
}

const LAST_EVENT_AT_RESOLUTION_MS = 10_000;

/**
 * What happens to one stored webhook event. A plain function of (deps, event): the worker calls it,
 * tests call it. Every step is idempotent or journaled in `ctx`, so a retry after a crash resumes.
 */
export async function handleInboundEvent(
  d: InboundDeps,
  stored: StoredEvent,
  ctx: HandlerContext,
): Promise<'done' | 'ignored'> {
  const thread = await resolveThread(d, stored);
  if (!thread) return 'ignored';
  const event = stored.event;
  // At most one write per connection every few seconds: on FerretDB each is a scan, and `/status` needs
  // "recently", not the millisecond.
  const seen = thread.connection.lastEventAt?.getTime() ?? 0;
  if (Date.now() - seen > LAST_EVENT_AT_RESOLUTION_MS)
    await d.connectionRepo.update(thread.db, thread.agentId, { lastEventAt: new Date() });

  switch (event.kind) {
    case 'message':
    case 'postback':
    case 'unsupported':
    case 'referral':
      // textForAgent decides what reaches the agent: a referral only when it carries text.
      return answerVisitor(d, thread, stored, ctx);
    case 'echo':
      return recordEcho(d, thread, event);
    case 'delete':
      if (event.mid) await d.chats.markDeleted(thread.db, thread.agentId, thread.userId, event.mid);
      return 'done';
    default:
      // Reads, reactions and edits change nothing the agent must answer (an edit comes after the agent
      // already answered the original); they are acknowledged, kept in the inbox for the retention period,
      // and dropped.
      return 'ignored';
  }
}

async function resolveThread(d: InboundDeps, stored: StoredEvent): Promise<Thread | undefined> {
  const subaccount = await d.platform.findSubaccount(stored.subaccountId);
  if (!subaccount) return undefined;
  const db = await d.platform.subaccountDb(subaccount);
  const connection = await d.connectionRepo.find(db, stored.agentId);
  // Disconnected (or reconnected to another account) since the event was stored: nothing to act on.
  if (!connection || connection.instagramAccountId !== stored.event.accountId) return undefined;
  return { subaccount, db, connection, agentId: stored.agentId, userId: stored.event.userId };
}

async function answerVisitor(
  d: InboundDeps,
  t: Thread,
  stored: StoredEvent,
  ctx: HandlerContext,
): Promise<'done' | 'ignored'> {
  const event = stored.event;
  const content = textForAgent(event);
  if (content === undefined) return 'ignored';
  const progress = { ...(stored.progress ?? {}) };
  const retell = d.platform.retellFor(t.subaccount);
  const sessions = new ChatSessions(d, retell);
  const conversation = await d.conversations.get(t.db, t.agentId, t.userId);

  // Not journaled: a retry finds the same chat again, as the thread's current chat on its conversation row.
  const chatId = progress.chatId ?? (await sessions.current(t, conversation));
  progress.chatId = chatId;

  const userTurn: ChatTurn = {
    message_id: turnId(event.key),
    role: 'user',
    content: event.text ?? content,
    created_timestamp: event.timestamp,
    ...(event.mid ? { instagram_mid: event.mid } : {}),
    attachments: event.attachments.map((a) => (a.url ? { type: a.type, url: a.url } : { type: a.type })),
  };
  const recordUserTurnIn = (inChat: string) =>
    d.recorder.record(t.db, {
      agentId: t.agentId,
      userId: t.userId,
      chatId: inChat,
      turn: userTurn,
      username: conversation?.username,
    });
  const recordUserTurn = recordUserTurnIn(chatId);

  const pausedUntil = conversation?.aiPausedUntil;
  if (pausedUntil && pausedUntil.getTime() > Date.now()) {
    await recordUserTurn;
    d.logger.info(
      { pausedUntil },
      'AI paused for this thread (human takeover): turn stored, agent not asked',
    );
    return 'done';
  }

  if (progress.agentReplies) await recordUserTurn;
  else {
    // The agent is asked while the user turn is being recorded (neither needs the other; the reply is sent
    // only once both are done). Its answer is journaled even when the recording failed, so the retry
    // records the turn again and sends that answer, without asking the agent twice.
    const [recorded, asked] = await Promise.allSettled([
      recordUserTurn,
      // An earlier run may have asked already: Retell's copy of the chat is read first, so that the agent
      // (and its tools) runs once. Its answer may still be on the way when that run was cut off (a crash)
      // or gave up waiting (a timeout). Every ask first checks that this worker still holds the thread:
      // after a lease ran out, another may be asking.
      sessions.complete(t, chatId, content, {
        username: conversation?.username,
        earlier: ctx.rerun && {
          since: stored.receivedAt.getTime(),
          mayBeAnswering: ctx.rerun === 'takeover' || isRetellTimeout(stored.lastError),
        },
        beforeAsk: ctx.ensureHeld,
      }),
    ]);
    if (asked.status === 'fulfilled') {
      progress.chatId = asked.value.chatId;
      progress.agentReplies = asked.value.replies;
      await ctx.saveProgress(progress);
    }
    // The agent's failure first: whether it timed out (its `lastError`) decides how the retry reads the chat.
    if (asked.status === 'rejected') {
      if (recorded.status === 'rejected')
        d.logger.warn(
          { err: recorded.reason },
          'the user turn was not recorded either; the retry records it',
        );
      throw asked.reason;
    }
    if (recorded.status === 'rejected') throw recorded.reason;
    // Retell refused the chat and a new one was asked instead: the new chat holds the question too (a
    // repeat of the turn, which TurnRecorder appends there once), so it reads question → answer.
    if (asked.value.chatId !== chatId) await recordUserTurnIn(asked.value.chatId);
  }
  const replies = progress.agentReplies!;

  // A person may have taken over while the agent was thinking (a /send, an answer typed in the Instagram
  // app, a pause from the admin UI): the pause is read again just before the answer would go out.
  const latest = await d.conversations.get(t.db, t.agentId, t.userId);
  if (latest?.aiPausedUntil && latest.aiPausedUntil.getTime() > Date.now()) {
    d.logger.info(
      { pausedUntil: latest.aiPausedUntil },
      'a person took over while the agent was answering: its answer is not sent',
    );
    return 'done';
  }

  await d.messaging.deliverAgentReplies(t.db, t.connection, {
    agentId: t.agentId,
    userId: t.userId,
    chatId: progress.chatId!,
    eventKey: stored.dedupeKey,
    threadKey: stored.threadKey,
    replies,
    username: conversation?.username,
  });

  if (!conversation?.username) await learnUsername(d, t, progress.chatId!);
  return 'done';
}

/**
 * Meta echoes every message the account sends. Ours (by mid, or an in-flight send with the same text) are
 * already recorded; anything else was typed by a person in the Instagram app: an operator turn, and the
 * AI steps back for the takeover period.
 */
async function recordEcho(d: InboundDeps, t: Thread, event: InboundEvent): Promise<'done' | 'ignored'> {
  if (!event.mid) return 'ignored';
  // Ours by mid (one lookup by _id) or an in-flight send with the same text. A retry of this echo records
  // it again, which completes whatever a failed attempt left out and adds nothing twice (TurnRecorder).
  if (await d.outbound.claimEcho(t.db, t.agentId, t.userId, event.mid, event.text)) return 'ignored';

  const sessions = new ChatSessions(d, d.platform.retellFor(t.subaccount));
  const chatId = await sessions.currentForOperator(t);
  await d.recorder.record(t.db, {
    agentId: t.agentId,
    userId: t.userId,
    chatId,
    turn: {
      message_id: turnId(event.key),
      role: 'operator',
      content: event.text ?? '',
      created_timestamp: event.timestamp,
      instagram_mid: event.mid,
      attachments: event.attachments.map((a) => (a.url ? { type: a.type, url: a.url } : { type: a.type })),
      delivery_status: 'sent',
    },
  });
  if (d.humanTakeoverMs > 0) {
    // Never shortens a longer pause an admin set on purpose.
    await d.conversations.extendPause(t.db, t.agentId, t.userId, new Date(Date.now() + d.humanTakeoverMs));
  }
  return 'done';
}

/** The visitor's username, once, from the User Profile API. Best effort: after the reply, never before it. */
async function learnUsername(d: InboundDeps, t: Thread, chatId: string): Promise<void> {
  try {
    const profile = await d.graph.getUserProfile(t.connection.accessToken, t.userId);
    if (!profile.username) return;
    await d.conversations.setUsername(t.db, t.agentId, t.userId, profile.username);
    await d.chats.setUsername(t.db, chatId, profile.username);
  } catch (err) {
    d.logger.info({ code: (err as { code?: number }).code }, 'user profile not available');
  }
}
