import http from 'node:http';

/**
 * A closed-loop HTTP load generator on loopback: `concurrency` callers, each sending its next request as
 * soon as the previous one is answered, until `durationMs` has passed. Latency is measured per request.
 */
export interface LoadResult {
  ok: number;
  failed: number;
  latenciesMs: number[];
  elapsedMs: number;
  statuses: Record<string, number>;
}

export interface RequestSpec {
  port: number;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export function request(
  agent: http.Agent,
  spec: RequestSpec,
): Promise<{ status: number; body: string; ms: number }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: spec.port,
        path: spec.path,
        method: spec.method ?? 'GET',
        agent,
        headers: {
          ...(spec.body ? { 'content-length': Buffer.byteLength(spec.body) } : {}),
          ...spec.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            ms: Number(process.hrtime.bigint() - started) / 1e6,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('request timed out')));
    if (spec.body) req.write(spec.body);
    req.end();
  });
}

export async function closedLoop(
  concurrency: number,
  durationMs: number,
  next: (i: number) => RequestSpec,
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const result: LoadResult = { ok: 0, failed: 0, latenciesMs: [], elapsedMs: 0, statuses: {} };
  const start = Date.now();
  const deadline = start + durationMs;
  let seq = 0;
  const caller = async () => {
    while (Date.now() < deadline) {
      try {
        const r = await request(agent, next(seq++));
        result.statuses[r.status] = (result.statuses[r.status] ?? 0) + 1;
        if (r.status === 200) {
          result.ok++;
          result.latenciesMs.push(r.ms);
        } else result.failed++;
      } catch {
        result.failed++;
        result.statuses.error = (result.statuses.error ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  result.elapsedMs = Date.now() - start;
  agent.destroy();
  return result;
}
