/**
 * Awaits a condition that another process makes true (a child server, a second worker), checking it every
 * few milliseconds, and fails with `what` if it does not happen in time. In-process work is awaited
 * directly (worker.drain()); this is for what cannot be awaited.
 */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
