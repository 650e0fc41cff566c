import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import Joi from 'joi';
import { ConnectionString } from 'mongodb-connection-string-url';

/**
 * The only reader of `process.env`. Every variable is validated once, at start-up; a bad value stops the
 * process with one line naming it (ConfigError). In development, missing secrets are generated once and
 * kept under DATA_DIR so restarts keep working tokens and decryptable data.
 */
export interface Config {
  readonly nodeEnv: 'development' | 'production' | 'test';
  readonly port: number;
  readonly dataDir: string;
  /** Undefined means: start the embedded database. */
  readonly mongodbUri: string | undefined;
  readonly jwtSecret: string;
  /** True when JWT_SECRET was not given and a development secret under DATA_DIR signs the tokens. */
  readonly jwtSecretGenerated: boolean;
  readonly tokenEncryptionKey: Buffer;
  /** Older keys, by key id, so values encrypted before a rotation stay readable. */
  readonly tokenEncryptionKeyPrevious: Buffer | undefined;
  readonly publicBaseUrl: string;
  readonly retellApiKey: string | undefined;
  readonly retellBaseUrl: string | undefined;
  readonly metaGraphUrl: string;
  readonly instagramGraphUrl: string;
  readonly metaGraphVersion: string;
  readonly metaAppSecret: string | undefined;
  readonly allowUnsignedWebhooks: boolean;
  readonly chatSessionTtlHours: number;
  readonly humanTakeoverMinutes: number;
  readonly workerEnabled: boolean;
  /** How long a worker's claim on a thread lasts without renewal: the recovery time after a crash. */
  readonly workerLeaseMs: number;
  readonly logLevel: string;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const key = Joi.string()
  .trim()
  .custom((value: string, helpers) => (parseKey(value) ? value : helpers.error('any.invalid')))
  .messages({ 'any.invalid': '{{#label}} must be 32 bytes, as 64 hex characters or base64' });

const schema = Joi.object({
  NODE_ENV: Joi.string()
    .valid('development', 'production', 'test')
    .default('development')
    .description('runtime mode'),
  PORT: Joi.number().integer().min(0).max(65535).default(3000).description('HTTP port'),
  DATA_DIR: Joi.string().default('.data').description('embedded database and generated development secrets'),
  MONGODB_URI: Joi.string()
    // The driver's own parser: Joi's uri() refuses a replica set's host list (`h1:27017,h2:27017`).
    .custom((value: string, helpers) => {
      try {
        new ConnectionString(value);
        return value;
      } catch {
        return helpers.error('any.invalid');
      }
    })
    .messages({ 'any.invalid': '{{#label}} must be a mongodb:// or mongodb+srv:// connection string' })
    .description('platform database; embedded when absent'),
  JWT_SECRET: Joi.string().min(16).description('HS256 secret of the platform bearer tokens'),
  TOKEN_ENCRYPTION_KEY: key.description('32-byte key that encrypts Instagram tokens at rest'),
  TOKEN_ENCRYPTION_KEY_PREVIOUS: key.description('the key before the last rotation, still used to decrypt'),
  PUBLIC_BASE_URL: Joi.string()
    .uri({ scheme: ['http', 'https'] })
    .description('base of printed webhook URLs'),
  RETELL_API_KEY: Joi.string().description('Retell API key'),
  RETELL_BASE_URL: Joi.string()
    .uri({ scheme: ['http', 'https'] })
    .description('Retell API base URL'),
  META_GRAPH_URL: Joi.string()
    .uri({ scheme: ['http', 'https'] })
    .default('https://graph.facebook.com')
    .description('Graph API host for Page tokens'),
  INSTAGRAM_GRAPH_URL: Joi.string()
    .uri({ scheme: ['http', 'https'] })
    .default('https://graph.instagram.com')
    .description('Graph API host for Instagram-Login tokens'),
  META_GRAPH_VERSION: Joi.string()
    .pattern(/^v\d+\.\d+$/)
    .default('v25.0')
    .description('Graph API version'),
  META_APP_SECRET: Joi.string().min(8).description('app secret for X-Hub-Signature-256'),
  ALLOW_UNSIGNED_WEBHOOKS: Joi.boolean().default(false).description('production: accept unsigned webhooks'),
  CHAT_SESSION_TTL_HOURS: Joi.number().positive().default(24).description('idle hours before a chat ends'),
  HUMAN_TAKEOVER_MINUTES: Joi.number().min(0).default(60).description('AI pause after a human answers'),
  WORKER_ENABLED: Joi.boolean().default(true).description('run the inbound worker in this process'),
  WORKER_LEASE_SECONDS: Joi.number()
    .min(1)
    .max(600)
    .default(30)
    .description("thread lease; a crashed worker's threads resume after it"),
  LOG_LEVEL: Joi.string()
    .valid('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent')
    .default('info')
    .description('pino log level'),
}).unknown(true);

export function parseKey(value: string): Buffer | undefined {
  const trimmed = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    const buf = Buffer.from(trimmed, 'base64');
    if (buf.length === 32) return buf;
  }
  return undefined;
}

interface DevSecrets {
  jwtSecret: string;
  tokenEncryptionKey: string;
}

function loadOrCreateDevSecrets(dataDir: string): DevSecrets {
  const file = path.join(dataDir, 'dev-secrets.json');
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as DevSecrets;
  const secrets: DevSecrets = {
    jwtSecret: crypto.randomBytes(32).toString('hex'),
    tokenEncryptionKey: crypto.randomBytes(32).toString('base64'),
  };
  fs.mkdirSync(dataDir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

/** Reads and validates the environment. Throws ConfigError with one line naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const { error, value } = schema.validate(cleaned, { abortEarly: true, convert: true });
  if (error) {
    const name = String(error.details[0]?.path[0] ?? 'environment');
    throw new ConfigError(`Invalid ${name}: ${error.details[0]?.message ?? error.message}`);
  }
  const v = value as Record<string, unknown>;
  const nodeEnv = v.NODE_ENV as Config['nodeEnv'];
  const dataDir = path.resolve(String(v.DATA_DIR));

  if (nodeEnv === 'production') {
    for (const required of ['MONGODB_URI', 'JWT_SECRET', 'TOKEN_ENCRYPTION_KEY']) {
      if (v[required] === undefined)
        throw new ConfigError(`Missing ${required}: required when NODE_ENV=production`);
    }
  }
  const needsDevSecrets = v.JWT_SECRET === undefined || v.TOKEN_ENCRYPTION_KEY === undefined;
  const dev = needsDevSecrets ? loadOrCreateDevSecrets(dataDir) : undefined;
  const port = Number(v.PORT);

  return Object.freeze({
    nodeEnv,
    port,
    dataDir,
    mongodbUri: v.MONGODB_URI as string | undefined,
    jwtSecret: (v.JWT_SECRET as string | undefined) ?? dev!.jwtSecret,
    jwtSecretGenerated: v.JWT_SECRET === undefined,
    tokenEncryptionKey: parseKey((v.TOKEN_ENCRYPTION_KEY as string | undefined) ?? dev!.tokenEncryptionKey)!,
    tokenEncryptionKeyPrevious: v.TOKEN_ENCRYPTION_KEY_PREVIOUS
      ? parseKey(v.TOKEN_ENCRYPTION_KEY_PREVIOUS as string)
      : undefined,
    publicBaseUrl: String(v.PUBLIC_BASE_URL ?? `http://localhost:${port}`).replace(/\/+$/, ''),
    retellApiKey: v.RETELL_API_KEY as string | undefined,
    retellBaseUrl: v.RETELL_BASE_URL as string | undefined,
    metaGraphUrl: String(v.META_GRAPH_URL).replace(/\/+$/, ''),
    instagramGraphUrl: String(v.INSTAGRAM_GRAPH_URL).replace(/\/+$/, ''),
    metaGraphVersion: String(v.META_GRAPH_VERSION),
    metaAppSecret: v.META_APP_SECRET as string | undefined,
    allowUnsignedWebhooks: Boolean(v.ALLOW_UNSIGNED_WEBHOOKS),
    chatSessionTtlHours: Number(v.CHAT_SESSION_TTL_HOURS),
    humanTakeoverMinutes: Number(v.HUMAN_TAKEOVER_MINUTES),
    workerEnabled: Boolean(v.WORKER_ENABLED),
    workerLeaseMs: Number(v.WORKER_LEASE_SECONDS) * 1000,
    logLevel: String(v.LOG_LEVEL),
  });
}
