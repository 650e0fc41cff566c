import net from 'node:net';

/**
 * Counts the database commands a process sends, on the wire: a TCP relay between it and the database
 * server that reads each OP_MSG's command name and target collection and passes every byte through
 * unchanged. No change to the process under test (it is given the relay's address as its MongoDB URI).
 *
 * OP_MSG (https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/#op_msg): a 16-byte header
 * (messageLength, requestID, responseTo, opCode = 2013), flagBits (uint32), then sections; section kind 0
 * is the command document, whose first element is `<command name>: <collection or 1>`.
 *
 * The relay costs CPU and adds a hop, so the bench counts in a pass of its own, never while it times.
 */
export interface CommandCounter {
  /** `mongodb://127.0.0.1:<port>`: use in place of the database server's URI. */
  uri: string;
  /** Commands seen since the start, by `<command> <collection>` (numbered shards as `_#`). */
  counts(): Map<string, number>;
  close(): Promise<void>;
}

const OP_MSG = 2013;
/** Connection handshakes and server monitoring: the driver's, not the application's. */
const NOT_APPLICATION = new Set([
  'hello',
  'ismaster',
  'isMaster',
  'ping',
  'buildInfo',
  'buildinfo',
  'endSessions',
]);

export async function startCommandCounter(serverUri: string): Promise<CommandCounter> {
  const target = new URL(serverUri);
  const counts = new Map<string, number>();
  const sockets = new Set<net.Socket>();

  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let pending: Buffer = Buffer.alloc(0);
    let lost = false;
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      if (lost) return;
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 4 && pending.length >= pending.readInt32LE(0)) {
        const size = pending.readInt32LE(0);
        if (size < 16) {
          // Not the wire protocol as read here: stop counting this connection (its bytes still pass).
          lost = true;
          counts.set('unreadable connection', (counts.get('unreadable connection') ?? 0) + 1);
          return;
        }
        const key = commandOf(pending.subarray(0, size));
        if (key) counts.set(key, (counts.get(key) ?? 0) + 1);
        pending = pending.subarray(size);
      }
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) s.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    uri: `mongodb://127.0.0.1:${port}`,
    counts: () => new Map(counts),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `<command> <collection>` of one wire message, or undefined for anything that is not an application command. */
function commandOf(msg: Buffer): string | undefined {
  // Anything else (OP_COMPRESSED, a first section of kind 1) is counted by its kind, never dropped.
  const opCode = msg.readInt32LE(12);
  if (opCode !== OP_MSG) return `opcode ${opCode}`;
  if (msg.length < 27 || msg[20] !== 0) return 'OP_MSG without a command document first';
  // The command document starts at 21 (after the header, flagBits and the section kind): its int32
  // length, then the first element: a type byte, the name as a C string, the value.
  const type = msg[25];
  const nameEnd = msg.indexOf(0, 26);
  if (nameEnd < 0) return undefined;
  const name = msg.toString('utf8', 26, nameEnd);
  if (NOT_APPLICATION.has(name)) return undefined;
  let collection = '';
  if (type === 0x02) {
    const length = msg.readInt32LE(nameEnd + 1);
    collection = msg.toString('utf8', nameEnd + 5, nameEnd + 4 + length).replace(/_\d+$/, '_#');
  }
  return collection ? `${name} ${collection}` : name;
}

/** A process creates a collection and its indexes once, when it first touches it. */
const ONE_TIME = /^(create|createIndexes) /;

/**
 * The difference of two `counts()` snapshots per unit of work, largest first: `total` counts every
 * command, `steady` leaves out the one-time `create` and `createIndexes`.
 */
export function countsPer(before: Map<string, number>, after: Map<string, number>, units: number) {
  const per = [...after]
    .map(([key, n]) => [key, Math.round(((n - (before.get(key) ?? 0)) / units) * 100) / 100] as const)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1]);
  const sum = (list: (readonly [string, number])[]) =>
    Math.round(list.reduce((total, [, n]) => total + n, 0) * 100) / 100;
  return {
    total: sum(per),
    steady: sum(per.filter(([key]) => !ONE_TIME.test(key))),
    byCommand: Object.fromEntries(per),
  };
}
