import type { Connection } from 'mongoose';
import type { Config } from './config';
import type { Logger } from './lib/logger';
import { MongoPlatform } from './platform/mongo-platform';
import type { Platform } from './platform/platform';
import { RetellClient } from './retell/retell.client';

/**
 * The composition root: every service built with its dependencies, in order, no container.
 * Tests build the same graph with their own config (simulator URLs, per-file databases).
 */
export interface Deps {
  config: Config;
  logger: Logger;
  platformDb: Connection;
  platform: Platform;
}

export function buildDeps(config: Config, logger: Logger, platformDb: Connection, platform?: Platform): Deps {
  const retell = new RetellClient({ apiKey: config.retellApiKey, baseUrl: config.retellBaseUrl });
  return {
    config,
    logger,
    platformDb,
    platform: platform ?? new MongoPlatform(platformDb, retell),
  };
}

/** Stops what buildDeps started, in reverse order. */
export async function destroyDeps(deps: Deps): Promise<void> {
  await deps.platform.close();
}
