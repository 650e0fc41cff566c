import crypto from 'node:crypto';
import http from 'node:http';
import jwt from 'jsonwebtoken';
import mongoose, { Types, type Connection } from 'mongoose';
import { startGraphSimulator, type GraphSimulator } from '../../src/simulators/graph.simulator';
import { startRetellSimulator, type RetellSimulator } from '../../src/simulators/retell.simulator';
import { request } from './load';

/**
 * Everything around the connector for one scenario: a fresh platform database on the bench server, one
 * subaccount with one chat agent connected to an Instagram account, and the loopback Graph and Retell
 * simulators. Meta's echo of every sent message is delivered back to the webhook (as Meta does), after
 * the send is answered. Each DM carries a sequence number that the simulated agent repeats, so a Graph
 * send is matched to the DM that caused it.
 */
export const JWT_SECRET = crypto.randomBytes(32).toString('hex');
export const ENCRYPTION_KEY = crypto.randomBytes(32).toString('base64');

export interface Turn {
  seq: number;
  userId: string;
  ackAt: number;
  sentAt?: number;
}

export class World {
  graph!: GraphSimulator;
  retell!: RetellSimulator;
  platformDb!: Connection;
  subaccountId = new Types.ObjectId().toHexString();
  agentId = `agent_${new Types.ObjectId().toHexString()}`;
  accountId = `1784${crypto.randomInt(1e9, 1e10)}`;
  appSecret = crypto.randomBytes(16).toString('hex');
  token = `IGAA${crypto.randomBytes(24).toString('hex')}`;
  readonly turns = new Map<number, Turn>();
  /** Per user, the sequence numbers in the order the Graph API received their replies. */
  readonly repliesByUser = new Map<string, number[]>();
  /** Where echoes are delivered (the connector ports, round-robin). */
  echoPorts: number[] = [];
  echoes = true;
  /** A server whose webhook is not the connector's route (the turn baseline): its path, by port. */
  readonly webhookPaths = new Map<number, string>();
  private seq = 0;
  private echoRr = 0;
  private waiters = new Set<() => void>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

  constructor(
    readonly serverUri: string,
    readonly dbName: string,
    /** The connector's `maxPoolSize`, when the database wants another than the connector's default. */
    readonly connectorPool?: number,
  ) {}

  get dbUri() {
    return `${this.serverUri}/${this.dbName}`;
  }
  /** The connector's `MONGODB_URI`: its database on `serverUri`, with its pool size and `params`. */
  connectorUri(serverUri = this.serverUri, params: string[] = []): string {
    const query = [...params, ...(this.connectorPool ? [`maxPoolSize=${this.connectorPool}`] : [])];
    return `${serverUri}/${this.dbName}${query.length ? `?${query.join('&')}` : ''}`;
  }
  /** Where the baselines (bench/baseline-server.ts) write. */
  get baselineDbName() {
    return `${this.dbName}_baseline`;
  }
  get subDbName() {
    return `subaccount_${this.subaccountId}`;
  }
  path(route: string) {
    return `/api/database/${this.subaccountId}/chat-agents/${this.agentId}/instagram/${route}`;
  }
  bearer(role: 'admin' | 'user' = 'admin') {
    const t = jwt.sign({ userId: 'bench', role, subaccountIds: [this.subaccountId] }, JWT_SECRET, {
      algorithm: 'HS256',
      expiresIn: '2h',
    });
    return { authorization: `Bearer ${t}` };
  }

  async start(): Promise<void> {
    this.graph = await startGraphSimulator();
    this.retell = await startRetellSimulator();
    this.graph.accounts.set(this.token, {
      id: this.accountId,
      username: 'bench_shop',
      name: 'Bench Shop',
      appScopedId: `99${this.accountId}`,
    });
    this.graph.onSend = (sent) => {
      const now = Date.now();
      const text = typeof sent.message.text === 'string' ? sent.message.text : '';
      const seq = Number(/#(\d+)#/.exec(text)?.[1] ?? NaN);
      const turn = this.turns.get(seq);
      if (turn && turn.sentAt === undefined) {
        turn.sentAt = now;
        const list = this.repliesByUser.get(turn.userId) ?? [];
        list.push(seq);
        this.repliesByUser.set(turn.userId, list);
        for (const w of [...this.waiters]) w();
      }
      if (this.echoes && this.echoPorts.length) {
        // After the send's answer, like Meta: a separate delivery, not awaited by the send.
        const port = this.echoPorts[this.echoRr++ % this.echoPorts.length]!;
        const echo = {
          sender: { id: this.accountId },
          recipient: { id: sent.recipientId },
          timestamp: sent.timestamp,
          message: { mid: sent.messageId, text, is_echo: true },
        };
        setImmediate(() => void this.deliver(port, [echo]).catch(() => undefined));
      }
      // The simulators keep every request for tests; a long bench must not keep them.
      if (this.graph.requests.length > 1000) this.graph.requests.length = 0;
      if (this.graph.sent.length > 1000) this.graph.sent.length = 0;
      if (this.retell.requests.length > 1000) this.retell.requests.length = 0;
      if (this.retell.completions.length > 1000) this.retell.completions.length = 0;
      if (this.retell.created.length > 1000) this.retell.created.length = 0;
    };
    this.retell.setReply((content) => `Thanks! ${content}`);
    this.platformDb = await mongoose.createConnection(this.dbUri, { maxPoolSize: 20 }).asPromise();
    await this.platformDb
      .collection('subaccounts')
      .insertOne({ _id: new Types.ObjectId(this.subaccountId), name: 'Bench', isActive: true });
    await this.platformDb
      .useDb(this.subDbName)
      .collection('chatagents')
      .insertOne({ agentId: this.agentId, name: 'Bench agent', isActive: true });
  }

  connectorEnv(): Record<string, string> {
    return {
      MONGODB_URI: this.connectorUri(),
      JWT_SECRET,
      TOKEN_ENCRYPTION_KEY: ENCRYPTION_KEY,
      META_GRAPH_URL: this.graph.metaGraphUrl,
      INSTAGRAM_GRAPH_URL: this.graph.instagramGraphUrl,
      RETELL_BASE_URL: this.retell.url,
      RETELL_API_KEY: this.retell.apiKey,
      DATA_DIR: `/tmp/igc-bench-data-${this.dbName}`,
    };
  }

  async connect(port: number): Promise<void> {
    const res = await request(this.agent, {
      port,
      path: this.path('connect'),
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.bearer('admin') },
      body: JSON.stringify({ accessToken: this.token, appSecret: this.appSecret }),
    });
    if (res.status !== 200) throw new Error(`connect failed: ${res.status} ${res.body}`);
  }

  /** A visitor the Graph API knows (so the profile lookup succeeds, as it would in production). */
  visitor(i: number): string {
    const id = `${9_000_000_000_000 + i}`;
    if (!this.graph.users.has(id)) this.graph.users.set(id, { username: `visitor_${i}`, name: 'Visitor' });
    return id;
  }

  /** A DM from `userId`; its sequence number travels through the agent's reply. */
  dm(userId: string, timestamp = Date.now()) {
    const seq = ++this.seq;
    return {
      seq,
      event: {
        sender: { id: userId },
        recipient: { id: this.accountId },
        timestamp,
        message: { mid: `aWdf${crypto.randomBytes(18).toString('base64url')}`, text: `hello #${seq}#` },
      },
    };
  }

  signedBody(events: object[]): { body: string; headers: Record<string, string> } {
    const body = JSON.stringify({
      object: 'instagram',
      entry: [{ id: this.accountId, time: Date.now(), messaging: events }],
    });
    const sig = crypto.createHmac('sha256', this.appSecret).update(body).digest('hex');
    return { body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${sig}` } };
  }

  async deliver(port: number, events: object[]) {
    const { body, headers } = this.signedBody(events);
    const send = () =>
      request(this.agent, {
        port,
        path: this.webhookPaths.get(port) ?? this.path('webhook'),
        method: 'POST',
        headers,
        body,
      });
    // A kept-alive socket the server closed while idle fails once; Meta retries too (deliveries are idempotent).
    const res = await send().catch(() => send());
    if (res.status !== 200) throw new Error(`webhook answered ${res.status}: ${res.body.slice(0, 200)}`);
    return res;
  }

  /** Sends DMs (one POST each) and records their acknowledgement times. */
  async sendDms(port: number, userId: string, n = 1): Promise<number[]> {
    const seqs: number[] = [];
    for (let i = 0; i < n; i++) {
      const { seq, event } = this.dm(userId);
      this.turns.set(seq, { seq, userId, ackAt: 0 });
      await this.deliver(port, [event]);
      this.turns.get(seq)!.ackAt = Date.now();
      seqs.push(seq);
    }
    return seqs;
  }

  /** Resolves when every listed turn's reply reached the Graph API. */
  waitForReplies(seqs: number[], timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (seqs.every((s) => this.turns.get(s)?.sentAt !== undefined)) {
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        const missing = seqs.filter((s) => this.turns.get(s)?.sentAt === undefined).length;
        reject(new Error(`${missing} of ${seqs.length} replies not sent within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  async backlog(): Promise<number> {
    return this.platformDb.collection('instagram_inbound_events').countDocuments({ status: 'pending' });
  }

  async close(): Promise<void> {
    this.agent.destroy();
    await this.platformDb
      .useDb(this.subDbName)
      .dropDatabase()
      .catch(() => undefined);
    await this.platformDb
      .useDb(this.baselineDbName)
      .dropDatabase()
      .catch(() => undefined);
    await this.platformDb.dropDatabase().catch(() => undefined);
    await this.platformDb.close();
    await this.graph.close();
    await this.retell.close();
  }
}
