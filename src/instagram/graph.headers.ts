/** Rate-limit headers: https://developers.facebook.com/docs/graph-api/overview/rate-limiting/ */
export type HeaderBag = Record<string, string | string[] | number | boolean | null | undefined>;

/**
 * How long Meta asks us to wait: `Retry-After` (seconds or HTTP date), else the longest
 * `estimated_time_to_regain_access` (minutes) in `X-Business-Use-Case-Usage` (`{ "<id>": [{ … }] }`) or in
 * `X-App-Usage` when it carries one. Both headers are JSON documented on the rate-limiting page.
 */
export function retryAfterFrom(headers?: HeaderBag, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const get = (name: string): string | undefined => {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
    const v = key === undefined ? undefined : headers[key];
    return Array.isArray(v) ? v[0] : v === undefined || v === null ? undefined : String(v);
  };
  const ra = get('retry-after')?.trim();
  if (ra) {
    if (/^\d+(\.\d+)?$/.test(ra)) return Math.round(Number(ra) * 1000);
    const at = Date.parse(ra);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const minutes = [
    ...regainMinutes(get('x-business-use-case-usage'), true),
    ...regainMinutes(get('x-app-usage'), false),
  ];
  const max = Math.max(0, ...minutes);
  return max > 0 ? max * 60_000 : undefined;
}

function regainMinutes(header: string | undefined, keyed: boolean): number[] {
  if (!header) return [];
  try {
    const parsed: unknown = JSON.parse(header);
    const items: unknown[] =
      keyed && parsed && typeof parsed === 'object' ? Object.values(parsed).flat() : [parsed];
    return items
      .map((i) => toInt((i as Record<string, unknown> | null)?.estimated_time_to_regain_access))
      .filter((n): n is number => n !== undefined);
  } catch {
    return [];
  }
}

export function toInt(v: unknown): number | undefined {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? Math.trunc(n) : undefined;
}
