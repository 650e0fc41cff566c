import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import { startHarness, type Harness } from '../setup/harness';
import { aSubaccount, anAgent, igPath } from '../factories/platform';
import { adminOf, tokenFor } from '../setup/tokens';

/**
 * The connect page in a real browser (Debian's chromium driven by playwright-core), against the real app
 * with Meta's Graph API simulated behind it. The page is plain static files, so this is its only test.
 */
const CHROMIUM = '/usr/bin/chromium';
const hasBrowser = fs.existsSync(CHROMIUM);
// In CI the browser is installed by .ci/install-browser, so a missing one is a failure, not a skip.
const runBrowserTests = hasBrowser || process.env.CI === 'true';
if (!runBrowserTests) {
  console.warn(
    `connect-page tests skipped: ${CHROMIUM} is missing. Install it with .ci/install-browser (they always run in CI).`,
  );
}
const describeBrowser = runBrowserTests ? describe : describe.skip;

const ROOT = path.resolve(__dirname, '../..');

describeBrowser('the connect page', () => {
  let h: Harness;
  let server: http.Server;
  let baseUrl: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let consoleLines: string[];

  beforeAll(async () => {
    fs.mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
    h = await startHarness();
    server = http.createServer(h.t.app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless=new',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await h?.close();
  });

  beforeEach(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    consoleLines = [];
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  });

  afterEach(async () => {
    await context?.close();
  });

  /** A fresh subaccount and agent, an admin JWT for them, and an Instagram token Meta knows. */
  async function anAdminWithAnAccount(kind: 'instagram' | 'page' = 'instagram', name?: string) {
    const sub = await aSubaccount(h.t.platformDb);
    const agentId = await anAgent(h.t.platformDb, sub);
    const accountId = `1784${crypto.randomInt(1e9, 1e10)}`;
    const username = name ?? `calm_shop_${accountId.slice(-4)}`;
    const token = `${kind === 'instagram' ? 'IGAA' : 'EAAB'}${crypto.randomBytes(24).toString('hex')}`;
    h.graph.accounts.set(token, {
      id: accountId,
      username,
      name: 'The Calm Shop',
      ...(kind === 'instagram' ? { appScopedId: `99${accountId}` } : { pageId: `10${accountId}` }),
    });
    const jwt = tokenFor({ role: 'admin', subaccountIds: [sub.id] });
    return { sub, agentId, accountId, username, token, jwt };
  }

  async function open(query = ''): Promise<void> {
    await page.goto(`${baseUrl}/instagram/connect${query}`);
    await page.locator('#connect-form').waitFor();
  }

  async function fill(fields: Record<string, string>): Promise<void> {
    for (const [id, value] of Object.entries(fields)) {
      if (['webhookVerificationToken', 'appSecret'].includes(id)) {
        await inPage("document.querySelector('details.advanced').open = true");
      }
      await page.fill(`#${id}`, value);
    }
  }

  /** An expression run in the page. Strings, because this project compiles without the DOM lib. */
  const inPage = <T = string>(expression: string) => page.evaluate(expression) as Promise<T>;
  const visible = (selector: string) => page.locator(selector).waitFor({ state: 'visible' });
  // Waits on the page's text through locators: `page.waitForFunction` with a string polls by `eval` in the
  // page once its first check fails, which the page's CSP (script-src 'self') refuses.
  const textMatches = (selector: string, text: RegExp) =>
    page.locator(selector, { hasText: text }).waitFor({ state: 'attached' });
  const value = (selector: string) => page.locator(selector).inputValue();

  async function fieldError(
    id: string,
  ): Promise<{ text: string; invalid: string | null; describedBy: string }> {
    await visible(`#${id}-error`);
    return {
      text: (await page.locator(`#${id}-error`).textContent()) ?? '',
      invalid: await page.locator(`#${id}`).getAttribute('aria-invalid'),
      describedBy: (await page.locator(`#${id}`).getAttribute('aria-describedby')) ?? '',
    };
  }

  function decodeQr(dataUrl: string): string | undefined {
    const png = PNG.sync.read(Buffer.from(dataUrl.replace(/^data:image\/png;base64,/, ''), 'base64'));
    return jsQR(Uint8ClampedArray.from(png.data), png.width, png.height)?.data;
  }

  /**
   * The connected state, as a test artefact on every run. The README's copy in docs/images is written when
   * missing or when UPDATE_DOCS_SCREENSHOT=true, so a test run does not rewrite a tracked file.
   */
  async function screenshot(): Promise<void> {
    const png = await page.screenshot({ fullPage: true });
    fs.writeFileSync(path.join(ROOT, 'test-artifacts/connect-page.png'), png);
    const docsCopy = path.join(ROOT, 'docs/images/connect-page.png');
    if (!fs.existsSync(docsCopy) || process.env.UPDATE_DOCS_SCREENSHOT === 'true') {
      fs.mkdirSync(path.dirname(docsCopy), { recursive: true });
      fs.writeFileSync(docsCopy, png);
    }
  }

  test('when an admin submits a valid Instagram token, then the page shows a QR code that decodes to the DM link', async () => {
    const a = await anAdminWithAnAccount('instagram', 'the.calm.studio');
    const appSecret = crypto.randomBytes(16).toString('hex');
    await open(`?subaccountId=${a.sub.id}&agentId=${a.agentId}`);
    expect(await value('#subaccountId')).toBe(a.sub.id);
    expect(await value('#agentId')).toBe(a.agentId);

    await fill({ jwt: a.jwt, accessToken: a.token, appSecret, webhookVerificationToken: 'verify-me-please' });
    await page.click('#connect-button');
    await visible('#connected-view');

    const src = (await page.locator('#qr-image').getAttribute('src')) ?? '';
    expect(src).toMatch(/^data:image\/png;base64,/);
    expect(decodeQr(src)).toBe(`https://ig.me/m/${a.username}`);
    const qrBox = await page.locator('#qr-image').boundingBox();
    expect(qrBox?.width).toBeGreaterThanOrEqual(250);
    expect(await page.locator('#qr-download').getAttribute('href')).toBe(src);
    expect(await page.locator('#dm-link').getAttribute('href')).toBe(`https://ig.me/m/${a.username}`);
    expect(await page.locator('#profile-link').getAttribute('href')).toBe(
      `https://www.instagram.com/${a.username}/`,
    );
    expect(await value('#webhook-url')).toBe(
      `https://connector.example.test${igPath(a.sub.id, a.agentId, 'webhook')}`,
    );
    expect(await value('#verify-token')).toBe('verify-me-please');
    expect(await page.locator('#subscription').getAttribute('class')).toContain('ok');
    // Status fields come from GET /status after the connect answer.
    await textMatches('#st-signature', /^On/);
    expect(await page.locator('#st-account').textContent()).toBe(a.accountId);

    // No secret stays in the page: the inputs are empty, and the strings are nowhere in the DOM or storage.
    expect(await value('#accessToken')).toBe('');
    expect(await value('#appSecret')).toBe('');
    const html = await page.content();
    const storage = await page.evaluate(
      'JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage })',
    );
    for (const secret of [a.token, appSecret]) {
      expect(html).not.toContain(secret);
      expect(storage).not.toContain(secret);
      expect(page.url()).not.toContain(secret);
      expect(consoleLines.join('\n')).not.toContain(secret);
      expect(h.t.logs.join('\n')).not.toContain(secret);
    }
    expect(consoleLines.filter((l) => /error/i.test(l))).toEqual([]);

    await screenshot();

    // Printed, the page is the QR code and the DM link, nothing else.
    await page.emulateMedia({ media: 'print' });
    for (const shown of ['#qr-image', '#dm-link', '#print-caption']) {
      expect(await page.locator(shown).isVisible()).toBe(true);
    }
    for (const hidden of [
      '#webhook-url',
      '#st-account',
      '#disconnect-button',
      '#qr-download',
      '.site-header',
    ]) {
      expect(await page.locator(hidden).isVisible()).toBe(false);
    }
    await page.screenshot({ path: path.join(ROOT, 'test-artifacts/connect-page-print.png') });
  });

  test('when Instagram refuses the token, then its message appears next to the access token input', async () => {
    const a = await anAdminWithAnAccount();
    await open(`?subaccountId=${a.sub.id}&agentId=${a.agentId}`);
    const refused = `IGAA${crypto.randomBytes(24).toString('hex')}`; // unknown to Meta: error 190
    await fill({ jwt: a.jwt, accessToken: refused });
    await page.click('#connect-button');

    const err = await fieldError('accessToken');
    expect(err.text).toContain('Instagram refused this token');
    expect(err.text).toContain('Invalid OAuth access token');
    expect(err.invalid).toBe('true');
    expect(err.describedBy.split(' ')).toContain('accessToken-error');
    expect(await value('#accessToken')).toBe('');
    expect(await page.content()).not.toContain(refused);
    expect(await page.locator('#connected-view').isHidden()).toBe(true);
  });

  test('when a Page token comes without an Instagram account id, then the 400 error appears next to that input', async () => {
    const a = await anAdminWithAnAccount('page');
    await open(`?subaccountId=${a.sub.id}&agentId=${a.agentId}`);
    await fill({ jwt: a.jwt, accessToken: a.token });
    expect(await page.locator('#page-token-hint').isVisible()).toBe(true);
    await page.click('#connect-button');

    const err = await fieldError('instagramAccountId');
    await page.screenshot({
      path: path.join(ROOT, 'test-artifacts/connect-page-field-error.png'),
      fullPage: true,
    });
    expect(err.text).toBe('Instagram account id is required for Page (Facebook Login) tokens.');
    expect(err.invalid).toBe('true');
    expect(err.describedBy.split(' ')).toContain('instagramAccountId-error');
    expect(await inPage('document.activeElement.id')).toBe('instagramAccountId');
    expect(await page.locator('#accessToken-error').isHidden()).toBe(true);
  });

  test('when the agent does not exist, then a page-level alert says so', async () => {
    const a = await anAdminWithAnAccount();
    await open(`?subaccountId=${a.sub.id}&agentId=agent_nobody`);
    await fill({ jwt: a.jwt, accessToken: a.token });
    await page.click('#connect-button');
    await visible('#page-alert');
    expect(await page.locator('#page-alert').getAttribute('role')).toBe('alert');
    expect(await page.locator('#page-alert').textContent()).toContain('No such subaccount or chat agent');
  });

  test('when Meta refuses the webhook subscription, then a warning shows Meta’s message', async () => {
    const a = await anAdminWithAnAccount();
    h.graph.failNext({ method: 'POST', path: /subscribed_apps$/ }, [
      {
        status: 400,
        body: { error: { message: '(#200) Requires instagram_manage_messages permission', code: 200 } },
      },
    ]);
    await open(`?subaccountId=${a.sub.id}&agentId=${a.agentId}`);
    await fill({ jwt: a.jwt, accessToken: a.token });
    await page.click('#connect-button');
    await visible('#connected-view');
    const notice = page.locator('#subscription');
    expect(await notice.getAttribute('class')).toContain('warn');
    expect(await notice.textContent()).toContain('Requires instagram_manage_messages permission');
  });

  test('when the admin confirms Disconnect, then the form returns and /status says not connected', async () => {
    const a = await anAdminWithAnAccount();
    await open(`?subaccountId=${a.sub.id}&agentId=${a.agentId}`);
    await fill({ jwt: a.jwt, accessToken: a.token });
    await page.click('#connect-button');
    await visible('#connected-view');

    await page.click('#disconnect-button');
    await visible('#disconnect-confirm');
    expect(await page.locator('#connected-view').isVisible()).toBe(true); // nothing happens before confirming
    await page.click('#disconnect-yes');
    await visible('#form-view');
    expect(await page.locator('#connected-view').isHidden()).toBe(true);

    const status = await h.t
      .http()
      .get(igPath(a.sub.id, a.agentId, 'status'))
      .set(adminOf(a.sub.id));
    expect(status.body.data).toEqual({ isConnected: false });
  });

  test('when the platform opens the page with ?token= for a connected agent, then the connected view shows and the token leaves the URL', async () => {
    const connected = await h.connectAgent();
    const jwt = connected.admin.Authorization!.replace(/^Bearer /, '');
    await page.goto(
      `${baseUrl}/instagram/connect?token=${jwt}&subaccountId=${connected.sub.id}&agentId=${connected.agentId}`,
    );
    await visible('#connected-view');
    expect(page.url()).not.toContain(jwt);
    expect(h.t.logs.join('\n')).not.toContain(jwt); // the request log keeps the path, not the query
    expect(page.url()).toContain(`agentId=${connected.agentId}`);
    expect(decodeQr((await page.locator('#qr-image').getAttribute('src')) ?? '')).toBe(
      `https://ig.me/m/${connected.username}`,
    );
    expect(await page.locator('#verify-token-missing').isVisible()).toBe(true);
    expect(await page.locator('#st-username').textContent()).toBe(`@${connected.username}`);

    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseUrl });
    await page.click('[data-copy="webhook-url"]');
    await textMatches('#copy-status', /^Copied\.$/);
    expect(await inPage('navigator.clipboard.readText()')).toBe(await value('#webhook-url'));
  });

  test('when the admin uses only the keyboard, then Tab reaches every field and Enter submits', async () => {
    const a = await anAdminWithAnAccount();
    await open();
    const focused = () => inPage('document.activeElement.id || document.activeElement.className');

    await page.keyboard.press('Tab');
    expect(await focused()).toBe('skip-link');
    for (const [id, text] of [
      ['jwt', a.jwt],
      ['subaccountId', a.sub.id],
      ['agentId', a.agentId],
      ['accessToken', a.token],
    ] as const) {
      await page.keyboard.press('Tab');
      expect(await focused()).toBe(id);
      await page.keyboard.insertText(text);
    }
    await page.keyboard.press('Enter');
    await visible('#connected-view');
    expect(await focused()).toBe('connected-title');
    expect(await value('#accessToken')).toBe('');
  });

  test('when the page is 360 px wide, then neither the form nor the connected view scrolls sideways', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    const a = await anAdminWithAnAccount();
    const overflow = () =>
      inPage<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    await open(`?subaccountId=${a.sub.id}&agentId=${a.agentId}`);
    expect(await overflow()).toBeLessThanOrEqual(0);
    await page.screenshot({
      path: path.join(ROOT, 'test-artifacts/connect-page-form-360.png'),
      fullPage: true,
    });

    await fill({ jwt: a.jwt, accessToken: a.token });
    await page.click('#connect-button');
    await visible('#connected-view');
    await page.locator('#st-signature').filter({ hasNotText: /^—$/ }).waitFor({ state: 'attached' });
    expect(await overflow()).toBeLessThanOrEqual(0);
    const qr = await page.locator('#qr-image').boundingBox();
    expect(qr?.width).toBeGreaterThanOrEqual(250);
    await page.screenshot({ path: path.join(ROOT, 'test-artifacts/connect-page-360.png'), fullPage: true });
  });
});
