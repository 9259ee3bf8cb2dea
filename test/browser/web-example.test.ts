import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Cookie, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebApp } from '../../examples/web/app.js';
import type { Auth } from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { call, serve, type Served } from '../helpers/http.js';

/**
 * The web example in a real headless Chromium: login through the page, HttpOnly cookies, reload,
 * silent refresh after the access token expires, a cross-site form POST refused, logout.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const SCREENSHOT = fileURLToPath(new URL('../../docs/web-example.png', import.meta.url));
const ACCESS_TTL = 2;

let auth: Auth;
let app: Served;
let attacker: { port: number; close(): Promise<void> };
let context: BrowserContext;
let profile: string;

/** A page on another origin that posts a form to the app's logout route as soon as it loads. */
function attackerSite(target: string): Promise<{ port: number; close(): Promise<void> }> {
  const html = `<!doctype html><form method="POST" action="${target}/auth/logout"><input name="x" value="1"></form><script>document.forms[0].submit()</script>`;
  return new Promise((resolve) => {
    const server: Server = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(html);
    });
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as { port: number }).port,
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}

const cookieNamed = (cookies: Cookie[], name: string) => cookies.find((c) => c.name === name);

async function meName(page: Page): Promise<string> {
  await page.waitForSelector('#app-view:not([hidden])');
  return (await page.textContent('#me-name')) ?? '';
}

describe('web example in Chromium', () => {
  beforeAll(async () => {
    if (!hasChromium) return;
    auth = testAuth({
      tokenDelivery: 'cookie',
      accessTokenTtl: ACCESS_TTL,
      userFields: ['name'],
      refreshGracePeriod: 10,
    });
    app = await serve(createWebApp(auth));
    attacker = await attackerSite(app.url);
    profile = mkdtempSync(join(tmpdir(), 'kjr-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 800, height: 600 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await attacker?.close();
    await app?.close();
    await auth?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it.skipIf(!hasChromium)(
    hasChromium
      ? 'logs in, keeps tokens HttpOnly, survives a reload, refreshes silently, refuses a cross-site logout, logs out'
      : `browser test skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`,
    async () => {
      const page = context.pages()[0] ?? (await context.newPage());
      /** Waits until Chromium has dropped the access cookie (its Max-Age is the token's life). */
      const accessCookieDropped = () =>
        expect
          .poll(async () => cookieNamed(await context.cookies(app.url), '__Host-access_token'), {
            timeout: 15_000,
            interval: 250,
          })
          .toBeUndefined();
      await page.goto(app.url);

      // Log in through the form.
      await page.waitForSelector('#login-view:not([hidden])');
      await page.fill('#username', 'alice');
      await page.fill('#password', 'wonderland');
      await page.click('#login');
      expect(await meName(page)).toBe('alice');

      // The token cookies are HttpOnly: the browser holds them, the page's script cannot see them.
      const cookies = await context.cookies();
      const access = cookieNamed(cookies, '__Host-access_token');
      const refresh = cookies.find((c) => c.name === '__Secure-refresh_token');
      expect(access).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax', path: '/' });
      expect(refresh).toMatchObject({
        httpOnly: true,
        secure: true,
        sameSite: 'Lax',
        path: '/auth/refresh',
      });
      // `document` is the page's, not Node's: the function runs in the browser.
      const visible = await page.evaluate('document.cookie');
      expect(String(visible)).not.toContain('access_token');
      expect(String(visible)).not.toContain('refresh_token');
      expect(String(visible)).toContain('__Host-csrf_token=');

      // A reload keeps the user logged in.
      await page.reload();
      expect(await meName(page)).toBe('alice');

      // Once the access token (and its cookie, Max-Age = TTL) expires, the next call refreshes silently.
      const before = cookieNamed(await context.cookies(app.url), '__Host-access_token')?.value;
      await accessCookieDropped();
      const refreshed = page.waitForResponse((r) => r.url().endsWith('/auth/refresh'));
      await page.click('#check');
      expect((await refreshed).status()).toBe(200);
      expect(await meName(page)).toBe('alice');
      const after = cookieNamed(await context.cookies(app.url), '__Host-access_token')?.value;
      expect(after).toBeDefined();
      expect(after).not.toBe(before);
      expect(Number(await page.textContent('#refresh-count'))).toBeGreaterThanOrEqual(1);

      // A second device shows up in the session list; take the screenshot for the README there.
      const other = await call(app.url, '/auth/login', {
        body: { username: 'alice', password: 'wonderland' },
        headers: { 'x-csrf-token': '1', 'user-agent': 'curl/8.5.0 (second device)' },
      });
      expect(other.status).toBe(200);
      await page.click('#reload-sessions');
      await expect.poll(() => page.locator('#sessions tr').count()).toBe(2);
      // The README's screenshot. Rewritten only when missing or asked for (UPDATE_SCREENSHOT=1), so
      // that a test run does not leave the committed PNG modified (its clock times differ each run).
      const shot =
        !existsSync(SCREENSHOT) || process.env.UPDATE_SCREENSHOT === '1'
          ? SCREENSHOT
          : join(profile, 'web-example.png');
      mkdirSync(join(shot, '..'), { recursive: true });
      await page.screenshot({ path: shot, type: 'png' });
      expect(statSync(shot).size).toBeLessThan(150_000);

      // Cross-site (localhost vs 127.0.0.1: SameSite=Lax keeps the cookies home) and same-site but
      // cross-origin (another port: the cookies are sent): both form POSTs are refused with 403.
      for (const origin of [
        `http://localhost:${attacker.port}`,
        `http://127.0.0.1:${attacker.port}`,
      ]) {
        const evil = await context.newPage();
        const answer = evil.waitForResponse((r) => r.url() === `${app.url}/auth/logout`);
        await evil.goto(origin);
        const res = await answer;
        expect(res.status()).toBe(403);
        expect(((await res.json()) as { error: string }).error).toBe('origin_forbidden');
        await evil.close();
      }
      expect(await auth.listSessions(1)).toHaveLength(2);
      await page.click('#check');
      expect(await meName(page)).toBe('alice');

      // Log out other devices, then log out.
      await page.click('#logout-others');
      await expect.poll(() => page.locator('#sessions tr').count()).toBe(1);
      expect(await auth.listSessions(1)).toHaveLength(1);
      // Log out once Chromium has dropped the access cookie (its Max-Age is the token's life): the
      // session still ends, by the refresh cookie the logout route's Path also has (it used to be
      // a 401 that cleared the cookies and left the session alive in the store).
      await accessCookieDropped();
      const loggedOut = page.waitForResponse((r) => r.url().endsWith('/auth/logout'));
      await page.click('#logout');
      expect((await loggedOut).status()).toBe(204);
      await page.waitForSelector('#login-view:not([hidden])');
      const left = (await context.cookies(app.url)).map((c) => c.name);
      expect(left).not.toContain('__Host-access_token');
      expect(left).not.toContain('__Host-csrf_token');
      expect(left).not.toContain('__Secure-refresh_token');
      expect(await auth.listSessions(1)).toEqual([]);
      await page.reload();
      await page.waitForSelector('#login-view:not([hidden])');
    },
    120_000,
  );
});
