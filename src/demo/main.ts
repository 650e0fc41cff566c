import net from 'node:net';
import path from 'node:path';
import type readline from 'node:readline';
import { loadConfig, type Config } from '../config';
import { createLogger } from '../lib/logger';
import {
  devSuperAdminToken,
  loadConfigOrExit,
  logUnhandledRejections,
  startServer,
  stopOnSignals,
} from '../server';
import { startGraphSimulator } from '../simulators/graph.simulator';
import { startRetellSimulator } from '../simulators/retell.simulator';
import { banner } from './banner';
import { connectDemoShop, igPath, seedDemoShop } from './demo-shop';
import { startVisitorPrompt } from './prompt';
import { salesAssistantReply } from './sales-assistant';
import { visitorRouter } from './visitor.routes';
import { DemoVisitors } from './visitors';

const say = (line: string): void => void process.stdout.write(`${line}\n`);

/**
 * `npm run demo`: the connector as `npm start` runs it (same startServer, embedded database under
 * .data/demo), with Meta's Graph API and Retell replaced by the loopback simulators the tests use, a seeded
 * shop connected through the real POST /connect, and a way to play the Instagram visitor.
 */
async function main(): Promise<void> {
  const graph = await startGraphSimulator();
  const retell = await startRetellSimulator({ apiKey: 'demo-retell-key' });
  retell.setReply((content, chat) => {
    // A long-running demo should not grow: the simulator's records are for tests' assertions.
    for (const list of [retell.requests, retell.completions, retell.created])
      list.splice(0, list.length - 50);
    return salesAssistantReply(content, chat);
  });

  const config = await withFreePort(
    loadConfigOrExit(() =>
      // The demo's defaults, then the caller's environment, then what makes it a demo (always simulators).
      loadConfig({
        DATA_DIR: path.join('.data', 'demo'),
        LOG_LEVEL: 'warn',
        ...process.env,
        NODE_ENV: 'development',
        META_GRAPH_URL: graph.metaGraphUrl,
        INSTAGRAM_GRAPH_URL: graph.instagramGraphUrl,
        RETELL_BASE_URL: retell.url,
        RETELL_API_KEY: retell.apiKey,
      }),
    ),
  );
  const logger = createLogger(config.logLevel);
  logUnhandledRejections(logger);

  say(`Starting the demo (data in ${config.mongodbUri ? 'MONGODB_URI' : config.dataDir}).`);
  if (!config.mongodbUri) say('The embedded database may need a few minutes on the very first run.');
  // The visitor routes exist from the start and answer 503 until the shop is connected.
  const ready: { visitors?: DemoVisitors } = {};
  const running = await startServer(config, logger, { routers: [visitorRouter(() => ready.visitors)] });
  const localUrl = `http://127.0.0.1:${running.port}`;

  const shop = await seedDemoShop(running.platformDb, graph);
  const jwt = devSuperAdminToken(config, 'demo-admin');
  const connected = await connectDemoShop(localUrl, jwt, shop);
  const visitors = (ready.visitors = new DemoVisitors({
    graph,
    shop,
    webhookUrl: `${localUrl}${igPath(shop, 'webhook')}`,
    platformDb: running.platformDb,
    report: say,
  }));

  const interactive = process.stdin.isTTY === true;
  say(
    banner({
      baseUrl: `http://localhost:${running.port}`,
      graphUrl: graph.url,
      retellUrl: retell.url,
      database: config.mongodbUri ? 'MONGODB_URI' : `embedded, data in ${config.dataDir}`,
      shop,
      connected,
      jwt,
      interactive,
    }),
  );

  // Pipes are written synchronously on Linux, so this line still reaches whoever reads the demo's output.
  process.on('exit', (code) => say(`Demo stopped (exit code ${code}).`));
  let prompt: readline.Interface | undefined;
  stopOnSignals(logger, async () => {
    prompt?.close();
    await running.stop();
    await graph.close();
    await retell.close();
  });
  if (interactive) prompt = startVisitorPrompt(visitors);
}

/** PORT=0 means "any free port"; the demo picks it first so the printed webhook URL names the real port. */
async function withFreePort(config: Config): Promise<Config> {
  if (config.port !== 0) return config;
  const port = await new Promise<number>((resolve, reject) => {
    const probe = net.createServer().once('error', reject);
    probe.listen(0, () => {
      const { port: free } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(free));
    });
  });
  const defaultBase = config.publicBaseUrl === 'http://localhost:0';
  return Object.freeze({
    ...config,
    port,
    publicBaseUrl: defaultBase ? `http://localhost:${port}` : config.publicBaseUrl,
  });
}

void main().catch((err: unknown) => {
  process.stderr.write(`Demo start-up failed: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
