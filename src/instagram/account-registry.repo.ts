import { Schema, type Connection } from 'mongoose';
import { isDuplicateKey, modelOn } from '../db/mongo';

/**
 * Which agent an Instagram account is connected to, across the whole platform (platform database).
 * The account id is the `_id`, so the unique index itself decides a race between two agents: exactly one
 * insert wins, the other gets a duplicate-key error. No read-then-write.
 */
export interface AccountOwner {
  subaccountId: string;
  agentId: string;
}

interface RegistryDoc extends AccountOwner {
  _id: string;
  claimedAt: Date;
}

const schema = new Schema<RegistryDoc>(
  {
    _id: String,
    subaccountId: { type: String, required: true },
    agentId: { type: String, required: true },
    claimedAt: Date,
  },
  { collection: 'instagram_account_registry', versionKey: false },
);

export class AccountRegistry {
  constructor(private readonly platformDb: Connection) {}

  private model() {
    return modelOn(this.platformDb, 'InstagramAccountRegistry', schema);
  }

  /** Claims the account for the owner. Returns the current owner when someone else holds it. */
  async claim(
    accountId: string,
    owner: AccountOwner,
  ): Promise<{ claimed: true } | { claimed: false; heldBy: AccountOwner }> {
    const Registry = await this.model();
    try {
      await Registry.create({ _id: accountId, ...owner, claimedAt: new Date() });
      return { claimed: true };
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const held = await Registry.findById(accountId).lean<RegistryDoc>();
    if (!held) return this.claim(accountId, owner); // released in between: try again
    if (held.subaccountId === owner.subaccountId && held.agentId === owner.agentId) return { claimed: true };
    return { claimed: false, heldBy: { subaccountId: held.subaccountId, agentId: held.agentId } };
  }

  /**
   * Moves a claim from a holder whose connection no longer exists (a crash between claim and save), by
   * compare-and-swap on the holder, so two rescuers cannot both win. Only claims older than the grace period
   * move: a holder that is still between its claim and its save keeps the account.
   */
  async takeOver(
    accountId: string,
    from: AccountOwner,
    to: AccountOwner,
    graceMs = 120_000,
  ): Promise<boolean> {
    const res = await (
      await this.model()
    ).updateOne(
      {
        _id: accountId,
        subaccountId: from.subaccountId,
        agentId: from.agentId,
        claimedAt: { $lt: new Date(Date.now() - graceMs) },
      },
      { $set: { ...to, claimedAt: new Date() } },
    );
    return res.modifiedCount === 1;
  }

  /** Every connected (subaccount, agent), for platform-wide maintenance (retention sweeps). */
  async owners(): Promise<AccountOwner[]> {
    return (await this.model()).find({}, { _id: 0, subaccountId: 1, agentId: 1 }).lean<AccountOwner[]>();
  }

  async release(accountId: string, owner: AccountOwner): Promise<void> {
    await (
      await this.model()
    ).deleteOne({ _id: accountId, subaccountId: owner.subaccountId, agentId: owner.agentId });
  }
}
