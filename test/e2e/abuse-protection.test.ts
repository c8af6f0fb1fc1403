// Abuse protection end to end: account lockout after failed passwords (and `gatehouse user
// unlock`), rate limits on signup and on the token endpoint, and the CAPTCHA challenge on the
// hosted forms, checked server-side against a local stand-in for the vendor's siteverify API.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cspProblems, expectLoginPage, launchBrowser, newPage, signIn, waitForRedirect } from '../helpers/browser.ts';
import { CookieJar, decodeEntities, parseForms } from '../helpers/http-login.ts';
import { startMailSink, type MailSink } from '../helpers/mail.ts';
import {
  authRequest,
  createClient,
  createUser,
  exchangeCode,
  gatehouse,
  rpConfig,
  startCallbackServer,
  type CallbackServer,
  type CreatedClient,
} from '../helpers/rp.ts';
import { address, alertText, goto, pageText, submit } from '../helpers/pages.ts';
import { runCli, startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

const BAD_CREDENTIALS = 'Incorrect email or password.';

let browser: Browser;
let cb: CallbackServer;
let mail: MailSink;

beforeAll(async () => {
  [browser, cb, mail] = await Promise.all([launchBrowser(), startCallbackServer(), startMailSink()]);
});

afterAll(async () => {
  await browser?.close();
  await cb?.close();
  await mail?.close();
});


async function listUser(server: RunningServer, email: string): Promise<Record<string, unknown> | undefined> {
  const out = await gatehouse<{ users: Record<string, unknown>[] }>(server.env, ['user', 'list']);
  return out.users.find((u) => u.email === email);
}

async function stopServer(server: RunningServer | undefined, dataDir: string | undefined): Promise<void> {
  const code = await server?.stop();
  if (server && code !== undefined && code !== 0 && code !== null) console.error(`server exited with ${code}:\n${server.logs()}`);
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
}

/** The visible text of an HTML document (what a person reads), whitespace collapsed. */
function textOf(html: string): string {
  const main = /<main\b[^>]*>([\s\S]*?)<\/main>/i.exec(html)?.[1] ?? html;
  return decodeEntities(main.replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ').trim();
}

// ---------------------------------------------------------------------------------------------
// Lockout and rate limits: one server with small thresholds.
// ---------------------------------------------------------------------------------------------

describe('lockout and rate limits', () => {
  let dataDir: string;
  let server: RunningServer;
  let app: CreatedClient;
  let config: oidc.Configuration;

  beforeAll(async () => {
    dataDir = tempDataDir('gh-e2e-abuse-');
    server = await startServer({
      DATA_DIR: dataDir,
      SMTP_URL: mail.url,
      LOCKOUT_THRESHOLD: '3',
      LOCKOUT_BASE_SECONDS: '60',
      RATE_LIMIT_SIGNUP_IP: '2/3600',
      RATE_LIMIT_TOKEN_CLIENT: '3/60',
      ...testSecrets(),
    });
    app = await createClient(server.env, { name: 'Guarded App', redirectUris: [cb.redirectUri], firstParty: true });
    config = await rpConfig(server.url, app);
  });

  afterAll(async () => {
    await stopServer(server, dataDir);
  });

  it('locks the account after three wrong passwords, refuses even the right one alike, mails the owner, and `user unlock` ends it', async () => {
    const user = await createUser(server.env, { email: address('target'), password: 'cedar mitten 64 rolling dunes', name: 'Tara Target', verified: true });
    const { context, page } = await newPage(browser);
    try {
      const req = await authRequest(config, { redirectUri: cb.redirectUri });
      await goto(page, req.url);
      await expectLoginPage(page, app.name);

      const failures: { status: number; alert: string; text: string }[] = [];
      for (const guess of ['guess number one', 'guess number two', 'guess number three']) {
        const res = await submit(page, () => signIn(page, { email: user.email, password: guess }));
        failures.push({ status: res.status(), alert: await alertText(page), text: await pageText(page) });
      }
      for (const failure of failures) {
        expect(failure.status).toBe(401);
        expect(failure.alert).toBe(BAD_CREDENTIALS);
      }

      // Locked: the right password gets exactly the answer a wrong one gets.
      const locked = await submit(page, () => signIn(page, user));
      expect(locked.status()).toBe(401);
      expect(new URL(page.url()).origin).toBe(server.url);
      expect({ alert: await alertText(page), text: await pageText(page) }).toEqual({ alert: failures[0]!.alert, text: failures[0]!.text });

      const notice = await mail.waitForMail({ to: user.email, subject: /temporarily locked/i });
      expect(notice.text).toMatch(/failed sign-in attempts/i);
      expect(mail.mailsTo(user.email, /temporarily locked/i)).toHaveLength(1);

      // The operator ends the lock while the server runs.
      const unlocked = await runCli(server.env, ['user', 'unlock', user.email]);
      expect(unlocked.code, unlocked.stderr).toBe(0);
      expect(unlocked.json).toMatchObject({ account: { email: user.email, status: 'active' } });

      await signIn(page, user);
      const back = await waitForRedirect(page, cb.redirectUri);
      const tokens = await exchangeCode(config, back, req);
      expect(tokens.claims()!.sub).toBe(String(user.id));
    } finally {
      await context.close();
    }
  });

  it('refuses the third signup from one address with 429 and a readable page', async () => {
    const { context, page } = await newPage(browser);
    try {
      const attempt = async (email: string) => {
        const req = await authRequest(config, { redirectUri: cb.redirectUri });
        await goto(page, req.url);
        await page.getByRole('link', { name: 'Create account' }).click();
        await page.getByRole('heading', { name: 'Create your account' }).waitFor();
        await page.getByLabel('Email', { exact: true }).fill(email);
        await page.getByLabel('Password', { exact: true }).fill('plum satchel 31 curious otters');
        return submit(page, () => page.getByRole('button', { name: 'Create account' }).click());
      };
      for (const n of [1, 2]) {
        const ok = await attempt(address(`signup${n}`));
        expect(ok.status()).toBe(200);
        await page.getByRole('heading', { name: 'Check your email' }).waitFor();
      }
      const third = address('signup3');
      const limited = await attempt(third);
      expect(limited.status()).toBe(429);
      const retryAfter = Number(limited.headers()['retry-after']);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(3600);
      expect(limited.headers()['content-type']).toMatch(/text\/html/);
      expect(await alertText(page)).toMatch(/too many attempts\. try again in \d+ (minutes?|seconds?)/i);
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBeTruthy();
      expect(await listUser(server, third)).toBeUndefined();
    } finally {
      await context.close();
    }
  });

  it('answers the fourth client_credentials request within the window with 429 and Retry-After', async () => {
    const service = await createClient(server.env, { name: 'Batch Service', grantTypes: ['client_credentials'] });
    const svcConfig = await rpConfig(server.url, service);
    for (let i = 0; i < 3; i++) {
      const tokens = await oidc.clientCredentialsGrant(svcConfig);
      expect(tokens.access_token).toBeTruthy();
    }
    const tokenEndpoint = svcConfig.serverMetadata().token_endpoint!;
    const res = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(service.client_id)}:${encodeURIComponent(service.client_secret!)}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
    expect(res.status).toBe(429);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const body = (await res.json()) as { error?: unknown; error_description?: unknown };
    expect(typeof body.error).toBe('string');
    // openid-client sees the refusal too; other clients are not affected.
    await expect(oidc.clientCredentialsGrant(svcConfig)).rejects.toThrow();
    const other = await createClient(server.env, { name: 'Other Service', grantTypes: ['client_credentials'] });
    expect((await oidc.clientCredentialsGrant(await rpConfig(server.url, other))).access_token).toBeTruthy();
  });
});

// ---------------------------------------------------------------------------------------------
// CAPTCHA (Turnstile) against a fake vendor.
// ---------------------------------------------------------------------------------------------

interface VendorCall {
  secret: string | null;
  response: string | null;
  remoteip: string | null;
}

interface FakeVendor {
  verifyUrl: string;
  calls: VendorCall[];
  close(): Promise<void>;
}

const GOOD_TOKEN = 'XXXX.DUMMY.TOKEN.XXXX-accepted';
const SECRET = 'y';
const SITE_KEY = 'x';

/** Answers siteverify like Turnstile: success only for GOOD_TOKEN with the right secret. */
async function startFakeVendor(): Promise<FakeVendor> {
  const calls: VendorCall[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/siteverify') {
        res.writeHead(404).end();
        return;
      }
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const call = { secret: form.get('secret'), response: form.get('response'), remoteip: form.get('remoteip') };
      calls.push(call);
      const success = call.secret === SECRET && call.response === GOOD_TOKEN;
      const errorCodes = call.secret !== SECRET ? ['invalid-input-secret'] : success ? [] : ['invalid-input-response'];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ success, 'error-codes': errorCodes, ...(success ? { hostname: 'localhost', challenge_ts: new Date().toISOString() } : {}) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    verifyUrl: `http://127.0.0.1:${port}/siteverify`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** GET with manual redirects and a cookie jar; the final response's URL, status and body. */
async function httpGet(jar: CookieJar, start: URL): Promise<{ url: URL; status: number; html: string }> {
  let url = start;
  for (let i = 0; i < 10; i++) {
    const headers: Record<string, string> = { accept: 'text/html' };
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    const res = await fetch(url, { headers, redirect: 'manual' });
    jar.store(url, res.headers.getSetCookie());
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      url = new URL(location, url);
      continue;
    }
    return { url, status: res.status, html: await res.text() };
  }
  throw new Error(`too many redirects from ${start.href}`);
}

async function httpPost(jar: CookieJar, url: URL, fields: URLSearchParams): Promise<{ status: number; html: string }> {
  const res = await fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', origin: url.origin, cookie: jar.header(url) },
    body: fields,
  });
  jar.store(url, res.headers.getSetCookie());
  return { status: res.status, html: await res.text() };
}

describe('CAPTCHA', () => {
  let dataDir: string;
  let server: RunningServer;
  let vendor: FakeVendor;
  let app: CreatedClient;
  let config: oidc.Configuration;

  beforeAll(async () => {
    dataDir = tempDataDir('gh-e2e-captcha-');
    vendor = await startFakeVendor();
    server = await startServer({
      DATA_DIR: dataDir,
      SMTP_URL: mail.url,
      CAPTCHA_PROVIDER: 'turnstile',
      CAPTCHA_SITE_KEY: SITE_KEY,
      CAPTCHA_SECRET: SECRET,
      CAPTCHA_VERIFY_URL: vendor.verifyUrl,
      CAPTCHA_LOGIN_AFTER_FAILURES: '2',
      ...testSecrets(),
    });
    app = await createClient(server.env, { name: 'Captcha App', redirectUris: [cb.redirectUri], firstParty: true });
    config = await rpConfig(server.url, app);
  });

  afterAll(async () => {
    await stopServer(server, dataDir);
    await vendor?.close();
  });

  it('shows the widget on signup, allows the vendor in the CSP, and refuses a signup without a solved challenge', async () => {
    const email = address('robot');
    const { context, page } = await newPage(browser);
    try {
      const req = await authRequest(config, { redirectUri: cb.redirectUri });
      await goto(page, req.url);
      const signupPage = await submit(page, () => page.getByRole('link', { name: 'Create account' }).click());
      expect(signupPage.status()).toBe(200);
      await expect(page.locator(`.cf-turnstile[data-sitekey="${SITE_KEY}"]`).count()).resolves.toBe(1);
      await expect(page.locator('script[src^="https://challenges.cloudflare.com/"]').count()).resolves.toBe(1);
      const csp = signupPage.headers()['content-security-policy'];
      expect(cspProblems(csp)).toEqual([]);
      const directive = (name: string) => csp?.split(';').map((d) => d.trim().split(/\s+/)).find(([n]) => n === name)?.slice(1) ?? [];
      expect(directive('script-src')).toContain('https://challenges.cloudflare.com');
      expect(directive('frame-src')).toContain('https://challenges.cloudflare.com');

      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Password', { exact: true }).fill('quartz blanket 53 sleepy moths');
      const refused = await submit(page, () => page.getByRole('button', { name: 'Create account' }).click());
      expect(refused.status()).toBe(400);
      expect(await alertText(page)).toMatch(/complete the challenge/i);
      // Still the signup form, with what was typed kept.
      await page.getByRole('heading', { name: 'Create your account' }).waitFor();
      await expect(page.getByLabel('Email', { exact: true }).inputValue()).resolves.toBe(email);
    } finally {
      await context.close();
    }
    expect(await listUser(server, email)).toBeUndefined();
  });

  it('accepts a signup whose token the vendor confirms (secret and response checked server-side)', async () => {
    const jar = new CookieJar();
    const req = await authRequest(config, { redirectUri: cb.redirectUri });
    const login = await httpGet(jar, req.url);
    expect(login.status).toBe(200);
    const signupHref = /href="([^"]*\/signup)"/.exec(login.html)?.[1];
    if (!signupHref) throw new Error(`no signup link on the login page: ${textOf(login.html)}`);
    const signup = await httpGet(jar, new URL(decodeEntities(signupHref), login.url));
    expect(signup.status).toBe(200);
    const form = parseForms(signup.html).find((f) => f.fields.has('email') && f.fields.has('password'));
    if (!form) throw new Error(`no signup form: ${textOf(signup.html)}`);
    const action = new URL(form.action, signup.url);
    const fields = (email: string, token: string) => {
      const body = new URLSearchParams(form.hidden);
      body.set('email', email);
      body.set('password', 'harbor violet 92 gentle yaks');
      body.set('name', 'Hugo Human');
      body.set('cf-turnstile-response', token);
      return body;
    };

    // A token the vendor does not confirm is refused.
    const forgedEmail = address('forged');
    const forged = await httpPost(jar, action, fields(forgedEmail, 'forged-token'));
    expect(forged.status).toBe(400);
    expect(textOf(forged.html)).toMatch(/complete the challenge/i);
    expect(vendor.calls.at(-1)).toMatchObject({ secret: SECRET, response: 'forged-token' });
    expect(await listUser(server, forgedEmail)).toBeUndefined();

    // The confirmed one goes through.
    const email = address('human');
    const callsBefore = vendor.calls.length;
    const accepted = await httpPost(jar, action, fields(email, GOOD_TOKEN));
    expect(accepted.status, textOf(accepted.html)).toBe(200);
    expect(textOf(accepted.html)).toContain('Check your email');
    expect(vendor.calls.slice(callsBefore)).toEqual([expect.objectContaining({ secret: SECRET, response: GOOD_TOKEN })]);
    expect(await listUser(server, email)).toMatchObject({ status: 'pending', name: 'Hugo Human' });
    await mail.waitForMail({ to: email, subject: 'Confirm your email address' });
  });

  it('asks for the challenge on the forgot-password page too', async () => {
    const { context, page } = await newPage(browser);
    try {
      await goto(page, `${server.url}/forgot-password`);
      await expect(page.locator(`.cf-turnstile[data-sitekey="${SITE_KEY}"]`).count()).resolves.toBe(1);
      await page.getByLabel('Email', { exact: true }).fill(address('recover'));
      const refused = await submit(page, () => page.getByRole('button', { name: 'Send reset link' }).click());
      expect(refused.status()).toBe(400);
      expect(await alertText(page)).toMatch(/complete the challenge/i);
    } finally {
      await context.close();
    }
  });

  it('shows the widget on the login page after CAPTCHA_LOGIN_AFTER_FAILURES failures and then requires it', async () => {
    const user = await createUser(server.env, { email: address('returning'), password: 'tulip engine 27 noisy crows', verified: true });
    const widget = (page: Page) => page.locator(`.cf-turnstile[data-sitekey="${SITE_KEY}"]`).count();
    const { context, page } = await newPage(browser);
    try {
      const req = await authRequest(config, { redirectUri: cb.redirectUri });
      await goto(page, req.url);
      await expectLoginPage(page, app.name);
      expect(await widget(page)).toBe(0);

      const first = await submit(page, () => signIn(page, { email: user.email, password: 'wrong guess one' }));
      expect(first.status()).toBe(401);
      expect(await widget(page)).toBe(0);
      const second = await submit(page, () => signIn(page, { email: user.email, password: 'wrong guess two' }));
      expect(second.status()).toBe(401);
      expect(await widget(page)).toBe(1);

      // From now on the right password alone is not enough ...
      const unsolved = await submit(page, () => signIn(page, user));
      expect(unsolved.status()).toBe(400);
      expect(await alertText(page)).toMatch(/complete the challenge/i);
      expect(await widget(page)).toBe(1);

      // ... but with a solved challenge (the hidden field the widget adds to the form) it signs in.
      // (Page code as a string: this file is compiled without the DOM types it would need.)
      const callsBefore = vendor.calls.length;
      await page.evaluate(`(() => {
        const input = document.createElement('input');
        input.type = 'hidden';
        input.name = 'cf-turnstile-response';
        input.value = ${JSON.stringify(GOOD_TOKEN)};
        document.querySelector('form[action$="/login"]').append(input);
      })()`);
      await signIn(page, user);
      const back = await waitForRedirect(page, cb.redirectUri);
      expect((await exchangeCode(config, back, req)).claims()!.sub).toBe(String(user.id));
      expect(vendor.calls.slice(callsBefore)).toEqual([expect.objectContaining({ secret: SECRET, response: GOOD_TOKEN })]);
    } finally {
      await context.close();
    }
  });
});
