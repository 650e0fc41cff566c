import axios from 'axios';
import crypto from 'node:crypto';
import http from 'node:http';
import express from 'express';
import mongoose from 'mongoose';
import Retell from 'retell-sdk';
import { insertManyRefused } from '../src/db/mongo';

/**
 * The baselines: the least any implementation can do, on the same database and machine as the connector,
 * in a process of its own like the connector (started by bench/lib/processes.ts).
 *
 * - `POST /webhook`, the intake baseline: one insertOne per request, then 200.
 * - `POST /turns/webhook`, the turn baseline, when `BASELINE_RETELL_URL` is set: a bare pipeline doing the
 *   core of every DM and nothing else. Check the signature; store each DM (insert; its own echoes are
 *   acknowledged, not stored); 200; then, one DM at a time per sender: the user turn `$push`ed to the
 *   sender's chat document, the Retell completion (`retell-sdk`), each reply sent (`axios`, Graph
 *   `POST /me/messages`), the agent turns `$push`ed, the event deleted. Four commands per DM. It has no
 *   lease, retry, dedupe after the reply (the delete forgets the event), reconciliation, operator pause,
 *   listing index or conversation summary, and keeps the Retell chat ids in memory. It is a yardstick for
 *   what the machine allows, not a floor proven minimal: the two `$push`es could be one after the send.
 *
 * Two what-ifs for the turn baseline (docs/performance-history.md, session 11), by environment:
 * - `BASELINE_PAD=n`: n more commands per DM (an upsert by `_id` of a small document in
 *   `baseline_padding`), half after the user turn and half after the agent turns, to stand for the
 *   connector's other commands (its inbox, leases, dedupe, listing index, summaries, outbound notes);
 * - `BASELINE_BATCH=1`: DMs go through the pipeline in lockstep batches: each batch takes the oldest waiting
 *   DM of every sender, and each database step is ONE command for the whole batch (a bulk write, a
 *   `deleteMany`), while the Retell and Graph calls go out per DM at once. What a batch worker would do.
 * - `BASELINE_BURN_US=n`: n µs of this process's CPU spent per DM (a busy loop on `process.cpuUsage`), half
 *   after the user turn and half after the agent turns, in either mode: the connector's work that no batch
 *   shares (its JSON, logging, handler code, HTTP handling), so that a batched what-if carries it too.
 */
async function main(): Promise<void> {
  const uri = process.env.BASELINE_MONGODB_URI!;
  const conn = await mongoose.createConnection(uri, { maxPoolSize: 50 }).asPromise();
  const events = conn.db!.collection('baseline_events');
  const app = express();
  app.use(
    express.json({
      limit: '1mb',
      verify: (req, _res, buf) => ((req as express.Request & { rawBody?: Buffer }).rawBody = buf),
    }),
  );
  app.post('/webhook', async (req, res) => {
    await events.insertOne({ body: req.body, receivedAt: new Date() });
    res.status(200).send('EVENT_RECEIVED');
  });
  if (process.env.BASELINE_RETELL_URL) app.post('/turns/webhook', turnPipeline(conn));
  const server = app.listen(0, '127.0.0.1', () => {
    process.stdout.write(
      `${JSON.stringify({ msg: 'listening', port: (server.address() as { port: number }).port })}\n`,
    );
  });
  process.on('SIGTERM', () => server.close(() => void conn.close().then(() => process.exit(0))));
}

interface Messaging {
  sender: { id: string };
  recipient: { id: string };
  timestamp: number;
  message?: { mid: string; text?: string; is_echo?: boolean };
}

function turnPipeline(conn: mongoose.Connection): express.RequestHandler {
  const env = (name: string) => process.env[name] ?? '';
  const [secret, token, agentId] = [env('BASELINE_APP_SECRET'), env('BASELINE_TOKEN'), env('BASELINE_AGENT')];
  const events = conn.db!.collection<{ _id: string; event: Messaging; receivedAt: Date }>(
    'baseline_turn_events',
  );
  const chats = conn.db!.collection<{
    _id: string;
    userId: string;
    messages: object[];
    message_count: number;
  }>('baseline_chats');
  const retell = new Retell({ apiKey: env('BASELINE_RETELL_KEY'), baseURL: env('BASELINE_RETELL_URL') });
  const graph = axios.create({
    baseURL: env('BASELINE_GRAPH_URL'),
    headers: { Authorization: `Bearer ${token}` },
    httpAgent: new http.Agent({ keepAlive: true }),
  });
  const pad = Number(process.env.BASELINE_PAD ?? 0);
  const burnUs = Number(process.env.BASELINE_BURN_US ?? 0);
  /** Spends `us` µs of this process's CPU (user + system), synchronously. */
  const burn = (us: number) => {
    if (us <= 0) return;
    const start = process.cpuUsage();
    for (;;) {
      const used = process.cpuUsage(start);
      if (used.user + used.system >= us) return;
    }
  };
  const padding = conn.db!.collection<{ _id: string; n: number }>('baseline_padding');
  /** `count` padding commands for these senders: one command each, covering all of them. */
  const padFor = async (senders: string[], from: number, count: number) => {
    for (let i = from; i < from + count; i++)
      await padding.bulkWrite(
        senders.map((s) => ({
          updateOne: { filter: { _id: `${s}:${i}` }, update: { $inc: { n: 1 } }, upsert: true },
        })),
        { ordered: false },
      );
  };
  const chatOf = new Map<string, Promise<string>>(); // sender → Retell chat id
  const queueOf = new Map<string, Promise<void>>(); // sender → the tail of its DMs being answered

  const chatFor = (userId: string): Promise<string> => {
    let chat = chatOf.get(userId);
    if (!chat) {
      chat = retell.chat.create({ agent_id: agentId }).then(async (c) => {
        await chats.insertOne({ _id: c.chat_id, userId, messages: [], message_count: 0 });
        return c.chat_id;
      });
      chatOf.set(userId, chat);
      chat.catch(() => chatOf.delete(userId)); // the sender's next DM tries again
    }
    return chat;
  };
  /** The agent's replies to one DM, each sent to Instagram: the agent turns to record. */
  const askAndSend = async (e: Messaging, chatId: string): Promise<object[]> => {
    const { messages } = await retell.chat.createChatCompletion({
      chat_id: chatId,
      content: e.message!.text!,
    });
    const sent: object[] = [];
    for (const m of messages) {
      if (m.role !== 'agent') continue;
      const { data } = await graph.post<{ message_id: string }>(
        `/${env('BASELINE_GRAPH_VERSION')}/me/messages`,
        { recipient: { id: e.sender.id }, message: { text: m.content } },
      );
      sent.push({ role: 'agent', content: m.content, instagram_mid: data.message_id });
    }
    return sent;
  };

  const answer = async (e: Messaging): Promise<void> => {
    const userId = e.sender.id;
    const chatId = await chatFor(userId);
    const push = (turn: object) =>
      chats.updateOne({ _id: chatId }, { $push: { messages: turn }, $inc: { message_count: 1 } });
    await push({ role: 'user', content: e.message!.text, instagram_mid: e.message!.mid });
    burn(burnUs / 2);
    await padFor([userId], 0, Math.floor(pad / 2));
    const sent = await askAndSend(e, chatId);
    if (sent.length)
      await chats.updateOne(
        { _id: chatId },
        { $push: { messages: { $each: sent } }, $inc: { message_count: sent.length } },
      );
    burn(burnUs / 2);
    await padFor([userId], Math.floor(pad / 2), pad - Math.floor(pad / 2));
    await events.deleteOne({ _id: e.message!.mid });
  };

  /** BASELINE_BATCH: one DM per sender at a time, every database step one command for the whole batch. */
  const answerBatch = async (batch: Messaging[]): Promise<void> => {
    const chatIds = await Promise.all(batch.map((e) => chatFor(e.sender.id)));
    const senders = batch.map((e) => e.sender.id);
    await chats.bulkWrite(
      batch.map((e, i) => ({
        updateOne: {
          filter: { _id: chatIds[i]! },
          update: {
            $push: { messages: { role: 'user', content: e.message!.text, instagram_mid: e.message!.mid } },
            $inc: { message_count: 1 },
          },
        },
      })),
      { ordered: false },
    );
    burn((burnUs / 2) * batch.length);
    await padFor(senders, 0, Math.floor(pad / 2));
    // A DM whose call fails is dropped from the batch (logged), as a failed DM is in the default mode.
    const settled = await Promise.allSettled(batch.map((e, i) => askAndSend(e, chatIds[i]!)));
    const agentTurns = settled.flatMap((r, i) => {
      if (r.status === 'rejected') {
        process.stderr.write(`baseline turn failed: ${String(r.reason)}\n`);
        return [];
      }
      if (r.value.length === 0) return [];
      const update = { $push: { messages: { $each: r.value } }, $inc: { message_count: r.value.length } };
      return [{ updateOne: { filter: { _id: chatIds[i]! }, update } }];
    });
    if (agentTurns.length) await chats.bulkWrite(agentTurns, { ordered: false });
    burn((burnUs / 2) * batch.length);
    await padFor(senders, Math.floor(pad / 2), pad - Math.floor(pad / 2));
    await events.deleteMany({ _id: { $in: batch.map((e) => e.message!.mid) } });
  };
  const waiting = new Map<string, Messaging[]>(); // sender → its DMs not yet answered, oldest first
  let batching = false;
  const runBatches = async (): Promise<void> => {
    if (batching) return;
    batching = true;
    try {
      for (;;) {
        const batch = [...waiting.values()].map((q) => q[0]!);
        if (batch.length === 0) return;
        await answerBatch(batch).catch((err: unknown) =>
          process.stderr.write(`baseline batch failed: ${String(err)}\n`),
        );
        for (const e of batch) {
          const q = waiting.get(e.sender.id)!;
          q.shift();
          if (q.length === 0) waiting.delete(e.sender.id);
        }
      }
    } finally {
      batching = false;
    }
  };

  /** Stores the events; those already stored (a redelivery) are left out of the result. */
  const insertNew = async (list: Messaging[]): Promise<Messaging[]> => {
    if (list.length === 0) return [];
    const docs = list.map((event) => ({ _id: event.message!.mid, event, receivedAt: new Date() }));
    const refused = new Set(await insertManyRefused(events, docs));
    return list.filter((_, i) => !refused.has(i));
  };

  return async (req, res) => {
    const raw = (req as express.Request & { rawBody?: Buffer }).rawBody ?? Buffer.alloc(0);
    const expected = Buffer.from(`sha256=${crypto.createHmac('sha256', secret).update(raw).digest('hex')}`);
    const got = Buffer.from(String(req.headers['x-hub-signature-256'] ?? ''));
    if (got.length !== expected.length || !crypto.timingSafeEqual(got, expected)) {
      res.status(401).end();
      return;
    }
    const body = req.body as { entry?: { messaging?: Messaging[] }[] };
    // Its own echoes (every echo in the bench) are acknowledged and not stored, as the connector does.
    const list = (body.entry ?? [])
      .flatMap((en) => en.messaging ?? [])
      .filter((e) => e.message?.mid && !e.message.is_echo);
    const fresh = await insertNew(list);
    res.status(200).send('EVENT_RECEIVED');
    if (process.env.BASELINE_BATCH === '1') {
      for (const e of fresh) {
        const q = waiting.get(e.sender.id);
        if (q) q.push(e);
        else waiting.set(e.sender.id, [e]);
      }
      void runBatches();
      return;
    }
    for (const e of fresh) {
      const tail = (queueOf.get(e.sender.id) ?? Promise.resolve()).then(() => answer(e));
      const done = tail.catch((err: unknown) => {
        const body = (err as { response?: { data?: unknown } }).response?.data;
        process.stderr.write(`baseline turn failed: ${String(err)} ${JSON.stringify(body ?? '')}\n`);
      });
      queueOf.set(e.sender.id, done);
      void done.then(() => {
        if (queueOf.get(e.sender.id) === done) queueOf.delete(e.sender.id);
      });
    }
  };
}

void main().catch((err: unknown) => {
  process.stderr.write(`baseline failed: ${String(err)}\n`);
  process.exit(1);
});
