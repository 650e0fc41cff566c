import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import type { Express } from 'express';
import type { Connection } from 'mongoose';
import supertest from 'supertest';
import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { connectPlatform } from '../../src/db/mongo';
import { buildDeps, destroyDeps, type Deps, type DepsOverrides } from '../../src/deps';
import { createLogger } from '../../src/lib/logger';
import { testDbUri, uniqueName } from './db';
import { TEST_ENCRYPTION_KEY, TEST_JWT_SECRET } from './tokens';

export interface TestApp {
  app: Express;
  deps: Deps;
  platformDb: Connection;
  http: () => supertest.Agent;
  /** Every log line the app wrote, as raw JSON text. */
  logs: string[];
  close(): Promise<void>;
}

/** The real app on the run's database server, with a platform database of its own. */
export async function startTestApp(
  env: Record<string, string> = {},
  overrides: DepsOverrides = {},
): Promise<TestApp> {
  const uri = testDbUri(uniqueName('platform'));
  const config = loadConfig({
    NODE_ENV: 'test',
    MONGODB_URI: uri,
    JWT_SECRET: TEST_JWT_SECRET,
    TOKEN_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'igc-data-')),
    PUBLIC_BASE_URL: 'https://connector.example.test',
    LOG_LEVEL: 'debug',
    ...env,
  });
  const logs: string[] = [];
  const logger = createLogger(config.logLevel, { write: (line: string) => void logs.push(line) });
  const platformDb = await connectPlatform(uri);
  const deps = buildDeps(config, logger, platformDb, overrides);
  const app = createApp(deps);
  return {
    app,
    deps,
    platformDb,
    logs,
    http: () => supertest.agent(app),
    close: async () => {
      await destroyDeps(deps);
      await platformDb.dropDatabase().catch(() => undefined);
      await platformDb.close();
    },
  };
}
