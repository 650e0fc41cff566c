import { GraphError } from './graph.errors';

export interface RetryOptions {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** No wait is started that would end later than this after the first attempt began. */
  maxTotalMs: number;
}

export const DEFAULT_RETRY: RetryOptions = {
  maxAttempts: 4,
  baseDelayMs: 200,
  maxDelayMs: 5000,
  maxTotalMs: 15000,
};

export type Sleep = (ms: number) => Promise<void>;

export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `attempt` until it succeeds, fails with an error `shouldRetry` refuses, or the budget is spent.
 * Backoff is exponential with full jitter (a random wait in [0, min(max, base·2ⁿ)]); when Meta says how
 * long to wait (`retryAfterMs`), that wait is used instead, and if it does not fit in `maxTotalMs` the
 * error is thrown at once rather than waited out.
 */
export async function withRetry<T>(
  attempt: () => Promise<T>,
  shouldRetry: (err: GraphError) => boolean,
  opts: RetryOptions,
  sleep: Sleep = realSleep,
): Promise<T> {
  const started = Date.now();
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof GraphError) || !shouldRetry(err) || n >= opts.maxAttempts) throw err;
      const backoff = Math.random() * Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** (n - 1));
      const wait = err.retryAfterMs ?? backoff;
      if (Date.now() - started + wait > opts.maxTotalMs) throw err;
      await sleep(wait);
    }
  }
}
