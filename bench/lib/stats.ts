/** Percentiles over one round, and median/spread over rounds: every figure in results.json is a `Figure`. */
export interface Figure {
  median: number;
  min: number;
  max: number;
  rounds: number[];
  unit: string;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summary(samples: number[]): { p50: number; p99: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), n: s.length };
}

export function figure(rounds: number[], unit: string): Figure {
  const s = [...rounds].sort((a, b) => a - b);
  const round2 = (v: number) => Math.round(v * 100) / 100;
  return {
    median: round2(percentile(s, 50)),
    min: round2(s[0] ?? NaN),
    max: round2(s[s.length - 1] ?? NaN),
    rounds: rounds.map(round2),
    unit,
  };
}

export const fmt = (f: Figure | undefined) =>
  !f || Number.isNaN(f.median) ? '—' : `${f.median} ${f.unit} (${f.min}–${f.max})`;

export const ratio = (a: Figure, b: Figure) => Math.round((a.median / b.median) * 100) / 100;
