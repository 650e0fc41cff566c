import crypto from 'node:crypto';
import { Schema, type Connection } from 'mongoose';
import { isDuplicateKey, modelOn } from '../db/mongo';

/**
 * Which agent an Instagram account is connected to, across the whole platform (platform database).
 * The account id is the `_id`, so the unique index itself decides a race between two agents: exactly one
 * insert wins, the other gets a duplicate-key error. No read-then-write.
 *
 * Every claim, a holder's own repeat included, writes a new `claimId`, which the connection made with it
 * keeps (`InstagramConnection.registryClaimId`). A release names the claim it frees: one made from a
 * connection read before a newer claim of the same account (two overlapping connects of one agent, or a
 * connect beside a disconnect) frees nothing, so the newer connection keeps its account. The cost of that
 * rule is the rare leftover claim (two overlapping connects of one agent to one account, the older claim
 * stored last), which `takeOver` moves once its grace period has passed.
 */
export interface AccountOwner {
  subaccountId: string;
  agentId: string;
}

interface RegistryDoc extends AccountOwner {
  _id: string;
  claimedAt: Date;
  /** Absent on claims written before claim ids existed. */
  claimId?: string;
}

const schema = new Schema<RegistryDoc>(
  {
    _id: String,
    subaccountId: { type: String, required: true },
    agentId: { type: String, required: true },
    claimedAt: Date,
    claimId: String,
  },
  { collection: 'instagram_account_registry', versionKey: false },
);

export class AccountRegistry {
  constructor(private readonly platformDb: Connection) {}

  private model() {
    return modelOn(this.platformDb, 'InstagramAccountRegistry', schema);
  }

  /** Claims the account for the owner (again, if it holds it). Returns the current owner when someone else holds it. */
  async claim(
    accountId: string,
    owner: AccountOwner,
  ): Promise<{ claimed: true; claimId: string } | { claimed: false; heldBy: AccountOwner }> {
    const Registry = await this.model();
    const claimId = crypto.randomUUID();
    try {
      await Registry.create({ _id: accountId, ...owner, claimedAt: new Date(), claimId });
      return { claimed: true, claimId };
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const again = await Registry.updateOne(
      { _id: accountId, subaccountId: owner.subaccountId, agentId: owner.agentId },
      { $set: { claimedAt: new Date(), claimId } },
    );
    if (again.matchedCount === 1) return { claimed: true, claimId };
    const held = await Registry.findById(accountId).lean<RegistryDoc>();
    if (!held) return this.claim(accountId, owner); // released in between: try again
    if (held.subaccountId === owner.subaccountId && held.agentId === owner.agentId)
      return this.claim(accountId, owner); // became ours in between (a takeOver): claim it anew
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
  ): Promise<{ claimId: string } | undefined> {
    const claimId = crypto.randomUUID();
    const res = await (
      await this.model()
    ).updateOne(
      {
        _id: accountId,
        subaccountId: from.subaccountId,
        agentId: from.agentId,
        claimedAt: { $lt: new Date(Date.now() - graceMs) },
      },
      { $set: { ...to, claimedAt: new Date(), claimId } },
    );
    return res.modifiedCount === 1 ? { claimId } : undefined;
  }

  /** Every connected (subaccount, agent), for platform-wide maintenance (retention sweeps). */
  async owners(): Promise<AccountOwner[]> {
    return (await this.model()).find({}, { _id: 0, subaccountId: 1, agentId: 1 }).lean<AccountOwner[]>();
  }

  /**
   * Frees the account, if the owner still holds it under `claimId` (the claim its connection was made
   * with; undefined for a connection made before claim ids existed, which frees only a claim without one).
   */
  async release(accountId: string, owner: AccountOwner, claimId: string | undefined): Promise<void> {
    await (
      await this.model()
    ).deleteOne({
      _id: accountId,
      subaccountId: owner.subaccountId,
      agentId: owner.agentId,
      claimId: claimId ?? { $exists: false },
    });
  }
}
