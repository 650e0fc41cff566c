import crypto from 'node:crypto';
import { Schema, Types, type Connection } from 'mongoose';
import { derivedObjectId } from '../db/keys';
import { modelOn } from '../db/mongo';
import { KeyedMutex } from '../lib/keyed-mutex';

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

/**
 * The `_id` of the chat document for a chat id: the first 12 bytes of SHA-256 over it, as an ObjectId like
 * the other channels' documents. Every read and write of an Instagram chat document is then by `_id`
 * alone, the only filter FerretDB 1.24 serves from an index (anything else reads the whole shared
 * collection). The thread's current chat id is kept on its conversation row (`ConversationsRepo`).
 */
export function chatDocId(chatId: string): Types.ObjectId {
  return derivedObjectId(`chats\u0000${chatId}`);
}

/** What deciding whether to reuse a chat needs: the document without its turns and transcript. */
export type ChatHead = Omit<ChatDoc, 'messages' | 'transcript'>;

/** Process-wide: this process writes to one chat document one write at a time. */
const chatWrites = new KeyedMutex();
const writeKey = (db: Connection, chatId: string) => `${db.name}\u0000${chatId}`;

export class ChatsRepo {
  private model(db: Connection) {
    return modelOn(db, 'Chat', schema);
  }

  async head(db: Connection, chatId: string): Promise<ChatHead | undefined> {
    const doc = await (
      await this.model(db)
    ).collection.findOne({ _id: chatDocId(chatId) }, { projection: { messages: 0, transcript: 0 } });
    return (doc as unknown as ChatHead | null) ?? undefined;
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
      _id: chatDocId(doc.chat_id),
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
  }

  /**
   * Appends a turn unless a turn with its message_id is already there (a redelivery or a retry); false
   * then. Every step is by `_id`, with no conditional filter:
   * 1. unless the caller knows the turn is new (`fresh`: it has just claimed its message_id, see
   *    TurnRecorder), read the turn ids; a turn already there is not appended again (one worker at a time
   *    holds a thread, so the same turn is never appended concurrently);
   * 2. `$push` the turn and `$inc` message_count in one atomic update, which returns the turns after it;
   * 3. `$max` the transcript rebuilt from those turns. Turns are only ever appended, so a later state's
   *    transcript extends an earlier one's and is greater in string order: whatever order two concurrent
   *    appends (the agent answering while an operator sends) finish in, the transcript that stays is the
   *    one with every turn.
   * Within this process, appends to one chat also run one at a time (KeyedMutex): FerretDB does not apply
   * an update atomically, and two concurrent `$push`es to one document could lose one.
   */
  async appendTurn(
    db: Connection,
    chatId: string,
    turn: ChatTurn,
    opts: { fresh?: boolean } = {},
  ): Promise<boolean> {
    const _id = chatDocId(chatId);
    return chatWrites.run(writeKey(db, chatId), () => this.append(db, _id, chatId, turn, opts.fresh));
  }

  private async append(
    db: Connection,
    _id: Types.ObjectId,
    chatId: string,
    turn: ChatTurn,
    fresh = false,
  ): Promise<boolean> {
    const chats = (await this.model(db)).collection;
    if (!fresh) {
      const before = (await chats.findOne({ _id }, { projection: { 'messages.message_id': 1 } })) as {
        messages?: { message_id: string }[];
      } | null;
      if (!before) throw new Error(`chat ${chatId} not found`);
      if ((before.messages ?? []).some((m) => m.message_id === turn.message_id)) return false;
    }
    const after = (await chats.findOneAndUpdate(
      { _id },
      {
        $push: { messages: turn },
        $inc: { message_count: 1 },
        $set: { updatedAt: new Date() },
        $max: { lastMessageAt: new Date(turn.created_timestamp) },
      } as never,
      { returnDocument: 'after' }, // FerretDB 1.24: findAndModify takes no projection
    )) as { messages: ChatTurn[] } | null;
    if (!after) throw new Error(`chat ${chatId} not found`);
    await chats.updateOne({ _id }, { $max: { transcript: after.messages.map(transcriptLine).join('\n') } });
    return true;
  }

  async end(db: Connection, chatId: string): Promise<void> {
    const now = new Date();
    await this.set(db, chatId, { chat_status: 'ended', end_timestamp: now.getTime(), updatedAt: now });
  }

  async setUsername(db: Connection, chatId: string, username: string): Promise<void> {
    await this.set(db, chatId, { 'metadata.instagram_username': username, updatedAt: new Date() });
  }

  private async set(db: Connection, chatId: string, fields: Record<string, unknown>): Promise<void> {
    const chats = (await this.model(db)).collection;
    await chatWrites.run(writeKey(db, chatId), () =>
      chats.updateOne({ _id: chatDocId(chatId) }, { $set: fields }),
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
