/**
 * CI step: make sure a test database server can be had before the suite starts. With MONGODB_URI set there
 * is nothing to do; otherwise the FerretDB binary is found in the cache or built (once) with Go.
 */
import { resolveFerretdbBinary } from '../src/db/ferretdb';

async function main(): Promise<void> {
  if (process.env.MONGODB_URI) {
    process.stdout.write('MONGODB_URI is set: tests use it\n');
    return;
  }
  const bin = await resolveFerretdbBinary((line) => process.stdout.write(`${line}\n`));
  process.stdout.write(`FerretDB ready: ${bin}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`No test database: ${(err as Error).message}\n`);
  process.exit(1);
});
