import { Schema, Types, type Connection } from 'mongoose';
import { modelOn } from '../db/mongo';
import type { Subaccount } from './platform';

interface SubaccountDoc {
  _id: Types.ObjectId;
  name: string;
  isActive?: boolean;
  databaseName?: string;
  mongodbUri?: string;
}

// The platform owns this collection; we read it and never reshape it (no indexes, strict: false).
const schema = new Schema<SubaccountDoc>(
  {},
  { collection: 'subaccounts', strict: false, autoIndex: false, autoCreate: false },
);

export async function findActiveSubaccount(
  platform: Connection,
  id: string,
): Promise<Subaccount | undefined> {
  if (!/^[0-9a-fA-F]{24}$/.test(id)) return undefined;
  const Subaccounts = await modelOn(platform, 'Subaccount', schema);
  const doc = await Subaccounts.findOne({ _id: new Types.ObjectId(id) }).lean<SubaccountDoc>();
  if (!doc || doc.isActive === false) return undefined;
  return {
    id: doc._id.toHexString(),
    name: doc.name,
    databaseName: doc.databaseName || undefined,
    mongodbUri: doc.mongodbUri || undefined,
  };
}
