import { Schema, type Connection } from 'mongoose';
import { modelOn } from '../db/mongo';
import type { ChatAgent } from './platform';

interface ChatAgentDoc {
  agentId: string;
  name: string;
  isActive?: boolean;
}

// Owned by the platform, read-only here.
const schema = new Schema<ChatAgentDoc>(
  {},
  { collection: 'chatagents', strict: false, autoIndex: false, autoCreate: false },
);

export async function findActiveAgent(db: Connection, agentId: string): Promise<ChatAgent | undefined> {
  const Agents = await modelOn(db, 'ChatAgent', schema);
  const doc = await Agents.findOne({ agentId: String(agentId) }).lean<ChatAgentDoc>();
  if (!doc || doc.isActive === false) return undefined;
  return { agentId: doc.agentId, name: doc.name };
}
