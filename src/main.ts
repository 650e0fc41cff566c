import { loadConfig } from './config';
import { createLogger } from './lib/logger';
import {
  devTokenBanner,
  loadConfigOrExit,
  logUnhandledRejections,
  startServer,
  stopOnSignals,
} from './server';

/** The process: config → database → HTTP (+ worker); SIGTERM/SIGINT drain both and exit 0. */
async function main(): Promise<void> {
  const config = loadConfigOrExit(() => loadConfig());
  const logger = createLogger(config.logLevel);
  logUnhandledRejections(logger);

  const running = await startServer(config, logger);

  // Printed, not logged: a convenience for local development only.
  const banner = devTokenBanner(config);
  if (banner) process.stdout.write(banner);
  stopOnSignals(logger, () => running.stop());
}

void main().catch((err: unknown) => {
  process.stderr.write(`Start-up failed: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
