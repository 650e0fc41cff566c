import express from 'express';
import mongoose from 'mongoose';

/**
 * The intake baseline: a bare Express endpoint on the same database doing one insertOne per request — the
 * least any durable intake can do. Run as its own process, like the connector, by bench/run.ts.
 */
async function main(): Promise<void> {
  const uri = process.env.BASELINE_MONGODB_URI!;
  const conn = await mongoose.createConnection(uri, { maxPoolSize: 50 }).asPromise();
  const events = conn.db!.collection('baseline_events');
  const app = express();
  app.use(express.json({ limit: '1mb' }));
  app.post('/webhook', async (req, res) => {
    await events.insertOne({ body: req.body, receivedAt: new Date() });
    res.status(200).send('EVENT_RECEIVED');
  });
  const server = app.listen(0, '127.0.0.1', () => {
    process.stdout.write(
      `${JSON.stringify({ msg: 'listening', port: (server.address() as { port: number }).port })}\n`,
    );
  });
  process.on('SIGTERM', () => server.close(() => void conn.close().then(() => process.exit(0))));
}

void main().catch((err: unknown) => {
  process.stderr.write(`baseline failed: ${String(err)}\n`);
  process.exit(1);
});
