import http from 'node:http';
import jwt from 'jsonwebtoken';
import { loadConfig, ConfigError, type Config } from './config';
import { createApp } from './app';
import { buildDeps, destroyDeps } from './deps';
import { connectPlatform } from './db/mongo';
import { startEmbeddedServer, type RunningServer } from './db/embedded-server';
import { normaliseError } from './http/error-handler';
import { createLogger } from './lib/logger';

/** The process: config → database → HTTP (+ worker); SIGTERM/SIGINT drain both and exit 0. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  process.on('unhandledRejection', (reason) => {
    const e = normaliseError(reason);
    logger.error({ err: reason, code: e.code }, 'unhandled rejection');
  });

  let embedded: RunningServer | undefined;
  let uri = config.mongodbUri;
  if (!uri) {
    embedded = await startEmbeddedServer({
      dataDir: config.dataDir,
      persistent: true,
      log: (line) => logger.info(line),
    });
    uri = `${embedded.uri}/platform`;
    logger.info({ kind: embedded.kind, uri, dataDir: config.dataDir }, 'embedded database started');
  }
  const platformDb = await connectPlatform(uri);
  const deps = buildDeps(config, logger, platformDb);
  const app = createApp(deps);
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(config.port, resolve));
  const port = (server.address() as { port: number }).port;
  if (config.workerEnabled) deps.worker.start();
  logger.info({ port, env: config.nodeEnv, worker: config.workerEnabled }, 'listening');

  if (config.nodeEnv === 'development') {
    const token = jwt.sign({ userId: 'dev-admin', role: 'super_admin' }, config.jwtSecret, {
      algorithm: 'HS256',
      expiresIn: '12h',
    });
    // Printed, not logged: a convenience for local development only.
    process.stdout.write(`\nDevelopment super_admin token (12 h):\n${token}\n\n`);
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const forced = setTimeout(() => process.exit(1), 15_000).unref();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await destroyDeps(deps);
    await platformDb.close();
    await embedded?.stop();
    clearTimeout(forced);
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

void main().catch((err: unknown) => {
  process.stderr.write(`Start-up failed: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
