import crypto from 'node:crypto';
import { Schema, type Connection } from 'mongoose';
import { modelOn } from '../db/mongo';
import { TtlCache } from '../lib/ttl-cache';

/**
 * The platform's shared `chats` collection (contract §2): one document per Retell chat session, shared
 * with the web widget, WhatsApp and SMS. We keep its shape and add only Instagram facts. Turns are
 * appended with `$push`, never rewritten; `message_count` and `transcript` follow them.
 */
export type TurnRole = 'user' | 'agent' | 'operator';

export interface ChatTurn {
  message_id: string;
  role: TurnRole;
  content: string;
  created_timestamp: number;
  instagram_mid?: string;
  attachments?: { type: string; url?: string }[];
  delivery_status?: 'sent' | 'failed';
  delivery_error?: string;
}

export interface InstagramChatMetadata {
  channel: 'instagram';
  instagram_user_id: string;
  instagram_account_id: string;
  instagram_username?: string;
  /** false for a document an operator message opened before any Retell chat existed for the thread. */
  retell_chat?: boolean;
  instagram_deleted_mids?: string[];
}

export interface ChatDoc {
  chat_id: string;
  agent_id: string;
  subaccountId: string;
  chat_status: 'ongoing' | 'ended';
  start_timestamp: number;
  end_timestamp: number | null;
  transcript: string;
  message_count: number;
  messages: ChatTurn[];
  metadata: InstagramChatMetadata;
  createdBy: 'instagram-connector';
  createdAt: Date;
  updatedAt: Date;
  lastMessageAt: Date;
}

// strict: false — other channels write fields we do not know, and we must not strip them.
const schema = new Schema<ChatDoc>({}, { collection: 'chats', strict: false, versionKey: false });
schema.index({ chat_id: 1 });
schema.index({ 'metadata.channel': 1, agent_id: 1, 'metadata.instagram_user_id': 1, chat_status: 1 });

/**
 * A turn's `message_id`, derived from what caused it (an inbound event key, an outbound part key), so a
 * retry after a crash writes the same turn again and the append recognises it.
 */
export const turnId = (cause: string) =>
  `ig_${crypto.createHash('sha256').update(cause).digest('hex').slice(0, 24)}`;

const LABEL: Record<TurnRole, string> = { user: 'User', agent: 'Agent', operator: 'Operator' };
export const transcriptLine = (t: ChatTurn) => `${LABEL[t.role]}: ${t.content}`;

/** What this process last saw of a chat it appends to: enough to append again without reading it first. */
interface SeenChat {
  count: number;
  transcript: string;
  ids: ReadonlySet<string>;
}
const SEEN_MAX_TRANSCRIPT = 64 * 1024;
const chatKey = (db: Connection, chatId: string) => `${db.host}:${db.port}/${db.name}\u0000${chatId}`;

export class ChatsRepo {
  /**
   * The state this process last wrote or read per chat. An append starts from it instead of re-reading the
   * chat (on FerretDB every read by `chat_id` scans the whole shared collection); the compare-and-set on
   * `message_count` still catches any other writer, and then the chat is read again.
   */
  private readonly seen = new TtlCache<SeenChat>(30_000, 500);

  private model(db: Connection) {
    return modelOn(db, 'Chat', schema);
  }

  async findOngoing(db: Connection, agentId: string, userId: string): Promise<ChatDoc | undefined> {
    const doc = await (
      await this.model(db)
    ).collection.findOne(
      {
        'metadata.channel': 'instagram',
        agent_id: agentId,
        'metadata.instagram_user_id': userId,
        chat_status: 'ongoing',
      },
      { sort: { start_timestamp: -1 }, projection: { messages: 0, transcript: 0 } },
    );
    return (doc as unknown as ChatDoc | null) ?? undefined;
  }

  async create(
    db: Connection,
    doc: Omit<
      ChatDoc,
      | 'transcript'
      | 'message_count'
      | 'messages'
      | 'createdAt'
      | 'updatedAt'
      | 'lastMessageAt'
      | 'createdBy'
      | 'chat_status'
      | 'end_timestamp'
    >,
  ): Promise<void> {
    const now = new Date();
    await (
      await this.model(db)
    ).collection.insertOne({
      ...doc,
      chat_status: 'ongoing',
      end_timestamp: null,
      transcript: '',
      message_count: 0,
      messages: [],
      createdBy: 'instagram-connector',
      createdAt: now,
      updatedAt: now,
      lastMessageAt: now,
    });
    this.seen.set(chatKey(db, doc.chat_id), { count: 0, transcript: '', ids: new Set() });
  }

  /**
   * Appends a turn unless a turn with its message_id is already there (a redelivery or a retry). The
   * transcript is a string that must follow the turns, so the append is a compare-and-set on
   * message_count: a concurrent append (an operator message while the agent answers) makes us re-read.
   * Returns false when the turn was already recorded.
   */
  async appendTurn(db: Connection, chatId: string, turn: ChatTurn): Promise<boolean> {
    const chats = (await this.model(db)).collection;
    const key = chatKey(db, chatId);
    for (let attempt = 0; attempt < 20; attempt++) {
      const current = (attempt === 0 && this.seen.get(key)) || (await this.read(db, chatId));
      if (current.ids.has(turn.message_id)) return false;
      const at = new Date(turn.created_timestamp);
      const transcript = current.transcript
        ? `${current.transcript}\n${transcriptLine(turn)}`
        : transcriptLine(turn);
      const res = await chats.updateOne({ chat_id: chatId, message_count: current.count }, {
        $push: { messages: turn },
        $set: {
          message_count: current.count + 1,
          transcript,
          updatedAt: new Date(),
          lastMessageAt: at,
        },
      } as never);
      if (res.modifiedCount === 1) {
        if (transcript.length <= SEEN_MAX_TRANSCRIPT) {
          this.seen.set(key, {
            count: current.count + 1,
            transcript,
            ids: new Set([...current.ids, turn.message_id]),
          });
        } else this.seen.delete(key);
        return true;
      }
      this.seen.delete(key); // another writer appended: read it again
    }
    throw Object.assign(new Error(`chat ${chatId}: too much contention appending a turn`), {
      transient: true,
    });
  }

  private async read(db: Connection, chatId: string): Promise<SeenChat> {
    const current = (await (
      await this.model(db)
    ).collection.findOne(
      { chat_id: chatId },
      { projection: { message_count: 1, transcript: 1, 'messages.message_id': 1 } },
    )) as (Pick<ChatDoc, 'message_count' | 'transcript'> & { messages?: { message_id: string }[] }) | null;
    if (!current) throw new Error(`chat ${chatId} not found`);
    return {
      count: current.message_count,
      transcript: current.transcript ?? '',
      ids: new Set((current.messages ?? []).map((m) => m.message_id)),
    };
  }

  async end(db: Connection, chatId: string): Promise<void> {
    const now = new Date();
    await (
      await this.model(db)
    ).collection.updateOne(
      { chat_id: chatId, chat_status: 'ongoing' },
      { $set: { chat_status: 'ended', end_timestamp: now.getTime(), updatedAt: now } },
    );
  }

  async setUsername(db: Connection, chatId: string, username: string): Promise<void> {
    await (
      await this.model(db)
    ).collection.updateOne(
      { chat_id: chatId },
      { $set: { 'metadata.instagram_username': username, updatedAt: new Date() } },
    );
  }

  /** Instagram told us the visitor unsent a message: noted on the chat, the turn itself stays as it was. */
  async markDeleted(db: Connection, agentId: string, userId: string, mid: string): Promise<void> {
    await (
      await this.model(db)
    ).collection.updateMany(
      {
        'metadata.channel': 'instagram',
        agent_id: agentId,
        'metadata.instagram_user_id': userId,
        'messages.instagram_mid': mid,
      },
      { $addToSet: { 'metadata.instagram_deleted_mids': mid }, $set: { updatedAt: new Date() } },
    );
  }
}
