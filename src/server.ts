import http from 'node:http';
import type { Connection } from 'mongoose';
import type { Router } from 'express';
import jwt from 'jsonwebtoken';
import { ConfigError, type Config } from './config';
import { createApp } from './app';
import { buildDeps, destroyDeps, type Deps, type DepsOverrides } from './deps';
import { connectPlatform, FERRETDB_SQLITE_POOL_SIZE } from './db/mongo';
import { startEmbeddedServer, type RunningServer } from './db/embedded-server';
import { normaliseError } from './http/error-handler';
import type { Logger } from './lib/logger';

export interface RunningConnector {
  deps: Deps;
  platformDb: Connection;
  /** The port actually bound (PORT=0 picks a free one). */
  port: number;
  /** Stops in order: HTTP, worker and clients, database connection, embedded database. */
  stop(): Promise<void>;
}

export interface ServerOptions {
  overrides?: DepsOverrides;
  /** Routers mounted before the 404 handler (the demo's visitor routes); none for `npm start`. */
  routers?: Router[];
}

/**
 * The connector as a running service: database (embedded when no MONGODB_URI) → deps → HTTP → worker.
 * Shared by `npm start` (main.ts) and `npm run demo`; owns no process concerns (signals, exit codes).
 */
export async function startServer(
  config: Config,
  logger: Logger,
  o: ServerOptions = {},
): Promise<RunningConnector> {
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
  const platformDb = await connectPlatform(uri, {
    maxPoolSize: embedded?.kind === 'ferretdb' ? FERRETDB_SQLITE_POOL_SIZE : undefined,
  });
  logger.info({ maxPoolSize: platformDb.getClient().options.maxPoolSize }, 'database connected');
  const deps = buildDeps(config, logger, platformDb, o.overrides);
  const app = createApp(deps, o.routers);
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(config.port, resolve));
  const port = (server.address() as { port: number }).port;
  if (config.workerEnabled) deps.worker.start();
  logger.info({ port, env: config.nodeEnv, worker: config.workerEnabled }, 'listening');
  if (!deps.webhooks.requiresSignature && !config.metaAppSecret && config.nodeEnv !== 'test') {
    // Anyone who knows a webhook URL could then write to the agent as any visitor.
    logger.warn(
      { env: config.nodeEnv, allowUnsignedWebhooks: config.allowUnsignedWebhooks },
      'unsigned webhook deliveries are accepted for connections without an app secret: set META_APP_SECRET (or connect with appSecret), and NODE_ENV=production',
    );
  }

  return {
    deps,
    platformDb,
    port,
    stop: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await destroyDeps(deps);
      await platformDb.close();
      await embedded?.stop();
    },
  };
}

/** Reads the config; a bad variable ends the process with its one line (exit 1), as CONTRACT §1 says. */
export function loadConfigOrExit(load: () => Config): Config {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/** One error normaliser for unhandled rejections too (the HTTP handler uses the same). */
export function logUnhandledRejections(logger: Logger): void {
  process.on('unhandledRejection', (reason) => {
    const e = normaliseError(reason);
    logger.error({ err: reason, code: e.code }, 'unhandled rejection');
  });
}

/** SIGTERM/SIGINT: stop once, in order, then exit 0; a stop that hangs for 15 s exits 1. */
export function stopOnSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const forced = setTimeout(() => process.exit(1), 15_000).unref();
    await stop();
    clearTimeout(forced);
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void onSignal('SIGTERM'));
  process.on('SIGINT', () => void onSignal('SIGINT'));
}

/**
 * What `npm start` prints for local development: a `super_admin` token, only when the process signs with
 * a secret it generated itself. With a JWT_SECRET given (the platform's), nothing is printed, even when
 * NODE_ENV was left unset: such a token would open every tenant, and stdout usually ends in a log store.
 */
export function devTokenBanner(config: Config): string | undefined {
  if (config.nodeEnv !== 'development' || !config.jwtSecretGenerated) return undefined;
  return `\nDevelopment super_admin token (12 h):\n${devSuperAdminToken(config)}\n\n`;
}

/** A development-only `super_admin` token, signed with the configured secret. */
export function devSuperAdminToken(config: Config, userId = 'dev-admin'): string {
  return jwt.sign({ userId, role: 'super_admin' }, config.jwtSecret, {
    algorithm: 'HS256',
    expiresIn: '12h',
  });
}
