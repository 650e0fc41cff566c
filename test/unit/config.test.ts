import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { loadConfig, ConfigError } from '../../src/config';
import { devTokenBanner } from '../../src/server';

const KEY = Buffer.alloc(32, 1).toString('base64');
const prod = {
  NODE_ENV: 'production',
  MONGODB_URI: 'mongodb://db.example:27017/platform',
  JWT_SECRET: 'a-long-enough-jwt-secret',
  TOKEN_ENCRYPTION_KEY: KEY,
};

function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('config was accepted');
}

test.each(['MONGODB_URI', 'JWT_SECRET', 'TOKEN_ENCRYPTION_KEY'])(
  'when NODE_ENV=production lacks %s, then start-up is refused naming it',
  (name) => {
    const env: Record<string, string> = { ...prod };
    delete env[name];
    const message = refusal(env);
    expect(message).toContain(name);
    expect(message.split('\n')).toHaveLength(1);
  },
);

test('when production has everything, then the config is typed and frozen', () => {
  const config = loadConfig(prod);
  expect(config.tokenEncryptionKey).toHaveLength(32);
  expect(config.metaGraphVersion).toBe('v25.0');
  expect(config.publicBaseUrl).toBe('http://localhost:3000');
  expect(Object.isFrozen(config)).toBe(true);
});

test.each([
  ['TOKEN_ENCRYPTION_KEY', 'c2hvcnQ='],
  ['TOKEN_ENCRYPTION_KEY', 'ab'.repeat(31)],
  ['MONGODB_URI', 'not a url'],
  ['MONGODB_URI', 'http://db.example:27017/platform'],
  ['PUBLIC_BASE_URL', 'ftp://x'],
  ['PORT', 'eighty'],
  ['META_GRAPH_VERSION', '25'],
  ['JWT_SECRET', 'short'],
])('when %s is %p, then start-up is refused naming it', (name, value) => {
  expect(refusal({ ...prod, [name]: value })).toMatch(new RegExp(`^Invalid ${name}`));
});

test.each([
  'mongodb://db1:27017,db2:27017,db3:27017/platform?replicaSet=rs0',
  'mongodb+srv://user:pass@cluster0.example.net/platform?retryWrites=true',
  'mongodb://user:p%40ss@db.example/platform?authSource=admin',
])('when MONGODB_URI is %p (a form the driver takes), then start-up accepts it', (uri) => {
  expect(loadConfig({ ...prod, MONGODB_URI: uri }).mongodbUri).toBe(uri);
});

test('a 64-hex-character key is accepted as well as base64', () => {
  expect(loadConfig({ ...prod, TOKEN_ENCRYPTION_KEY: 'ab'.repeat(32) }).tokenEncryptionKey).toEqual(
    Buffer.alloc(32, 0xab),
  );
});

test('when development lacks secrets, then they are generated once and kept under DATA_DIR', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'igc-cfg-'));
  const first = loadConfig({ DATA_DIR: dir });
  const second = loadConfig({ DATA_DIR: dir });
  expect(first.jwtSecret).toHaveLength(64);
  expect(second.jwtSecret).toBe(first.jwtSecret);
  expect(second.tokenEncryptionKey.equals(first.tokenEncryptionKey)).toBe(true);
  expect(fs.statSync(path.join(dir, 'dev-secrets.json')).mode & 0o077).toBe(0);
});

describe('the development token printed at start-up', () => {
  const dataDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));

  test('when the process generated its JWT secret, then a super_admin token signed with it is printed', () => {
    const config = loadConfig({ DATA_DIR: dataDir() });
    const banner = devTokenBanner(config)!;
    const token = banner.trim().split('\n').pop()!;
    expect(jwt.verify(token, config.jwtSecret)).toMatchObject({ role: 'super_admin' });
  });

  test('when JWT_SECRET is given and NODE_ENV left unset, then no token is printed', () => {
    const config = loadConfig({ DATA_DIR: dataDir(), JWT_SECRET: 'the-platform-jwt-secret' });
    expect(config.nodeEnv).toBe('development');
    expect(devTokenBanner(config)).toBeUndefined();
  });
});
