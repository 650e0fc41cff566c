import type { Connection } from 'mongoose';
import { turnId } from '../chats/chats.repo';
import type { Logger } from '../lib/logger';
import type { TurnRecorder } from '../chats/turn-recorder';
import type { ConnectionRepo, InstagramConnection } from './connection.repo';
import type { GraphClient, OutgoingMessage } from './graph.client';
import { GraphError } from './graph.errors';
import type { OutboundRepo } from './outbound.repo';
import { splitMessage } from './message-split';

/**
 * The stored token cannot be opened here (InstagramConnection.secretsUnreadable): nothing is sent, and the
 * connection is not marked invalid, since the token may be fine and only this process's keys wrong (a
 * deploy with a missing TOKEN_ENCRYPTION_KEY_PREVIOUS): a retry, perhaps by another process, may send it.
 */
const unreadableToken = () =>
  retryLater(
    'the stored token cannot be opened with the configured keys (TOKEN_ENCRYPTION_KEY, TOKEN_ENCRYPTION_KEY_PREVIOUS): fix the keys or connect the account again',
  );

/**
 * Meta took the message (its mid is known) but what had to follow failed: completing its note, or
 * recording it. Not a GraphError: the worker retries it like any failure of ours, and an operator is told
 * the message went out.
 */
export class DeliveredButUnrecorded extends Error {
  constructor(
    readonly mid: string,
    override readonly cause: unknown,
  ) {
    super(`delivered to Instagram (${mid}) but not recorded: ${String((cause as Error)?.message ?? cause)}`);
    this.name = 'DeliveredButUnrecorded';
  }
}

/** A failure the worker should retry later (the event stays pending, its journal intact). */
const retryLater = (message: string) => Object.assign(new Error(message), { transient: true });

export interface AgentDelivery {
  agentId: string;
  userId: string;
  chatId: string;
  /** Unique per inbound event: with the part index it names each outbound message for idempotency. */
  eventKey: string;
  threadKey: string;
  replies: string[];
  /** The visitor's username, when known: kept with each recorded turn. */
  username?: string;
}

export interface MessagingDeps {
  graph: GraphClient;
  outbound: OutboundRepo;
  recorder: TurnRecorder;
  connectionRepo: ConnectionRepo;
  logger: Logger;
  /** An echo already received for this text in this thread since `since`, if any. */
  findEcho(threadKey: string, text: string, since: number): Promise<string | undefined>;
  /** How long an ambiguous send waits for its echo before it is sent again. */
  reconcileWindowMs: number;
}

/** Sending to Instagram: split to Instagram's limit, note before, send, reconcile, record the turn. */
export class MessagingService {
  constructor(private readonly d: MessagingDeps) {}

  /**
   * Each agent reply, split to Instagram's limit (MAX_MESSAGE_BYTES, 999 UTF-8 bytes), sent in order and
   * recorded as an `agent` turn. A part already sent is not sent again: its outbound note (keyed by event
   * and part) says so and holds its mid.
   * A send that may have been delivered despite an error is not blindly repeated: its echo is looked for
   * first, for up to `reconcileWindowMs`.
   */
  async deliverAgentReplies(db: Connection, conn: InstagramConnection, a: AgentDelivery): Promise<void> {
    if (conn.secretsUnreadable) throw unreadableToken();
    const parts = a.replies.flatMap((r) => splitMessage(r));
    for (let i = 0; i < parts.length; i++) {
      const text = parts[i]!;
      const key = `${a.eventKey}:${i}`;
      const base = { message_id: turnId(key), role: 'agent' as const, content: text };
      const outcome = await this.sendOnce(db, conn, {
        key,
        agentId: a.agentId,
        userId: a.userId,
        threadKey: a.threadKey,
        text,
      });
      if (outcome.failed) {
        await this.d.recorder.record(db, {
          agentId: a.agentId,
          userId: a.userId,
          chatId: a.chatId,
          username: a.username,
          turn: {
            ...base,
            created_timestamp: Date.now(),
            delivery_status: 'failed',
            delivery_error: outcome.failed,
          },
        });
        continue;
      }
      const mid = outcome.mid;
      await this.d.recorder.record(db, {
        agentId: a.agentId,
        userId: a.userId,
        chatId: a.chatId,
        username: a.username,
        turn: { ...base, created_timestamp: Date.now(), instagram_mid: mid, delivery_status: 'sent' },
      });
    }
  }

  /**
   * One message to Instagram, noted first so its echo is known as ours. Returns the mid, or `failed` with
   * Meta's reason when Meta refused it for good; throws a retry-later error when it may yet go through.
   */
  private async sendOnce(
    db: Connection,
    conn: InstagramConnection,
    m: { key: string; agentId: string; userId: string; threadKey: string; text: string },
  ): Promise<{ mid: string; failed?: undefined } | { failed: string; mid?: undefined }> {
    const { note, created } = await this.d.outbound.begin(db, {
      key: m.key,
      agentId: m.agentId,
      userId: m.userId,
      text: m.text,
    });
    if (note.status === 'sent' && note.mid) return { mid: note.mid };
    if (!created && (note.status === 'uncertain' || note.status === 'sending')) {
      // A previous attempt may have delivered it (an ambiguous error, a crash mid-send, or a send whose
      // record failed, however recently): look for its echo before sending again.
      const echoed = await this.d.findEcho(m.threadKey, m.text, note.createdAt.getTime() - 60_000);
      if (echoed) {
        await this.d.outbound.complete(db, m.agentId, m.key, { status: 'sent', mid: echoed });
        return { mid: echoed };
      }
      if (Date.now() - note.createdAt.getTime() < this.d.reconcileWindowMs)
        throw retryLater('waiting for the echo of an ambiguous send');
    }
    return this.send(db, conn, m);
  }

  /**
   * One message to Instagram with its bookkeeping: the note written before the call (so an echo that beats
   * the answer is known as ours), completed after it, and a dead token (190) flagged on the connection.
   * Meta's refusal is rethrown as the GraphError; an outcome Meta left unknown leaves the note `uncertain`
   * (the caller reconciles it against echoes) or `failed` (a late echo is then recorded as a person's).
   * `alreadyNoted`: the caller began the note itself (and read what a retry finds there). A failure after
   * Meta's acceptance (completing the note) is thrown as DeliveredButUnrecorded, with the mid.
   */
  async sendNoted(
    db: Connection,
    conn: InstagramConnection,
    n: {
      key: string;
      agentId: string;
      userId: string;
      message: OutgoingMessage;
      ifUnknown: 'uncertain' | 'failed';
      alreadyNoted?: boolean;
    },
  ): Promise<string> {
    const content =
      'text' in n.message ? { text: n.message.text } : { attachmentUrl: n.message.attachment.url };
    if (conn.secretsUnreadable) throw unreadableToken();
    if (!n.alreadyNoted)
      await this.d.outbound.begin(db, { key: n.key, agentId: n.agentId, userId: n.userId, ...content });
    let delivered: string | undefined;
    try {
      delivered = (await this.d.graph.sendMessage(conn.accessToken, n.userId, n.message)).messageId;
      await this.d.outbound.complete(db, n.agentId, n.key, { status: 'sent', mid: delivered });
      return delivered;
    } catch (err) {
      if (delivered !== undefined) throw new DeliveredButUnrecorded(delivered, err);
      if (!(err instanceof GraphError)) throw err;
      if (err.mayHaveBeenSent) {
        // Its echo may already have claimed the note (it can beat the answer): then it was delivered.
        const note = await this.d.outbound.find(db, n.agentId, n.key);
        if (note?.mid) return note.mid;
      }
      await this.d.outbound.complete(db, n.agentId, n.key, {
        status: err.mayHaveBeenSent ? n.ifUnknown : 'failed',
      });
      if (err.kind === 'invalid_token') await this.d.connectionRepo.markTokenInvalid(db, conn);
      this.d.logger.warn(
        { kind: err.kind, code: err.code, subcode: err.subcode, mayHaveBeenSent: err.mayHaveBeenSent },
        'Instagram refused a message',
      );
      throw err;
    }
  }

  /** An agent reply part: Meta's outcome turned into a mid, a reason to record, or a retry later. */
  private async send(
    db: Connection,
    conn: InstagramConnection,
    m: { key: string; agentId: string; userId: string; text: string },
  ): Promise<{ mid: string; failed?: undefined } | { failed: string; mid?: undefined }> {
    try {
      return {
        mid: await this.sendNoted(db, conn, {
          ...m,
          message: { text: m.text },
          ifUnknown: 'uncertain',
          alreadyNoted: true, // by sendOnce
        }),
      };
    } catch (err) {
      if (!(err instanceof GraphError)) throw err;
      if (err.mayHaveBeenSent) throw retryLater(`send outcome unknown: ${err.message}`);
      if (err.retryable)
        throw Object.assign(retryLater(`send refused for now: ${err.message}`), {
          retryAfterMs: err.retryAfterMs,
        });
      const codes = [err.code, err.subcode].filter((c) => c !== undefined).join('/');
      return { failed: `${err.kind}: ${err.metaMessage}${codes ? ` (#${codes})` : ''}` };
    }
  }
}
