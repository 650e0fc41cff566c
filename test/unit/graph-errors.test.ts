import { classifyGraphError, GraphError, retryAfterFrom } from '../../src/instagram/graph.errors';

const body = (code: number, subcode?: number, extra: Record<string, unknown> = {}) => ({
  error: {
    message: `message for ${code}`,
    type: 'OAuthException',
    code,
    ...(subcode !== undefined ? { error_subcode: subcode } : {}),
    fbtrace_id: 'AbC123',
    ...extra,
  },
});

describe('classifyGraphError', () => {
  it.each([
    // [description, status, code, subcode, kind, mayHaveBeenSent]
    ['code 1 (unknown error)', 500, 1, undefined, 'transient', true],
    ['code 1/1357046 (invalid JSON reply, messages sent)', 500, 1, 1357046, 'transient', true],
    ['code 1/99 (unknown error: missing permissions)', 400, 1, 99, 'permission', false],
    ['code 2 (service)', 500, 2, undefined, 'transient', true],
    ['code 1200 (temporary send failure)', 400, 1200, undefined, 'transient', true],
    ['code 4 (app throttling)', 400, 4, undefined, 'rate_limit', false],
    ['code 17 (account throttling)', 400, 17, undefined, 'rate_limit', false],
    ['code 32 (page throttling)', 400, 32, undefined, 'rate_limit', false],
    ['code 613 (custom throttling)', 400, 613, undefined, 'rate_limit', false],
    ['code 80002 (Instagram BUC throttling)', 400, 80002, undefined, 'rate_limit', false],
    ['code 190 (invalid token)', 400, 190, 460, 'invalid_token', false],
    ['code 102 (API session)', 400, 102, undefined, 'invalid_token', false],
    ['code 10 (permission denied)', 403, 10, undefined, 'permission', false],
    ['code 200 (permission)', 403, 200, undefined, 'permission', false],
    ['code 299 (permission)', 400, 299, undefined, 'permission', false],
    ['code 10/2534022 (Instagram window)', 400, 10, 2534022, 'window_closed', false],
    ['code 10/2018278 (Messenger window)', 400, 10, 2018278, 'window_closed', false],
    ['code 551 (person unavailable)', 400, 551, undefined, 'user_unavailable', false],
    ['code 100 (bad parameter)', 400, 100, 2018001, 'bad_request', false],
    ['an unknown code on a 4xx', 400, 12345, undefined, 'other', false],
    ['an unknown code on a 5xx', 503, 12345, undefined, 'transient', true],
  ] as const)(
    'when Meta answers %s, then kind and mayHaveBeenSent follow',
    (_, status, code, subcode, kind, sent) => {
      const err = classifyGraphError({ status, body: body(code, subcode) });
      expect(err).toBeInstanceOf(GraphError);
      expect(err).toMatchObject({
        status,
        code,
        kind,
        mayHaveBeenSent: sent,
        fbtraceId: 'AbC123',
        type: 'OAuthException',
      });
      expect(err.subcode).toBe(subcode);
      expect(err.metaMessage).toBe(`message for ${code}`);
    },
  );

  it('when a 5xx has no Graph body, then it is transient and may have been sent', () => {
    const err = classifyGraphError({ status: 502, body: '<html>Bad gateway</html>' });
    expect(err).toMatchObject({ kind: 'transient', mayHaveBeenSent: true, metaMessage: 'HTTP 502' });
    expect(err.code).toBeUndefined();
  });

  it('when a 429 has no Graph body, then it is a rate limit that was not sent', () => {
    expect(classifyGraphError({ status: 429 })).toMatchObject({ kind: 'rate_limit', mayHaveBeenSent: false });
  });

  it('when an unknown code says is_transient, then it is transient', () => {
    const err = classifyGraphError({ status: 400, body: body(36000, 2207003, { is_transient: true }) });
    expect(err.kind).toBe('transient');
  });

  it.each(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])(
    'when the connection fails with %s, then Meta is unreachable and nothing was sent',
    (networkCode) => {
      const err = classifyGraphError({ networkCode });
      expect(err).toMatchObject({ kind: 'unreachable', mayHaveBeenSent: false });
      expect(err.retryable).toBe(true);
      expect(err.status).toBeUndefined();
    },
  );

  it.each(['ECONNABORTED', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE'])(
    'when the request fails with %s after connecting, then it is transient and may have been sent',
    (networkCode) => {
      expect(classifyGraphError({ networkCode })).toMatchObject({ kind: 'transient', mayHaveBeenSent: true });
    },
  );

  it('when the error is classified, then its message names the kind, codes and status', () => {
    const err = classifyGraphError({ status: 400, body: body(10, 2534022) });
    expect(err.message).toBe('Graph API window_closed: message for 10 (#10/2534022) [HTTP 400]');
    expect(err.name).toBe('GraphError');
  });

  it('when only rate limits and transient errors carry a wait, then a 190 with Retry-After has none', () => {
    const headers = { 'Retry-After': '5' };
    expect(classifyGraphError({ status: 400, body: body(4), headers }).retryAfterMs).toBe(5000);
    expect(classifyGraphError({ status: 400, body: body(190), headers }).retryAfterMs).toBeUndefined();
  });

  it('when it is classified, then only transient, rate-limit and unreachable errors are retryable', () => {
    expect(classifyGraphError({ status: 500, body: body(2) }).retryable).toBe(true);
    expect(classifyGraphError({ status: 400, body: body(613) }).retryable).toBe(true);
    for (const code of [190, 10, 100, 551, 200]) {
      expect(classifyGraphError({ status: 400, body: body(code) }).retryable).toBe(false);
    }
  });
});

describe('retryAfterFrom', () => {
  it('when Retry-After holds seconds, then it is converted to ms, whatever the header case', () => {
    expect(retryAfterFrom({ 'retry-after': '2' })).toBe(2000);
    expect(retryAfterFrom({ 'Retry-After': ['3'] })).toBe(3000);
  });

  it('when Retry-After holds an HTTP date, then the wait is the time until it', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterFrom({ 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' }, now)).toBe(30_000);
    expect(retryAfterFrom({ 'retry-after': 'Wed, 31 Dec 2025 23:00:00 GMT' }, now)).toBe(0);
  });

  it('when X-Business-Use-Case-Usage names minutes to regain access, then the longest one is used', () => {
    const buc = JSON.stringify({
      '17841400000000000': [
        {
          type: 'instagram',
          call_count: 100,
          total_cputime: 10,
          total_time: 10,
          estimated_time_to_regain_access: 2,
        },
        {
          type: 'pages',
          call_count: 20,
          total_cputime: 1,
          total_time: 1,
          estimated_time_to_regain_access: 0,
        },
      ],
    });
    expect(retryAfterFrom({ 'x-business-use-case-usage': buc })).toBe(120_000);
  });

  it('when X-App-Usage only gives percentages, then there is no wait; when it says so, there is', () => {
    expect(
      retryAfterFrom({ 'x-app-usage': '{"call_count":100,"total_cputime":5,"total_time":5}' }),
    ).toBeUndefined();
    expect(retryAfterFrom({ 'x-app-usage': '{"call_count":100,"estimated_time_to_regain_access":1}' })).toBe(
      60_000,
    );
  });

  it('when the headers are absent or malformed, then there is no wait', () => {
    expect(retryAfterFrom(undefined)).toBeUndefined();
    expect(
      retryAfterFrom({ 'retry-after': 'soon', 'x-business-use-case-usage': '{not json' }),
    ).toBeUndefined();
  });
});
