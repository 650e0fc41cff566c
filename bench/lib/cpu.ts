import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * Where the machine's CPU goes during a measurement: the user + system time of each process (all of its
 * threads) from `/proc/<pid>/stat`, so Linux only; elsewhere the CPU figures are left out. The bench's
 * own process (`'self'`) holds the load generator and the Graph and Retell simulators.
 *
 * A closed loop of n users can go no faster than the machine's CPUs allow at the measured cost per turn:
 * turns/s ≤ cpus × 1000 / (ms of CPU per turn, all processes), so the mean turn takes at least
 * n / (that rate). That floor is what `allowedPerSecond` reports.
 */
export type CpuRoles = Record<string, number | 'self' | undefined>;
export type CpuSnapshot = Record<string, number>;

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100;
  } catch {
    return 100;
  }
})();

function processCpuMs(pid: number | 'self'): number | undefined {
  if (pid === 'self') {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) " the fields start at `state` (field 3): utime is field 14, stime field 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1000;
  } catch {
    return undefined;
  }
}

export function cpuSnapshot(roles: CpuRoles): CpuSnapshot {
  const out: CpuSnapshot = {};
  for (const [role, pid] of Object.entries(roles)) {
    const ms = pid === undefined ? undefined : processCpuMs(pid);
    if (ms !== undefined) out[role] = ms;
  }
  return out;
}

/** ms of CPU per unit of work for each role measured at both ends, and their sum as `total`. */
export function cpuPerUnit(before: CpuSnapshot, after: CpuSnapshot, units: number): CpuSnapshot {
  const out: CpuSnapshot = {};
  let total = 0;
  for (const [role, ms] of Object.entries(after)) {
    if (before[role] === undefined || units <= 0) continue;
    out[role] = (ms - before[role]) / units;
    total += out[role];
  }
  if (Object.keys(out).length) out.total = total;
  return out;
}

/** Units per second the machine's CPUs allow at `msPerUnit` (all processes together). */
export function allowedPerSecond(cpus: number, msPerUnit: number): number {
  return (cpus * 1000) / msPerUnit;
}
