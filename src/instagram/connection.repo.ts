import { Schema, type Connection } from 'mongoose';
import { modelOn } from '../db/mongo';
import { SecretBoxError, type SecretBox } from '../lib/crypto';
import { TtlCache } from '../lib/ttl-cache';

/**
 * One Instagram connection per (subaccount, agent), in the subaccount's database. Secrets are sealed here,
 * in the repository, so no other code ever handles their stored form: the access token and app secret with
 * AES-256-GCM, the webhook verify token as a keyed hash (it only ever needs comparing).
 */
export interface InstagramConnection {
  agentId: string;
  instagramAccountId: string;
  username: string;
  name?: string;
  profilePictureUrl?: string;
  pageId?: string;
  tokenKind: 'page' | 'instagram';
  accessToken: string;
  appSecret?: string;
  verifyTokenHash: string;
  tokenStatus: 'valid' | 'invalid';
  webhookSubscription: 'subscribed' | 'failed';
  webhookSubscriptionError?: string;
  connectedAt: Date;
  webhookVerifiedAt?: Date;
  lastEventAt?: Date;
  /** The account registry's claim this connection was made under (AccountRegistry); absent on older ones. */
  registryClaimId?: string;
  /**
   * The stored token (or app secret) cannot be opened with the configured keys: sealed under a key no
   * longer configured (two rotations without reconnecting, a lost development key), or altered. Such a
   * connection is shown with `tokenStatus: 'invalid'`, `accessToken` is empty and must never reach Meta,
   * and the admin repairs it by connecting again (or disconnecting).
   */
  secretsUnreadable?: true;
}

interface ConnectionDoc extends Omit<InstagramConnection, 'accessToken' | 'appSecret' | 'secretsUnreadable'> {
  accessTokenSealed: string;
  appSecretSealed?: string;
}

const schema = new Schema<ConnectionDoc>(
  {
    agentId: { type: String, required: true, unique: true },
    instagramAccountId: { type: String, required: true, index: true },
    username: { type: String, required: true },
    name: String,
    profilePictureUrl: String,
    pageId: String,
    tokenKind: { type: String, enum: ['page', 'instagram'], required: true },
    accessTokenSealed: { type: String, required: true },
    appSecretSealed: String,
    verifyTokenHash: { type: String, required: true },
    tokenStatus: { type: String, enum: ['valid', 'invalid'], default: 'valid' },
    webhookSubscription: { type: String, enum: ['subscribed', 'failed'], required: true },
    webhookSubscriptionError: String,
    connectedAt: { type: Date, required: true },
    webhookVerifiedAt: Date,
    lastEventAt: Date,
    registryClaimId: String,
  },
  { collection: 'instagram_connections', versionKey: false, timestamps: true },
);

/**
 * How long a found connection is served from memory. Every webhook and every inbound event looks it up;
 * this process's own changes (connect, disconnect, updates) apply to the cache at once, another process's
 * are seen within this time (docs/performance-history.md, session 1). A missing connection is never
 * cached, so a fresh connection made through another process is never answered with "not connected"
 * (events dropped).
 */
export const CONNECTION_CACHE_MS = 5_000;

const cacheKey = (db: Connection, agentId: string) => `${db.host}:${db.port}/${db.name}\u0000${agentId}`;

export class ConnectionRepo {
  private readonly cache = new TtlCache<InstagramConnection>(CONNECTION_CACHE_MS);

  constructor(private readonly secrets: SecretBox) {}

  private model(db: Connection) {
    return modelOn(db, 'InstagramConnection', schema);
  }

  async find(db: Connection, agentId: string): Promise<InstagramConnection | undefined> {
    const c = await this.cache.getOrLoad(cacheKey(db, agentId), async () => {
      const doc = await (await this.model(db)).findOne({ agentId }).lean<StoredDoc>();
      return doc ? this.fromDoc(doc) : undefined;
    });
    return c ? { ...c } : undefined;
  }

  /** Replaces the agent's connection as a whole (connecting again replaces, never merges). */
  async replace(db: Connection, c: InstagramConnection): Promise<void> {
    const { accessToken, appSecret, ...plain } = c;
    const doc: ConnectionDoc = {
      ...plain,
      accessTokenSealed: this.secrets.seal(accessToken),
      ...(appSecret ? { appSecretSealed: this.secrets.seal(appSecret) } : {}),
    };
    this.cache.delete(cacheKey(db, c.agentId));
    await (await this.model(db)).replaceOne({ agentId: c.agentId }, doc, { upsert: true });
    this.cache.delete(cacheKey(db, c.agentId));
  }

  /**
   * Records the outcome of the webhook subscription on the connection it was made for, and only on it:
   * a disconnect or another connect that completed while Meta was being asked stands (false then).
   */
  async setSubscription(
    db: Connection,
    c: Pick<InstagramConnection, 'agentId' | 'connectedAt'>,
    outcome: Pick<InstagramConnection, 'webhookSubscription' | 'webhookSubscriptionError'>,
  ): Promise<boolean> {
    const update = outcome.webhookSubscriptionError
      ? { $set: outcome }
      : {
          $set: { webhookSubscription: outcome.webhookSubscription },
          $unset: { webhookSubscriptionError: 1 },
        };
    const r = await (
      await this.model(db)
    ).updateOne({ agentId: c.agentId, connectedAt: c.connectedAt }, update);
    this.cache.delete(cacheKey(db, c.agentId));
    return r.matchedCount > 0;
  }

  /** Deletes the document: the token is gone, not flagged. */
  async delete(db: Connection, agentId: string): Promise<void> {
    this.cache.delete(cacheKey(db, agentId));
    await (await this.model(db)).deleteOne({ agentId });
    this.cache.delete(cacheKey(db, agentId));
  }

  async update(
    db: Connection,
    agentId: string,
    set: Partial<Pick<InstagramConnection, 'webhookVerifiedAt' | 'lastEventAt'>>,
  ): Promise<void> {
    await (await this.model(db)).updateOne({ agentId }, { $set: set });
    const hit = this.cache.get(cacheKey(db, agentId));
    if (hit) this.cache.set(cacheKey(db, agentId), { ...hit, ...set });
  }

  /**
   * Meta refused this connection's token: marked invalid, unless the agent has been connected again since
   * (a send made with the old token can fail after the admin pasted a new one; that says nothing of it).
   */
  async markTokenInvalid(
    db: Connection,
    c: Pick<InstagramConnection, 'agentId' | 'connectedAt'>,
  ): Promise<void> {
    const r = await (
      await this.model(db)
    ).updateOne({ agentId: c.agentId, connectedAt: c.connectedAt }, { $set: { tokenStatus: 'invalid' } });
    const key = cacheKey(db, c.agentId);
    const hit = this.cache.get(key);
    if (r.matchedCount > 0 && hit && hit.connectedAt.getTime() === c.connectedAt.getTime())
      this.cache.set(key, { ...hit, tokenStatus: 'invalid' });
  }

  private fromDoc(doc: StoredDoc): InstagramConnection {
    const { _id, createdAt, updatedAt, accessTokenSealed, appSecretSealed, ...plain } = doc;
    void [_id, createdAt, updatedAt];
    const accessToken = this.tryOpen(accessTokenSealed);
    const appSecret = appSecretSealed ? this.tryOpen(appSecretSealed) : undefined;
    if (accessToken === undefined || (appSecretSealed && appSecret === undefined))
      return { ...plain, accessToken: '', tokenStatus: 'invalid', secretsUnreadable: true };
    return { ...plain, accessToken, ...(appSecret ? { appSecret } : {}) };
  }

  /** The opened secret, or undefined when no configured key opens it (SecretBox says which, never what). */
  private tryOpen(sealed: string): string | undefined {
    try {
      return this.secrets.open(sealed);
    } catch (err) {
      if (err instanceof SecretBoxError) return undefined;
      throw err;
    }
  }
}

type StoredDoc = ConnectionDoc & { _id?: unknown; createdAt?: Date; updatedAt?: Date };
