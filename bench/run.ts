import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDb, type DbKind } from './lib/databases';
import { commands, intake, reads, scaleOut, soak, turns, type Figures, type Opts } from './lib/scenarios';
import { fmt, ratio, type Figure } from './lib/stats';
import { FERRETDB_SQLITE_POOL_SIZE } from '../src/db/mongo';

/**
 * `npm run bench [-- --db=ferretdb,mongo-java|uri] [--quick] [--only=intake,turns,reads,soak,scale,commands]
 *                 [--rounds=N] [--turn-samples=N] [--paced-think-ms=MS] [--soak=EVENTS] [--soak-minutes=M]
 *                 [--reads-turns=N]`
 *
 * Starts each database, the connector as its own process(es) (`node dist/main.js`), and the loopback Graph
 * and Retell simulators; runs the scenarios of issue 7 with a warm-up and several rounds; prints a table
 * and writes bench/results.json. Every figure is reported as median (min–max) over rounds, and beside the
 * baseline measured in the same run where the issue names one.
 */
const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k!, v ?? 'true'] as const;
  }),
);
const quick = args.has('quick');
/** A numeric option, refused (not silently ignored) when it is not a number ≥ 0. */
function nonNegative(name: string, fallback: number): number {
  const v = Number(args.get(name) ?? fallback);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number ≥ 0`);
  return v;
}
const dbs = (args.get('db') ?? (process.env.MONGODB_URI ? 'uri' : 'ferretdb,mongo-java')).split(
  ',',
) as DbKind[];
const only = new Set((args.get('only') ?? 'intake,turns,reads,soak,scale,commands').split(','));

const baseOpts = {
  rounds: nonNegative('rounds', quick ? 2 : 3),
  roundMs: quick ? 2000 : 3000,
  turnsPerUser: quick ? 2 : 3,
  turnSamples: nonNegative('turn-samples', quick ? 50 : 300),
  pacedThinkMs: nonNegative('paced-think-ms', 2000),
  readsTurns: nonNegative('reads-turns', quick ? 20_000 : 100_000),
  readsUsers: quick ? 1000 : 5000,
  soakEvents: nonNegative('soak', quick ? 2_000 : 100_000),
  soakBudgetMs: nonNegative('soak-minutes', quick ? 1 : 3) * 60_000,
};

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

interface Row {
  scenario: string;
  figure: string;
  value: string;
  baseline?: string;
  ratio?: number;
  target?: string;
  met?: boolean;
}

async function main(): Promise<void> {
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
  const file = path.join(__dirname, 'results.json');
  // Earlier results are kept: runs on other databases, and on the same database the scenarios this run
  // did not repeat (each scenario notes when and with which options it ran), so `--db=…` and `--only=…`
  // runs add up to one file.
  const earlier = fs.existsSync(file)
    ? ((JSON.parse(fs.readFileSync(file, 'utf8')) as { runs?: EarlierRun[] }).runs ?? [])
    : [];
  const runs: Record<string, unknown>[] = [];
  for (const kind of dbs) {
    let db;
    try {
      db = await startDb(kind);
    } catch (err) {
      log(`${kind}: cannot start (${(err as Error).message.split('\n')[0]}); skipped`);
      runs.push({ db: kind, skipped: (err as Error).message.split('\n')[0] });
      continue;
    }
    log(`database: ${db.version} at ${db.uri}`);
    const o: Opts = {
      ...baseOpts,
      serverUri: db.uri,
      dbPid: db.pid,
      // As `npm start` connects to the FerretDB it starts itself (src/db/mongo.ts).
      connectorPool: kind === 'ferretdb' ? FERRETDB_SQLITE_POOL_SIZE : undefined,
      log: (l) => log(`${kind} ${l}`),
    };
    const before = earlier.find((r) => r.db === kind && r.scenarios);
    const scenarios: Record<string, Figures> = { ...before?.scenarios };
    const ranWith: Record<string, unknown> = { ...before?.ranWith };
    const started = Date.now();
    try {
      for (const [name, fn] of [
        ['intake', intake],
        ['turns', turns],
        ['reads', reads],
        ['soak', soak],
        ['scale', scaleOut],
        ['commands', commands],
      ] as const) {
        if (!only.has(name)) continue;
        const t0 = Date.now();
        ranWith[name] = { at: new Date().toISOString(), options: { ...baseOpts, quick } };
        try {
          scenarios[name] = await fn(o);
        } catch (err) {
          log(`${kind} ${name} failed: ${(err as Error).stack}`);
          scenarios[name] = { error: String((err as Error).message) };
        }
        log(`${kind} ${name} took ${Math.round((Date.now() - t0) / 1000)} s`);
      }
    } finally {
      await db.stop();
    }
    const rows = tableRows(scenarios);
    runs.push({
      db: kind,
      version: db.version,
      seconds: Math.round((Date.now() - started) / 1000),
      ranWith,
      scenarios,
      rows,
    });
    printTable(`${db.version}`, rows);
  }
  const kept = earlier.filter((r) => !runs.some((n) => n.db === r.db));
  fs.writeFileSync(
    file,
    `${JSON.stringify({ at: new Date().toISOString(), machine, runs: [...kept, ...runs] }, null, 2)}\n`,
  );
  log(`wrote ${path.relative(process.cwd(), file)}`);
}

interface EarlierRun {
  db: string;
  scenarios?: Record<string, Figures>;
  ranWith?: Record<string, unknown>;
}

function tableRows(s: Record<string, Figures>): Row[] {
  const rows: Row[] = [];
  const f = (sc: string, k: string) => s[sc]?.[k] as Figure | undefined;
  if (s.intake && !s.intake.error) {
    for (const c of [1, 16, 64]) {
      const t = f('intake', `connector.c${c}.throughput`)!;
      const b = f('intake', `baseline.c${c}.throughput`)!;
      const r = ratio(t, b);
      rows.push({
        scenario: 'intake',
        figure: `c=${c} throughput`,
        value: fmt(t),
        baseline: fmt(b),
        ratio: r,
        target: '≥ 0.5× baseline',
        met: r >= 0.5,
      });
      const p99 = f('intake', `connector.c${c}.p99`)!;
      rows.push({
        scenario: 'intake',
        figure: `c=${c} ack p50 / p99`,
        value: `${f('intake', `connector.c${c}.p50`)!.median} / ${fmt(p99)}`,
        baseline: `${f('intake', `baseline.c${c}.p50`)!.median} / ${fmt(f('intake', `baseline.c${c}.p99`))}`,
        ratio: ratio(p99, f('intake', `baseline.c${c}.p99`)!),
        ...(c === 64 ? { target: 'p99 < 50 ms', met: p99.median < 50 } : {}),
      });
      const cpu = (who: string) => {
        const parts = ['server', 'database', 'bench'].map((r) =>
          f('intake', `${who}.c${c}.cpuPerRequest.${r}`),
        );
        return parts.every(Boolean) ? parts.map((p) => Math.round(p!.median)).join(' / ') : undefined;
      };
      const [mine, bare] = [cpu('connector'), cpu('baseline')];
      if (mine && bare)
        rows.push({
          scenario: 'intake',
          figure: `c=${c} CPU µs per request: server / database / bench`,
          value: mine,
          baseline: bare,
        });
    }
  }
  if (s.turns && !s.turns.error) {
    const bare = (u: number) => {
      const [p50, p99, t] = ['overhead.p50', 'overhead.p99', 'throughput'].map((k) =>
        f('turns', `baseline.instant.u${u}.${k}`),
      );
      if (!p50 || !p99 || !t) return undefined;
      const cpu = ['server', 'database', 'bench'].map((r) =>
        f('turns', `baseline.instant.u${u}.cpuPerTurn.${r}`),
      );
      const allows = f('turns', `baseline.instant.u${u}.cpuAllows`);
      return {
        p50,
        p99,
        t,
        cpu:
          cpu.every(Boolean) && allows ? `${cpu.map((c) => c!.median).join(' / ')} → ${allows.median}` : '',
      };
    };
    const bareFailed = s.turns['baseline.error'];
    if (bareFailed)
      rows.push({
        scenario: 'turn baseline',
        figure: 'bare pipeline',
        value: `did not finish: ${String(bareFailed)}`,
      });
    for (const mode of ['instant', 'slow']) {
      const one = f('turns', `${mode}.u1.throughput`);
      for (const u of [1, 16, 64]) {
        const p99 = f('turns', `${mode}.u${u}.overhead.p99`);
        const t = f('turns', `${mode}.u${u}.throughput`);
        const b = mode === 'instant' ? bare(u) : undefined;
        const bareMissing = s.turns[`baseline.instant.u${u}.error`];
        if (mode === 'instant' && bareMissing)
          rows.push({
            scenario: 'turn baseline (instant)',
            figure: `${u} users`,
            value: `did not finish: ${String(bareMissing)}`,
          });
        const failed = s.turns[`${mode}.u${u}.error`];
        if (failed)
          rows.push({
            scenario: `turn (${mode})`,
            figure: `${u} users`,
            value: `did not finish: ${String(failed)}`,
            met: false,
          });
        if (!p99 || !t) continue;
        rows.push({
          scenario: `turn (${mode === 'slow' ? 'agent 800 ms' : 'instant'})`,
          figure: `${u} users: overhead p50 / p99; throughput`,
          value: `${f('turns', `${mode}.u${u}.overhead.p50`)!.median} / ${fmt(p99)}; ${fmt(t)}`,
          // Instant: against the turn baseline (the least any implementation does per DM, same run);
          // with a slow agent: against 1 user, since throughput should grow with users.
          ...(b
            ? { baseline: `bare: ${b.p50.median} / ${fmt(b.p99)}; ${fmt(b.t)}`, ratio: ratio(p99, b.p99) }
            : {
                baseline: one ? `1 user: ${one.median} turns/s` : undefined,
                ratio: one ? ratio(t, one) : undefined,
              }),
          ...(mode === 'instant' && u === 16 ? { target: 'p99 < 100 ms', met: p99.median < 100 } : {}),
          ...(mode === 'slow' && u > 1
            ? { target: 'throughput grows with users', met: ratio(t, one!) > 1.5 }
            : {}),
        });
        const cpu = ['connector', 'database', 'bench'].map((r) =>
          f('turns', `${mode}.u${u}.cpuPerTurn.${r}`),
        );
        const allows = f('turns', `${mode}.u${u}.cpuAllows`);
        if (mode === 'instant' && cpu.every(Boolean) && allows)
          rows.push({
            scenario: 'turn (instant)',
            figure: `${u} users: CPU ms per turn, connector / database / bench → turns/s the CPUs allow → least mean overhead`,
            value: `${cpu.map((c) => c!.median).join(' / ')} → ${allows.median} turns/s → ${Math.round((u / allows.median) * 1000)} ms`,
            ...(b?.cpu ? { baseline: `bare: ${b.cpu}` } : {}),
          });
      }
    }
    // Not the target's figure: 16 users who pause after each reply (see Opts.pacedThinkMs).
    const pacedP99 = f('turns', 'paced.u16.overhead.p99');
    const pacedT = f('turns', 'paced.u16.throughput');
    if (s.turns['paced.u16.error'])
      rows.push({
        scenario: 'turn (paced)',
        figure: '16 users',
        value: `did not finish: ${String(s.turns['paced.u16.error'])}`,
      });
    if (pacedP99 && pacedT)
      rows.push({
        scenario: `turn (instant, users pause 0–${(2 * Number(s.turns['paced.u16.thinkMs'])) / 1000} s)`,
        figure: '16 users: overhead p50 / p99; throughput',
        value: `${f('turns', 'paced.u16.overhead.p50')!.median} / ${fmt(pacedP99)}; ${fmt(pacedT)}`,
      });
  }
  if (s.turns && !s.turns.error) {
    const commands = f('turns', 'commandsPerDm');
    if (commands) {
      const bareCommands = f('turns', 'baseline.commandsPerDm');
      const largest = Object.entries((s.turns['commandsPerDm.byCommand'] ?? {}) as Record<string, number>)
        .filter(([k]) => !/^(create|createIndexes) /.test(k)) // left out of the figure too
        .slice(0, 6)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
      rows.push({
        scenario: 'turn (1 user, 20 DMs in a row)',
        figure: 'database commands per DM, on the wire (largest kinds)',
        value: `${commands.median} (${largest})`,
        ...(bareCommands
          ? { baseline: `bare: ${bareCommands.median}`, ratio: ratio(commands, bareCommands) }
          : {}),
      });
    }
  }
  if (s.reads && !s.reads.error) {
    for (const k of ['messages', 'messagesOfUser', 'conversations']) {
      const p99 = f('reads', `${k}.p99`)!;
      rows.push({
        scenario: `reads (${s.reads.turns} turns / ${s.reads.users} users)`,
        figure: `${k} p50 / p99`,
        value: `${f('reads', `${k}.p50`)!.median} / ${fmt(p99)}`,
        target: 'p99 < 30 ms',
        met: p99.median < 30,
      });
    }
  }
  if (s.soak && !s.soak.error) {
    const k = s.soak as Record<string, unknown>;
    const rss = k.rssMb as Record<string, number>;
    rows.push({
      scenario: 'soak',
      figure: 'events through the pipeline',
      value: `${Number(k.dmsAnswered) * 2} of ${k.eventsWanted} (${k.dmsPerSecond} DMs/s; first ${k.dmsPerSecondFirst10s}, last ${k.dmsPerSecondLast10s})`,
      target: `${k.eventsWanted} events`,
      met: Boolean(k.complete),
    });
    rows.push({
      scenario: 'soak',
      figure: 'RSS start / middle / end',
      value: `${rss.start} / ${rss.middle} / ${rss.end} MB`,
      target: 'growth < 50 MB',
      met: Number(k.rssGrowthMb) < 50,
    });
    rows.push({
      scenario: 'soak',
      figure: 'backlog at end',
      value: String(k.backlogAtEnd),
      target: '0',
      met: k.backlogAtEnd === 0,
    });
  }
  if (s.scale && !s.scale.error) {
    for (const k of ['intake.throughput', 'turns.throughput']) {
      const one = f('scale', `p1.${k}`)!;
      const two = f('scale', `p2.${k}`)!;
      rows.push({
        scenario: 'scale out',
        figure: `2 processes: ${k}`,
        value: fmt(two),
        baseline: `1 process: ${fmt(one)}`,
        ratio: ratio(two, one),
      });
    }
    rows.push({
      scenario: 'scale out',
      figure: 'per-user order kept (1 / 2 processes)',
      value: `${s.scale['p1.turns.orderKept']} / ${s.scale['p2.turns.orderKept']}`,
      target: 'true',
      met: s.scale['p1.turns.orderKept'] === true && s.scale['p2.turns.orderKept'] === true,
    });
  }
  if (s.commands && !s.commands.error) {
    for (const op of ['findOneAndUpdate', 'updateOne', 'findOne']) {
      const withTrace = f('commands', `mongoose.${op}+stackTrace.cpuPerCommand`);
      const without = f('commands', `mongoose.${op}.cpuPerCommand`);
      const driver = f('commands', `driver.${op}.cpuPerCommand`);
      if (!withTrace || !without || !driver) continue;
      rows.push({
        scenario: 'commands (CPU of the calling process)',
        figure: `${op}: mongoose with / without its stack trace`,
        value: `${fmt(withTrace)} / ${fmt(without)}`,
        baseline: `driver: ${fmt(driver)}`,
        ratio: ratio(without, driver),
      });
    }
  }
  for (const [k, v] of Object.entries(s))
    if (v.error) rows.push({ scenario: k, figure: 'error', value: String(v.error) });
  return rows;
}

function printTable(title: string, rows: Row[]): void {
  const head = ['scenario', 'figure', 'value: median (min–max)', 'baseline', 'ratio', 'target', 'met'];
  const cells = rows.map((r) => [
    r.scenario,
    r.figure,
    r.value,
    r.baseline ?? '',
    r.ratio?.toString() ?? '',
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'yes' : 'NO',
  ]);
  process.stdout.write(`\n### ${title}\n\n| ${head.join(' | ')} |\n|${head.map(() => ' --- ').join('|')}|\n`);
  for (const c of cells) process.stdout.write(`| ${c.join(' | ')} |\n`);
  process.stdout.write('\n');
}

// Exit when done: a simulator's or driver's idle keep-alive socket must not keep the bench alive.
void main()
  .then(() => process.exit(0))
  .catch((err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
    process.exit(1);
  });
