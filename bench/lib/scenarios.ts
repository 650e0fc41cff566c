import { closedLoop, request, type RequestSpec } from './load';
import { startBaseline, startConnector, type Proc } from './processes';
import { figure, summary, type Figure } from './stats';
import { World } from './world';
import { ConversationsRepo, conversationId, preview } from '../../src/chats/conversations.repo';
import { chatDocId } from '../../src/chats/chats.repo';
import { MessagesRepo, type NewMessage } from '../../src/chats/messages.repo';
import { HANDLED_SHARDS, handledCollection } from '../../src/inbound/inbound-event.repo';
import http from 'node:http';
import mongoose, { Schema, mongo } from 'mongoose';
import os from 'node:os';
import { allowedPerSecond, cpuPerUnit, cpuSnapshot, type CpuRoles } from './cpu';
import { countsPer, startCommandCounter } from './command-counter';

/**
 * The five scenarios of issue 7, and `commands` (what one database command costs the calling process).
 * Each returns its figures; a figure's `rounds` are the per-round values.
 */
export interface Opts {
  rounds: number;
  roundMs: number;
  /** The least DMs per user in a turns round. */
  turnsPerUser: number;
  /** The DMs a turns round aims at, over all its users. */
  turnSamples: number;
  /**
   * The `paced.u16` turns figure: 16 users who wait this long on average (uniformly 0 to twice as long)
   * after a reply before writing again; 0 leaves it out.
   */
  pacedThinkMs: number;
  readsTurns: number;
  readsUsers: number;
  soakEvents: number;
  soakBudgetMs: number;
  serverUri: string;
  /** The connector's pool size on this database, as the embedded default chooses it (FerretDB: 2). */
  connectorPool?: number;
  /** The database server's process, when the bench started it: its CPU per turn is reported. */
  dbPid?: number;
  log(line: string): void;
}

export type Figures = Record<
  string,
  Figure | string | number | boolean | Record<string, unknown> | unknown[]
>;

let dbCounter = 0;
const dbName = (s: string) => `bench_${s}_${process.pid}_${++dbCounter}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withWorld<T>(o: Opts, name: string, fn: (w: World) => Promise<T>): Promise<T> {
  const w = new World(o.serverUri, dbName(name), o.connectorPool);
  await w.start();
  try {
    return await fn(w);
  } finally {
    await w.close();
  }
}

/**
 * Warm-up rounds until the throughput stops rising: two rounds in a row no more than 5 % above the best
 * before them, at most 30 rounds. Returns each round's rate. A fresh process compiles its hot code while it
 * runs, and so does the database when it runs on a JVM (mongo-java-server); both share the machine's CPUs.
 */
async function untilSteady(round: () => Promise<number>): Promise<number[]> {
  const rates: number[] = [];
  let best = 0;
  let flat = 0; // rounds since the best one
  while (rates.length < 30 && flat < 2) {
    const rate = await round();
    rates.push(Math.round(rate * 10) / 10);
    flat = rate > best * 1.05 ? 0 : flat + 1;
    best = Math.max(best, rate);
  }
  return rates;
}

// 1. Webhook intake vs a bare insertOne endpoint ---------------------------------------------------------

export async function intake(o: Opts, concurrencies = [1, 16, 64]): Promise<Figures> {
  return withWorld(o, 'intake', async (w) => {
    const c = await startConnector({ ...w.connectorEnv(), WORKER_ENABLED: 'false' });
    const b = await startBaseline(`${o.serverUri}/${w.baselineDbName}`);
    const out: Figures = {
      note: 'connector worker off: intake only (verify → parse → insertMany → 200); cpuPerRequest = CPU time per acknowledged request of the server under test, the database and the bench (load generator)',
    };
    try {
      await w.connect(c.port);
      const spec =
        (proc: Proc, path: string) =>
        (i: number): RequestSpec => {
          const { body, headers } = w.signedBody([w.dm(w.visitor(i % 1000)).event]);
          return { port: proc.port, path, method: 'POST', headers, body };
        };
      const targets = [
        ['connector', spec(c, w.path('webhook')), c.pid],
        ['baseline', spec(b, '/webhook'), b.pid],
      ] as const;
      for (const conc of concurrencies) {
        const per: Record<
          string,
          { tput: number[]; p50: number[]; p99: number[]; failed: number; cpu: Record<string, number[]> }
        > = {};
        for (const [name, next] of targets) {
          per[name] = { tput: [], p50: [], p99: [], failed: 0, cpu: {} };
          const rates = await untilSteady(async () => {
            const res = await closedLoop(conc, 1000, next);
            return (res.ok / res.elapsedMs) * 1000;
          });
          out[`${name}.c${conc}.warmUp.throughput`] = rates;
        }
        for (let r = 0; r < o.rounds; r++) {
          for (const [name, next, pid] of targets) {
            const roles: CpuRoles = { server: pid, database: o.dbPid, bench: 'self' };
            const cpuBefore = cpuSnapshot(roles);
            const res = await closedLoop(conc, o.roundMs, next);
            const cpu = cpuPerUnit(cpuBefore, cpuSnapshot(roles), res.ok);
            const s = summary(res.latenciesMs);
            per[name]!.tput.push((res.ok / res.elapsedMs) * 1000);
            per[name]!.p50.push(s.p50);
            per[name]!.p99.push(s.p99);
            per[name]!.failed += res.failed;
            for (const [role, ms] of Object.entries(cpu)) (per[name]!.cpu[role] ??= []).push(ms * 1000);
          }
        }
        for (const [name, v] of Object.entries(per)) {
          out[`${name}.c${conc}.throughput`] = figure(v.tput, 'req/s');
          out[`${name}.c${conc}.p50`] = figure(v.p50, 'ms');
          out[`${name}.c${conc}.p99`] = figure(v.p99, 'ms');
          out[`${name}.c${conc}.failed`] = v.failed;
          for (const [role, us] of Object.entries(v.cpu))
            out[`${name}.c${conc}.cpuPerRequest.${role}`] = figure(us, 'µs');
        }
        o.log(
          `intake c=${conc}: connector ${(out[`connector.c${conc}.throughput`] as Figure).median} req/s p99 ${(out[`connector.c${conc}.p99`] as Figure).median} ms; baseline ${(out[`baseline.c${conc}.throughput`] as Figure).median} req/s`,
        );
      }
    } finally {
      await c.stop();
      await b.stop();
    }
    return out;
  });
}

// 2. Turn overhead: ack → Graph send ---------------------------------------------------------------------

export async function turns(o: Opts, userCounts = [1, 16, 64], delays = [0, 800]): Promise<Figures> {
  return withWorld(o, 'turns', async (w) => {
    const c = await startConnector(w.connectorEnv());
    const out: Figures = {
      note: 'each user sends its next DM when the previous reply was sent (paced.*: after a pause of 0 to 2 × thinkMs, not the target’s measure); overhead = send − ack − agent delay; echoes delivered; cpuPerTurn = CPU time of each process per turn (bench = load generator + simulators), cpuAllows = turns/s the machine’s CPUs allow at that cost; baseline.* = the same rounds against the turn baseline (bench/baseline-server.ts: a bare pipeline doing the core of every DM), instant agent only; commandsPerDm = database commands per DM on the wire (1 user, DMs in a row, a pass of its own)',
    };
    // The turn baseline's what-ifs (bench/baseline-server.ts) change what `baseline.*` measures: say so.
    const whatIf = ['BASELINE_PAD', 'BASELINE_BATCH', 'BASELINE_BURN_US'].filter((k) => process.env[k]);
    if (whatIf.length) out['baseline.whatIf'] = whatIf.map((k) => `${k}=${process.env[k]}`).join(' ');
    let base = 0;
    /** Fresh users for every measured count: each one's first DM creates its Retell chat. */
    const usersFor = (n: number) => {
      const users = Array.from({ length: n }, (_, i) => w.visitor(base + i));
      base += n;
      return users;
    };
    /**
     * Not measured, with an instant agent: rounds of 16 users × 10 DMs. A fresh process compiles its hot code
     * while it runs, and so does the database when it runs on a JVM (mongo-java-server): with one round of
     * warm-up, the 16-user figures measured the JIT (session 8: database CPU per turn 15 ms after one round,
     * 2.5 ms after 2,400 DMs; the bare pipeline, measured afterwards, always met a warm database). So the
     * rounds go on `untilSteady`. `steady: false` runs one round (before the command count).
     */
    const warmUp = async (port: number, steady = true): Promise<number[]> => {
      w.retell.setDelay(0);
      const users = usersFor(16);
      const round = async () => {
        const started = Date.now();
        await Promise.all(
          users.map(async (u) => {
            for (let i = 0; i < 10; i++) await w.waitForReplies(await w.sendDms(port, u), 60_000);
          }),
        );
        return (users.length * 10 * 1000) / (Date.now() - started);
      };
      return steady ? untilSteady(round) : [await round()];
    };
    const measure = async (label: string, server: Proc, delays: number[]) => {
      w.echoPorts = [server.port];
      // `connector` for the connector, `server` for the baseline (as in the intake figures).
      const roles: CpuRoles = {
        [label ? 'server' : 'connector']: server.pid,
        database: o.dbPid,
        bench: 'self',
      };
      const rates = await warmUp(server.port);
      out[`${label}warmUp.throughput`] = rates;
      o.log(`turns ${label}warm-up: ${rates.join(', ')} turns/s over its rounds`);
      // `paced`: users who read and type (a random pause after each reply, and a random start) rather
      // than write again at once. The connector only, instant agent: an extra figure, not the target's.
      const passes = delays.map((delay) => ({ delay, counts: userCounts, thinkMs: 0 }));
      if (!label && o.pacedThinkMs > 0) passes.push({ delay: 0, counts: [16], thinkMs: o.pacedThinkMs });
      const pause = (thinkMs: number) =>
        thinkMs > 0 ? new Promise((r) => setTimeout(r, Math.random() * 2 * thinkMs)) : undefined;
      for (const { delay, counts, thinkMs } of passes) {
        w.retell.setDelay(delay);
        for (const n of counts) {
          const users = usersFor(n);
          // About `turnSamples` DMs per round (3 to 20 per user), so that a round's p99 is not its maximum.
          const perUser = Math.min(20, Math.max(o.turnsPerUser, Math.ceil(o.turnSamples / n)));
          const oneRound = async (k: number) => {
            const started = Date.now();
            const cpuBefore = cpuSnapshot(roles);
            const seqs: number[] = [];
            await Promise.all(
              users.map(async (u) => {
                for (let i = 0; i < k; i++) {
                  await pause(thinkMs);
                  const [s] = await w.sendDms(server.port, u);
                  seqs.push(s!);
                  await w.waitForReplies([s!], 60_000);
                }
              }),
            );
            const overhead = seqs.map((s) => {
              const t = w.turns.get(s)!;
              return t.sentAt! - t.ackAt - delay;
            });
            const cpu = cpuPerUnit(cpuBefore, cpuSnapshot(roles), seqs.length);
            return { overhead, tput: (seqs.length / (Date.now() - started)) * 1000, cpu };
          };
          const key = `${label}${thinkMs ? 'paced' : delay ? 'slow' : 'instant'}.u${n}`;
          if (thinkMs) out[`${key}.thinkMs`] = thinkMs;
          const p50: number[] = [];
          const p99: number[] = [];
          const tput: number[] = [];
          const cpu: Record<string, number[]> = {};
          try {
            // Warm-up: creates each user's Retell chat. (Paced users start each round at random: the pause
            // comes before each DM.)
            await oneRound(1);
            for (let r = 0; r < o.rounds; r++) {
              const res = await oneRound(perUser);
              const s = summary(res.overhead);
              p50.push(s.p50);
              p99.push(s.p99);
              tput.push(res.tput);
              for (const [role, ms] of Object.entries(res.cpu)) (cpu[role] ??= []).push(ms);
            }
          } catch (err) {
            // A reply slower than the bound: reported, and the remaining user counts still measured.
            out[`${key}.error`] = (err as Error).message;
            o.log(`turns ${key}: ${(err as Error).message}`);
            continue;
          }
          out[`${key}.overhead.p50`] = figure(p50, 'ms');
          out[`${key}.overhead.p99`] = figure(p99, 'ms');
          out[`${key}.throughput`] = figure(tput, 'turns/s');
          for (const [role, ms] of Object.entries(cpu)) out[`${key}.cpuPerTurn.${role}`] = figure(ms, 'ms');
          if (cpu.total)
            out[`${key}.cpuAllows`] = figure(
              cpu.total.map((ms) => allowedPerSecond(os.cpus().length, ms)),
              'turns/s',
            );
          o.log(
            `turns ${key}: overhead p50 ${figure(p50, 'ms').median} p99 ${figure(p99, 'ms').median} ms, ${figure(tput, '').median} turns/s; CPU ms per turn ${Object.entries(
              cpu,
            )
              .map(([role, ms]) => `${role} ${figure(ms, '').median}`)
              .join(', ')}`,
          );
        }
      }
    };
    try {
      await w.connect(c.port);
      await measure('', c, delays);
    } finally {
      await c.stop();
    }
    const startBare = async (serverUri: string, options = '') => {
      const b = await startBaseline(`${serverUri}/${w.baselineDbName}${options}`, {
        BASELINE_RETELL_URL: w.retell.url,
        BASELINE_RETELL_KEY: w.retell.apiKey,
        BASELINE_GRAPH_URL: w.graph.instagramGraphUrl,
        BASELINE_GRAPH_VERSION: w.graph.version,
        BASELINE_TOKEN: w.token,
        BASELINE_APP_SECRET: w.appSecret,
        BASELINE_AGENT: w.agentId,
      });
      w.webhookPaths.set(b.port, '/turns/webhook');
      return b;
    };
    // The baseline runs second, on a database server that holds the connector's data by then (in a
    // database of its own). A failure there is recorded beside the connector's figures, not instead of them.
    try {
      const b = await startBare(o.serverUri);
      try {
        await measure('baseline.', b, [0]);
      } finally {
        await b.stop();
      }
    } catch (err) {
      out['baseline.error'] = (err as Error).message;
      o.log(`turns baseline: ${(err as Error).message}`);
    }
    // Commands per DM, counted on the wire in a pass of its own (the relay costs CPU and adds a hop): one
    // user, DMs in a row, each answered before the next, after a warm-up; a fresh process of each kind.
    if (!/^mongodb:\/\/[^/@,?]+:\d+\/?$/.test(o.serverUri))
      out['commandsPerDm.skipped'] = 'the relay takes a single host:port URI without options';
    else {
      const count = async (label: string, start: (serverUri: string) => Promise<Proc>) => {
        const counter = await startCommandCounter(o.serverUri);
        try {
          const server = await start(counter.uri);
          w.echoPorts = [server.port];
          try {
            const [u] = usersFor(1);
            const dms = async (n: number) => {
              for (let i = 0; i < n; i++) await w.waitForReplies(await w.sendDms(server.port, u!), 60_000);
              await sleep(300); // the last DM's bookkeeping after its reply
            };
            // The warm-up also creates most of the (sharded) collections the process touches; the
            // `create`s that remain are left out of the total below.
            await warmUp(server.port, false);
            await dms(1); // the user's first DM starts its Retell chat: not counted
            const before = counter.counts();
            await dms(20);
            // Includes the worker's idle polls (every 500 ms) while the pass runs: more on a slower database.
            const per = countsPer(before, counter.counts(), 20);
            if (per.steady === 0) throw new Error('no command passed the relay');
            out[`${label}commandsPerDm`] = figure([per.steady], 'commands');
            out[`${label}commandsPerDm.byCommand`] = per.byCommand;
            o.log(`turns ${label}commandsPerDm: ${per.steady} (${per.total} with one-time creates)`);
          } finally {
            await server.stop();
          }
        } finally {
          await counter.close();
        }
      };
      try {
        // directConnection: a driver that discovered a replica set's members would go past the relay.
        await count('', (uri) =>
          startConnector({
            ...w.connectorEnv(),
            MONGODB_URI: w.connectorUri(uri, ['directConnection=true']),
          }),
        );
        await count('baseline.', (uri) => startBare(uri, '?directConnection=true'));
      } catch (err) {
        out['commandsPerDm.error'] = (err as Error).message;
        o.log(`turns commandsPerDm: ${(err as Error).message}`);
      }
    }
    return out;
  });
}

// 3. Reads with many stored turns -------------------------------------------------------------------------

export async function reads(o: Opts): Promise<Figures> {
  return withWorld(o, 'reads', async (w) => {
    const sub = w.platformDb.useDb(w.subDbName);
    const t0 = Date.now();
    await seedTurns(w, o.readsTurns, o.readsUsers);
    const seedMs = Date.now() - t0;
    o.log(
      `reads: seeded ${o.readsTurns} turns over ${o.readsUsers} users in ${(seedMs / 1000).toFixed(1)} s`,
    );
    void sub;
    const c = await startConnector({ ...w.connectorEnv(), WORKER_ENABLED: 'false' });
    const out: Figures = { turns: o.readsTurns, users: o.readsUsers, seedSeconds: Math.round(seedMs / 1000) };
    const agent = new http.Agent({ keepAlive: true });
    try {
      await w.connect(c.port);
      const headers = w.bearer('user');
      const routes: Record<string, () => string> = {
        messages: () => w.path('messages?limit=50'),
        messagesOfUser: () =>
          w.path(`messages?limit=50&userId=${w.visitor(Math.floor(Math.random() * o.readsUsers))}`),
        conversations: () => w.path('conversations?limit=50'),
      };
      for (const [name, path] of Object.entries(routes)) {
        for (let i = 0; i < 2; i++) await request(agent, { port: c.port, path: path(), headers }); // warm-up
        const p50: number[] = [];
        const p99: number[] = [];
        for (let r = 0; r < o.rounds; r++) {
          const lat: number[] = [];
          const end = Date.now() + o.roundMs;
          while ((Date.now() < end || lat.length < 3) && lat.length < 200) {
            const res = await request(agent, { port: c.port, path: path(), headers });
            if (res.status !== 200) throw new Error(`${name}: ${res.status} ${res.body.slice(0, 200)}`);
            lat.push(res.ms);
          }
          const s = summary(lat);
          p50.push(s.p50);
          p99.push(s.p99);
        }
        out[`${name}.p50`] = figure(p50, 'ms');
        out[`${name}.p99`] = figure(p99, 'ms');
        o.log(`reads ${name}: p50 ${figure(p50, 'ms').median} ms, p99 ${figure(p99, 'ms').median} ms`);
      }
    } finally {
      agent.destroy();
      await c.stop();
    }
    return out;
  });
}

/**
 * Stored history written in the shapes the repositories write (chats documents, the messages index,
 * conversation summaries), in bulk: `turns` turns over `users` users, alternating user and agent turns.
 */
async function seedTurns(w: World, turns: number, users: number): Promise<void> {
  const db = w.platformDb.useDb(w.subDbName);
  const perUser = Math.ceil(turns / users);
  const start = Date.now() - turns * 1000;
  let chats: object[] = [];
  let rows: NewMessage[] = [];
  let convs: object[] = [];
  const messagesRepo = new MessagesRepo();
  const flush = async (force = false) => {
    if (rows.length >= 5000 || force) {
      // The messages index through its bulk path: rows, stream heads and pages as `insert` writes them.
      if (rows.length) await messagesRepo.importRows(db, rows);
      if (chats.length) await db.collection('chats').insertMany(chats as never[], { ordered: false });
      if (convs.length)
        await db.collection('instagram_conversations').insertMany(convs as never[], { ordered: false });
      rows = [];
      chats = [];
      convs = [];
    }
  };
  let written = 0;
  for (let u = 0; u < users && written < turns; u++) {
    const userId = w.visitor(u);
    const chatId = `chat_seed_${u}`;
    const messages: Record<string, unknown>[] = [];
    let last = 0;
    let lastInbound = 0;
    let lastText = '';
    for (let i = 0; i < perUser && written < turns; i++, written++) {
      const ts = start + ((written * 997) % (turns * 1000)) + i;
      const role = i % 2 === 0 ? 'user' : 'agent';
      const content =
        role === 'user' ? `question ${i} from visitor ${u}` : `Thanks! answer ${i} for visitor ${u}`;
      const messageId = `ig_seed_${u}_${i}`;
      const mid = `aWdfseed${u}x${i}`;
      messages.push({
        message_id: messageId,
        role,
        content,
        created_timestamp: ts,
        instagram_mid: mid,
        attachments: [],
        ...(role === 'agent' ? { delivery_status: 'sent' } : {}),
      });
      rows.push({
        agentId: w.agentId,
        userId,
        chatId,
        messageId,
        role,
        content,
        attachments: [],
        timestamp: new Date(ts),
        status: role === 'user' ? 'received' : 'sent',
        instagramMid: mid,
        // Known from the first reply on (the profile is fetched after it), as the connector records it.
        ...(i >= 2 ? { username: `visitor_${u}` } : {}),
      });
      last = Math.max(last, ts);
      if (role === 'user') lastInbound = Math.max(lastInbound, ts);
      lastText = content;
    }
    chats.push({
      _id: chatDocId(chatId),
      chat_id: chatId,
      agent_id: w.agentId,
      subaccountId: w.subaccountId,
      chat_status: 'ongoing',
      start_timestamp: start,
      end_timestamp: null,
      transcript: messages
        .map((m) => `${m.role === 'user' ? 'User' : 'Agent'}: ${String(m.content)}`)
        .join('\n'),
      message_count: messages.length,
      messages,
      metadata: {
        channel: 'instagram',
        instagram_user_id: userId,
        instagram_account_id: w.accountId,
        instagram_username: `visitor_${u}`,
      },
      createdBy: 'instagram-connector',
      createdAt: new Date(start),
      updatedAt: new Date(last),
      lastMessageAt: new Date(last),
    });
    convs.push({
      _id: conversationId(w.agentId, userId),
      agentId: w.agentId,
      userId,
      username: `visitor_${u}`,
      lastMessageKey: `${new Date(last).toISOString()}\u0000agent\u0000${preview(lastText)}`,
      lastMessageAt: new Date(last),
      lastInboundAt: new Date(lastInbound),
      messageCount: messages.length,
      chatId,
    });
    await flush();
  }
  await flush(true);
  await new ConversationsRepo().rebuildRecency(db, w.agentId); // the recency pages of the imported rows
}

// 4. Soak ---------------------------------------------------------------------------------------------------

export async function soak(o: Opts): Promise<Figures> {
  return withWorld(o, 'soak', async (w) => {
    const c = await startConnector(w.connectorEnv());
    w.echoPorts = [c.port];
    const dmsWanted = Math.ceil(o.soakEvents / 2); // each DM's reply comes back as an echo: 2 events
    const users = 500;
    const batch = 10; // Meta batches events; 10 DMs per POST
    const maxOutstanding = 200;
    try {
      await w.connect(c.port);
      const warm = await w.sendDms(c.port, w.visitor(0));
      await w.waitForReplies(warm, 30_000);
      const rss: Record<string, number> = { start: Math.round(c.rssMb()) };
      const started = Date.now();
      const deadline = started + o.soakBudgetMs;
      let fed = 0;
      const replied = () => [...w.turns.values()].filter((t) => t.sentAt !== undefined).length - warm.length;
      const rate: { at: number; replied: number }[] = [];
      let lastSample = 0;
      while (fed < dmsWanted && Date.now() < deadline) {
        if (fed - replied() >= maxOutstanding) {
          await sleep(20);
        } else {
          const events: object[] = [];
          const seqs: number[] = [];
          for (let i = 0; i < batch && fed < dmsWanted; i++, fed++) {
            const { seq, event } = w.dm(w.visitor(1 + (fed % users)), Date.now() + i);
            w.turns.set(seq, { seq, userId: w.visitor(1 + (fed % users)), ackAt: 0 });
            events.push(event);
            seqs.push(seq);
          }
          await w.deliver(c.port, events);
          const now = Date.now();
          for (const s of seqs) w.turns.get(s)!.ackAt = now;
        }
        if (rss.middle === undefined && fed >= dmsWanted / 2) rss.middle = Math.round(c.rssMb());
        if (Date.now() - lastSample > 10_000) {
          lastSample = Date.now();
          rate.push({ at: Math.round((Date.now() - started) / 1000), replied: replied() });
          o.log(`soak: ${fed} DMs fed, ${replied()} answered, rss ${Math.round(c.rssMb())} MB`);
        }
      }
      const feedMs = Date.now() - started;
      const drainDeadline = Date.now() + Math.max(60_000, o.soakBudgetMs / 4);
      let backlog = await w.backlog();
      while ((backlog > 0 || replied() < fed) && Date.now() < drainDeadline) {
        await sleep(500);
        backlog = await w.backlog();
      }
      await sleep(1000); // the last echoes
      backlog = await w.backlog();
      rss.middle ??= Math.round(c.rssMb());
      rss.end = Math.round(c.rssMb());
      const totalMs = Date.now() - started;
      let eventsStored = await w.platformDb.collection('instagram_inbound_events').countDocuments({});
      for (let i = 0; i < HANDLED_SHARDS; i++)
        eventsStored += await w.platformDb.collection(handledCollection(i)).countDocuments({});
      const failed = await w.platformDb
        .collection('instagram_inbound_events')
        .countDocuments({ status: 'failed' });
      const done = replied();
      const firstRate =
        rate.length > 1 ? (rate[1]!.replied - rate[0]!.replied) / (rate[1]!.at - rate[0]!.at) : NaN;
      const lastRate =
        rate.length > 2
          ? (rate.at(-1)!.replied - rate.at(-2)!.replied) / (rate.at(-1)!.at - rate.at(-2)!.at)
          : NaN;
      const out: Figures = {
        eventsWanted: o.soakEvents,
        dmsFed: fed,
        dmsAnswered: done,
        eventsStored,
        eventsFailed: failed,
        complete: fed >= dmsWanted,
        feedSeconds: Math.round(feedMs / 1000),
        totalSeconds: Math.round(totalMs / 1000),
        dmsPerSecond: Math.round((done / totalMs) * 1000 * 10) / 10,
        dmsPerSecondFirst10s: Math.round(firstRate * 10) / 10,
        dmsPerSecondLast10s: Math.round(lastRate * 10) / 10,
        rssMb: rss,
        rssGrowthMb: rss.end - rss.start,
        backlogAtEnd: backlog,
        progress: rate,
      };
      o.log(`soak: ${JSON.stringify({ ...out, progress: undefined })}`);
      return out;
    } finally {
      await c.stop();
    }
  });
}

// 5. Scale out: two processes on one database ----------------------------------------------------------------

export async function scaleOut(o: Opts): Promise<Figures> {
  return withWorld(o, 'scale', async (w) => {
    const out: Figures = {};
    let base = 0;
    await withProcs(w, 1, false, async () => undefined, true); // connects the agent once
    for (const n of [1, 2]) {
      // intake (workers off), 64 concurrent deliveries spread over the processes
      await withProcs(w, n, false, async (ps) => {
        const next = (i: number): RequestSpec => {
          const { body, headers } = w.signedBody([w.dm(w.visitor(i % 1000)).event]);
          return { port: ps[i % n]!.port, path: w.path('webhook'), method: 'POST', headers, body };
        };
        await closedLoop(64, 1000, next);
        const tput: number[] = [];
        for (let r = 0; r < o.rounds; r++) {
          const res = await closedLoop(64, o.roundMs, next);
          tput.push((res.ok / res.elapsedMs) * 1000);
        }
        out[`p${n}.intake.throughput`] = figure(tput, 'req/s');
      });
      // clear the intake's events so the turn run starts from an empty inbox
      await w.platformDb.collection('instagram_inbound_events').deleteMany({});
      for (let i = 0; i < HANDLED_SHARDS; i++)
        await w.platformDb.collection(handledCollection(i)).deleteMany({});
      // turns (workers on): 64 users, 5 DMs each sent back to back, deliveries alternating between processes
      await withProcs(w, n, true, async (ps) => {
        w.echoPorts = ps.map((p) => p.port);
        const tput: number[] = [];
        let orderKept = true;
        for (let r = 0; r <= o.rounds; r++) {
          const users = Array.from({ length: 64 }, (_, i) => w.visitor(5000 + base + i));
          base += 64;
          const started = Date.now();
          const all: number[] = [];
          const sentOrder = new Map<string, number[]>();
          await Promise.all(
            users.map(async (u, ui) => {
              for (let i = 0; i < 5; i++) {
                const [s] = await w.sendDms(ps[(ui + i) % n]!.port, u);
                all.push(s!);
                sentOrder.set(u, [...(sentOrder.get(u) ?? []), s!]);
              }
            }),
          );
          await w.waitForReplies(all, 180_000);
          if (r > 0) tput.push((all.length / (Date.now() - started)) * 1000); // round 0 is the warm-up
          for (const u of users) {
            if (JSON.stringify(w.repliesByUser.get(u)) !== JSON.stringify(sentOrder.get(u)))
              orderKept = false;
          }
        }
        out[`p${n}.turns.throughput`] = figure(tput, 'turns/s');
        out[`p${n}.turns.orderKept`] = orderKept;
      });
      o.log(
        `scale p=${n}: ${JSON.stringify(
          Object.fromEntries(
            Object.entries(out)
              .filter(([k]) => k.startsWith(`p${n}`))
              .map(([k, v]) => [k, (v as Figure).median ?? v]),
          ),
        )}`,
      );
    }
    return out;
  });
}

async function withProcs<T>(
  w: World,
  n: number,
  worker: boolean,
  fn: (ps: Proc[]) => Promise<T>,
  connectFirst = false,
): Promise<T> {
  const ps: Proc[] = [];
  try {
    for (let i = 0; i < n; i++)
      ps.push(await startConnector({ ...w.connectorEnv(), WORKER_ENABLED: String(worker) }));
    if (connectFirst) await w.connect(ps[0]!.port);
    return await fn(ps);
  } finally {
    await Promise.all(ps.map((p) => p.stop()));
  }
}

// 6. What one database command costs the connector's process ---------------------------------------------

/**
 * CPU time of this process per command, one command at a time by `_id`, through mongoose's query layer
 * (with and without the stack trace it captures per query, `skipOriginalStackTraces`) and through the
 * driver's collection directly: why the worker's per-DM commands use the collections themselves.
 */
export async function commands(o: Opts, n = 3000): Promise<Figures> {
  const conn = await mongoose.createConnection(`${o.serverUri}/${dbName('commands')}`).asPromise();
  const skipped = mongoose.get('skipOriginalStackTraces');
  try {
    const Model = conn.model('BenchCommand', new Schema({ _id: String, n: Number }, { versionKey: false }));
    const coll = Model.collection as unknown as mongo.Collection<{ _id: string; n: number }>;
    await coll.insertOne({ _id: 'a', n: 0 });
    const ways: [string, () => Promise<unknown>][] = [
      [
        'mongoose.findOneAndUpdate',
        () => Model.findOneAndUpdate({ _id: 'a' }, { $inc: { n: 1 } }, { new: true }).lean(),
      ],
      ['mongoose.updateOne', () => Model.updateOne({ _id: 'a' }, { $inc: { n: 1 } })],
      ['mongoose.findOne', () => Model.findOne({ _id: 'a' }).lean()],
      [
        'driver.findOneAndUpdate',
        () => coll.findOneAndUpdate({ _id: 'a' }, { $inc: { n: 1 } }, { returnDocument: 'after' }),
      ],
      ['driver.updateOne', () => coll.updateOne({ _id: 'a' }, { $inc: { n: 1 } })],
      ['driver.findOne', () => coll.findOne({ _id: 'a' })],
    ];
    const out: Figures = {
      note: `CPU time of the bench process per command (${n} commands one after another, by _id, after a warm-up); mongoose with its per-query stack trace (as by default) and without (skipOriginalStackTraces, as the connector runs)`,
    };
    for (const skip of [false, true]) {
      mongoose.set('skipOriginalStackTraces', skip);
      for (const [name, run] of ways) {
        if (skip && name.startsWith('driver.')) continue; // the setting is mongoose's own
        const perRound: number[] = [];
        for (let r = 0; r < o.rounds; r++) {
          for (let i = 0; i < n / 10; i++) await run();
          const before = process.cpuUsage();
          for (let i = 0; i < n; i++) await run();
          const used = process.cpuUsage(before);
          perRound.push((used.user + used.system) / n);
        }
        const key = name.startsWith('mongoose.') ? `${name}${skip ? '' : '+stackTrace'}` : name;
        out[`${key}.cpuPerCommand`] = figure(perRound, 'µs');
        o.log(`commands ${key}: ${figure(perRound, '').median} µs CPU per command`);
      }
    }
    return out;
  } finally {
    mongoose.set('skipOriginalStackTraces', skipped);
    await conn.dropDatabase().catch(() => undefined);
    await conn.close();
  }
}
