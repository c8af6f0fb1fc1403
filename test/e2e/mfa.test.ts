// Second factors end to end, with Chromium on the hosted pages and openid-client as the relying
// party: an authenticator app set up in /account (codes computed here with otplib from the
// otpauth URI on the page) and used to sign in, a replayed code refused, recovery codes that work
// once, SMS codes read from the outbox directory, step-up with `acr_values` inside an existing
// session, "Don't ask again on this device", email sign-in links from a local SMTP server, the
// factor added/removed mails, and enrollment during sign-in with MFA_POLICY=required (a second
// server). Every ID token is validated by openid-client and its acr/amr checked.
import fs from 'node:fs';
import path from 'node:path';
import type * as oidc from 'openid-client';
import { generateSync } from 'otplib';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectLoginPage, launchBrowser, newPage, signIn, waitForRedirect } from '../helpers/browser.ts';
import { linkIn, startMailSink, type MailSink } from '../helpers/mail.ts';
import {
  authRequest,
  createClient,
  createUser,
  exchangeCode,
  rpConfig,
  startCallbackServer,
  type AuthRequest,
  type CallbackServer,
  type CreatedClient,
  type CreatedUser,
} from '../helpers/rp.ts';
import { startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

const ACR_PWD = 'urn:gatehouse:acr:pwd';
const ACR_MFA = 'urn:gatehouse:acr:mfa';
const PERIOD = 30;
const PASSWORD = 'correct horse battery staple';
const WRONG_CODE = 'That code is not correct';

let dataDir: string;
let requiredDir: string;
let server: RunningServer;
let requiredServer: RunningServer; // MFA_POLICY=required
let browser: Browser;
let cb: CallbackServer;
let mail: MailSink;
let app: CreatedClient;
let requiredApp: CreatedClient;
let config: oidc.Configuration;
let requiredConfig: oidc.Configuration;

// One person per scenario, so each has its own TOTP time steps, lockout counter and mail.
let tom: CreatedUser; // password-only, then an authenticator app: step-up, email link + TOTP
let uma: CreatedUser; // authenticator app: sign-in, replay, recovery codes, removal
let sally: CreatedUser; // SMS codes
let rita: CreatedUser; // "Don't ask again on this device"
let mia: CreatedUser; // email link, no second factor
let reqa: CreatedUser; // MFA_POLICY=required server

const contexts: BrowserContext[] = [];
// Tom's authenticator app, set up in /account; used again for the email-link sign-in.
let tomApp: AuthenticatorApp;

/** A fresh browser profile, closed after the file. */
async function freshBrowser(): Promise<Page> {
  const { context, page } = await newPage(browser);
  contexts.push(context);
  return page;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * An authenticator app holding the secret from an enrollment page. The server accepts one time
 * step either side of now and each step only once per factor, so a fresh code is the current
 * step's, or the next step's when the current one was used; the clock is waited for only when
 * both were.
 */
class AuthenticatorApp {
  readonly secret: string;
  #lastStep = -1;

  constructor(secret: string) {
    this.secret = secret;
  }

  codeFor(step: number): string {
    return generateSync({ secret: this.secret, epoch: step * PERIOD });
  }

  async freshCode(): Promise<{ code: string; step: number }> {
    for (;;) {
      const current = Math.floor(Date.now() / 1000 / PERIOD);
      const step = Math.max(current, this.#lastStep + 1);
      if (step <= current + 1) {
        this.#lastStep = step;
        return { code: this.codeFor(step), step };
      }
      await sleep((current + 1) * PERIOD * 1000 - Date.now() + 100);
    }
  }
}

function currentStep(): number {
  return Math.floor(Date.now() / 1000 / PERIOD);
}

/** Starts an authorization request from the relying party in `page`. */
async function startSignIn(page: Page, cfg: oidc.Configuration, opts: { prompt?: string; extra?: Record<string, string> } = {}): Promise<AuthRequest> {
  const req = await authRequest(cfg, { redirectUri: cb.redirectUri, scope: 'openid email', ...opts });
  await page.goto(req.url.href);
  return req;
}

/** Waits for the redirect to the relying party and redeems the code; returns the ID token claims. */
async function idTokenClaims(page: Page, cfg: oidc.Configuration, req: AuthRequest): Promise<oidc.IDToken> {
  const back = await waitForRedirect(page, cb.redirectUri);
  const tokens = await exchangeCode(cfg, back, req);
  const claims = tokens.claims();
  if (!claims) throw new Error('no ID token claims');
  return claims;
}

/** The ID token's amr, sorted (RFC 8176 gives the values no order). */
function sortedAmr(claims: oidc.IDToken): string[] {
  const amr = claims.amr;
  if (!Array.isArray(amr)) throw new Error(`amr is not an array: ${JSON.stringify(amr)}`);
  return amr.map(String).sort();
}

const secondStepHeading = (page: Page) => page.getByRole('heading', { name: 'Two-step verification' });

/** Where the browser stops after the password: the relying party, or the second step. */
async function stopAfterPassword(page: Page): Promise<'relying party' | 'second step'> {
  const rp = page.getByText('relying party', { exact: true });
  await rp.or(secondStepHeading(page)).waitFor();
  return (await rp.count()) > 0 ? 'relying party' : 'second step';
}

/** Submits a code on the second-step page and returns the response to that POST. */
async function submitCode(page: Page, label: string, code: string, opts: { rememberDevice?: boolean } = {}): Promise<Response> {
  await page.getByLabel(label, { exact: true }).fill(code);
  if (opts.rememberDevice) await page.getByLabel(/Don't ask again on this device for \d+ days/).check();
  const response = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname.endsWith('/mfa'));
  await page.getByRole('button', { name: 'Verify', exact: true }).click();
  return response;
}

/** Opens /account, signing in with the password when the browser has no session. */
async function openAccount(page: Page, user: CreatedUser): Promise<void> {
  await page.goto(`${server.url}/account`);
  const heading = page.getByRole('heading', { name: 'Your account' });
  const login = page.getByRole('heading', { name: /Sign in to Gatehouse account/ });
  await heading.or(login).waitFor();
  if (await login.count()) {
    await expectLoginPage(page, 'Gatehouse account');
    await signIn(page, user);
    await heading.waitFor();
  }
}

/**
 * On an authenticator-app set-up page: "scans" the otpauth URI, confirms with a code and returns
 * the app and the recovery codes shown next.
 */
async function completeTotpSetup(page: Page, user: CreatedUser, codesHeading: string): Promise<{ authenticator: AuthenticatorApp; recoveryCodes: string[] }> {
  await page.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor();
  const href = await page.getByRole('link', { name: 'Open in an authenticator app on this device' }).getAttribute('href');
  const uri = new URL(href ?? '');
  expect(uri.protocol).toBe('otpauth:');
  expect(decodeURIComponent(uri.pathname)).toBe(`/Gatehouse:${user.email}`);
  expect(uri.host).toBe('totp');
  expect(uri.searchParams.get('issuer')).toBe('Gatehouse');
  expect(uri.searchParams.get('digits') ?? '6').toBe('6');
  expect(uri.searchParams.get('period') ?? '30').toBe('30');
  expect((uri.searchParams.get('algorithm') ?? 'SHA1').toUpperCase()).toBe('SHA1');
  const secret = uri.searchParams.get('secret') ?? '';
  expect(secret).toMatch(/^[A-Z2-7]{32}$/); // 20 random bytes in base32
  // The same key is shown for typing it in by hand.
  expect(await page.locator('body').innerText()).toContain(secret.replace(/(.{4})/g, '$1 ').trim());

  const authenticator = new AuthenticatorApp(secret);
  await page.getByLabel('Authentication code', { exact: true }).fill((await authenticator.freshCode()).code);
  await page.getByRole('button', { name: 'Verify', exact: true }).click();
  await page.getByRole('heading', { name: codesHeading }).waitFor();
  const recoveryCodes = (await page.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').allInnerTexts()).map((c) => c.trim());
  expect(recoveryCodes).toHaveLength(10);
  expect(new Set(recoveryCodes).size).toBe(10);
  return { authenticator, recoveryCodes };
}

/** Sets up an authenticator app from the /account page `page` is on. */
async function setUpAuthenticatorApp(page: Page, user: CreatedUser): Promise<{ authenticator: AuthenticatorApp; recoveryCodes: string[] }> {
  await page.getByRole('button', { name: 'Set up authenticator app', exact: true }).click();
  return completeTotpSetup(page, user, 'Authenticator app enabled');
}

interface TextMessage {
  file: string;
  to: string;
  body: string;
}

/** The text messages to `phone` in DATA_DIR/outbox/sms, oldest first. */
function textsTo(phone: string): TextMessage[] {
  const dir = path.join(dataDir, 'outbox', 'sms');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((file) => {
    const parsed = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as { to?: unknown; body?: unknown };
    return { file, to: String(parsed.to), body: String(parsed.body) };
  }).filter((m) => m.to === phone);
}

/** Waits for the text after the first `already` ones to `phone` and returns its code. */
async function textedCode(phone: string, already: number): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const texts = textsTo(phone);
    if (texts.length > already) {
      const body = texts.at(-1)!.body;
      const code = /^(\d{6}) is your Gatehouse verification code/.exec(body)?.[1];
      if (!code) throw new Error(`no code in the text message: ${body}`);
      // The origin-bound line lets browsers fill the code in on the issuer's site only.
      expect(body).toContain(`@localhost #${code}`);
      return code;
    }
    if (Date.now() > deadline) throw new Error(`no new text message to ${phone} (had ${already})`);
    await sleep(200);
  }
}

beforeAll(async () => {
  dataDir = tempDataDir('gh-e2e-mfa-');
  requiredDir = tempDataDir('gh-e2e-mfa-required-');
  [browser, cb, mail] = await Promise.all([launchBrowser(), startCallbackServer(), startMailSink()]);
  const mailEnv = { SMTP_URL: mail.url, MAIL_FROM: 'Gatehouse <no-reply@example.test>' };
  [server, requiredServer] = await Promise.all([
    startServer({ DATA_DIR: dataDir, ...mailEnv, ...testSecrets() }),
    startServer({ DATA_DIR: requiredDir, MFA_POLICY: 'required', ...mailEnv, ...testSecrets() }),
  ]);
  const user = (env: Record<string, string>, name: string) =>
    createUser(env, { email: `${name.toLowerCase()}@example.test`, password: PASSWORD, name: `${name} Example`, verified: true });
  // While a server runs on the embedded database, each command is run by the server itself.
  const main = async () => {
    [app, tom, uma, sally, rita, mia] = await Promise.all([
      createClient(server.env, { name: 'Notes', redirectUris: [cb.redirectUri], firstParty: true }),
      user(server.env, 'Tom'),
      user(server.env, 'Uma'),
      user(server.env, 'Sally'),
      user(server.env, 'Rita'),
      user(server.env, 'Mia'),
    ]);
    config = await rpConfig(server.url, app);
  };
  const required = async () => {
    [requiredApp, reqa] = await Promise.all([
      createClient(requiredServer.env, { name: 'Ledger', redirectUris: [cb.redirectUri], firstParty: true }),
      user(requiredServer.env, 'Reqa'),
    ]);
    requiredConfig = await rpConfig(requiredServer.url, requiredApp);
  };
  await Promise.all([main(), required()]);
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close();
  for (const s of [server, requiredServer]) {
    const code = await s?.stop();
    if (code !== undefined && code !== 0 && code !== null) console.error(`server exited with ${code}:\n${s!.logs()}`);
  }
  await cb?.close();
  await mail?.close();
  for (const dir of [dataDir, requiredDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('acr and amr', () => {
  it('lists the authentication context classes in discovery', async () => {
    const res = await fetch(`${server.url}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const meta = (await res.json()) as { acr_values_supported?: string[]; claims_supported?: string[] };
    expect(meta.acr_values_supported).toEqual(expect.arrayContaining([ACR_PWD, ACR_MFA]));
    expect(config.serverMetadata().acr_values_supported).toEqual(expect.arrayContaining([ACR_PWD, ACR_MFA]));
    expect(meta.claims_supported).toEqual(expect.arrayContaining(['acr', 'amr']));
  });

  it('reports amr [pwd] and the password acr for a password-only sign-in', async () => {
    const page = await freshBrowser();
    const req = await startSignIn(page, config);
    await expectLoginPage(page, app.name);
    await signIn(page, tom);
    expect(await stopAfterPassword(page)).toBe('relying party');
    const claims = await idTokenClaims(page, config, req);
    expect(claims.sub).toBe(tom.id);
    expect(claims.amr).toEqual(['pwd']);
    expect(claims.acr).toBe(ACR_PWD);
  });

  it('finishes with the password acr when acr_values asks for MFA of an account without a second factor', async () => {
    const page = await freshBrowser();
    const req = await startSignIn(page, config, { extra: { acr_values: ACR_MFA } });
    await expectLoginPage(page, app.name);
    await signIn(page, tom);
    expect(await stopAfterPassword(page)).toBe('relying party');
    const claims = await idTokenClaims(page, config, req);
    expect(claims.sub).toBe(tom.id);
    expect(claims.acr).toBe(ACR_PWD);
  });
});

describe('authenticator app', () => {
  // Tom's browser: a password-only sign-in, then /account and the step-up in that same session.
  let tomPage: Page;
  // Uma's /account browser, and what her enrollment gave her.
  let umaAccount: Page;
  let umaApp: AuthenticatorApp;
  let umaCodes: string[];

  it('is set up in /account from the otpauth URI, shows recovery codes and mails the owner', async () => {
    tomPage = await freshBrowser();
    const req = await startSignIn(tomPage, config);
    await signIn(tomPage, tom);
    expect((await idTokenClaims(tomPage, config, req)).amr).toEqual(['pwd']);

    await openAccount(tomPage, tom); // single sign-on: no password asked again
    expect(await tomPage.locator('body').innerText()).toContain('Off. Add a second way');
    ({ authenticator: tomApp } = await setUpAuthenticatorApp(tomPage, tom));

    const added = await mail.waitForMail({ to: tom.email, subject: 'A sign-in method was added' });
    expect(added.text).toContain('An authenticator app was added to your Gatehouse account');

    await tomPage.getByRole('link', { name: 'Back to your account' }).click();
    const text = await tomPage.locator('body').innerText();
    expect(text).toMatch(/Authenticator app · added \d{4}-\d{2}-\d{2}/);
    expect(text).toContain('10 recovery codes left.');
  });

  it('step-up: acr_values=mfa in the password-only session asks for the code only, and the ID token shows it', async () => {
    const req = await startSignIn(tomPage, config, { extra: { acr_values: ACR_MFA } });
    await secondStepHeading(tomPage).waitFor();
    // The session already proved the password: only the second factor is asked for.
    expect(await tomPage.getByLabel('Password', { exact: true }).count()).toBe(0);
    const response = await submitCode(tomPage, 'Authentication code', (await tomApp.freshCode()).code);
    expect(response.status()).toBe(303);
    const claims = await idTokenClaims(tomPage, config, req);
    expect(claims.sub).toBe(tom.id);
    expect(claims.acr).toBe(ACR_MFA);
    expect(sortedAmr(claims)).toEqual(['mfa', 'otp', 'pwd']);
  });

  it('asks for the code after the password: amr pwd, otp, mfa and the MFA acr', async () => {
    umaAccount = await freshBrowser();
    await openAccount(umaAccount, uma);
    ({ authenticator: umaApp, recoveryCodes: umaCodes } = await setUpAuthenticatorApp(umaAccount, uma));
    await mail.waitForMail({ to: uma.email, subject: 'A sign-in method was added' });

    const page = await freshBrowser();
    const req = await startSignIn(page, config);
    await signIn(page, uma);
    expect(await stopAfterPassword(page)).toBe('second step');
    expect(await page.locator('body').innerText()).toContain(`Signing in to ${app.name}`);
    const { code, step } = await umaApp.freshCode();
    const response = await submitCode(page, 'Authentication code', code);
    expect(response.status()).toBe(303);
    const claims = await idTokenClaims(page, config, req);
    expect(claims.sub).toBe(uma.id);
    expect(claims.acr).toBe(ACR_MFA);
    expect(sortedAmr(claims)).toEqual(['mfa', 'otp', 'pwd']);

    // Replay: the same code, in the same time step, in another sign-in.
    const other = await freshBrowser();
    const replayReq = await startSignIn(other, config);
    await signIn(other, uma);
    await secondStepHeading(other).waitFor();
    const replay = await submitCode(other, 'Authentication code', code);
    // Still inside the window the server accepts this step in: only the replay check refuses it.
    expect(currentStep()).toBeLessThanOrEqual(step + 1);
    expect(replay.status()).toBe(401);
    await other.getByRole('alert').filter({ hasText: WRONG_CODE }).waitFor();
    expect(cb.hitsFor('/cb').filter((u) => u.searchParams.get('state') === replayReq.state)).toHaveLength(0);

    // The same sign-in finishes with a recovery code instead.
    await other.getByRole('link', { name: 'Use a recovery code' }).click();
    await other.getByLabel('Recovery code', { exact: true }).waitFor();
    expect((await submitCode(other, 'Recovery code', umaCodes[0]!)).status()).toBe(303);
    const recovered = await idTokenClaims(other, config, replayReq);
    expect(recovered.sub).toBe(uma.id);
    expect(recovered.acr).toBe(ACR_MFA);
    expect(recovered.amr).toEqual(expect.arrayContaining(['pwd', 'mfa']));
  });

  it('accepts each recovery code once', async () => {
    const page = await freshBrowser();
    const req = await startSignIn(page, config);
    await signIn(page, uma);
    await secondStepHeading(page).waitFor();
    await page.getByRole('link', { name: 'Use a recovery code' }).click();
    await page.getByLabel('Recovery code', { exact: true }).waitFor();
    const reused = await submitCode(page, 'Recovery code', umaCodes[0]!);
    expect(reused.status()).toBe(401);
    await page.getByRole('alert').filter({ hasText: WRONG_CODE }).waitFor();
    expect(cb.hitsFor('/cb').filter((u) => u.searchParams.get('state') === req.state)).toHaveLength(0);

    // Another unused code, typed as people do (upper case, no dash), works.
    expect((await submitCode(page, 'Recovery code', umaCodes[1]!.toUpperCase().replace('-', ''))).status()).toBe(303);
    expect((await idTokenClaims(page, config, req)).acr).toBe(ACR_MFA);

    await openAccount(umaAccount, uma);
    expect(await umaAccount.locator('body').innerText()).toContain('8 recovery codes left.');
  });

  it('is removed in /account, which mails the owner', async () => {
    await openAccount(umaAccount, uma);
    await umaAccount.getByRole('button', { name: 'Delete Authenticator app', exact: true }).click();
    await umaAccount.waitForURL((u) => u.searchParams.get('done') === 'factor-removed');
    const text = await umaAccount.locator('body').innerText();
    expect(text).toContain('The sign-in method is removed.');
    expect(text).toContain('Off. Add a second way');
    const removed = await mail.waitForMail({ to: uma.email, subject: 'A sign-in method was removed' });
    expect(removed.text).toContain('An authenticator app was removed from your Gatehouse account');

    // The password alone signs in again.
    const page = await freshBrowser();
    const req = await startSignIn(page, config);
    await signIn(page, uma);
    expect(await stopAfterPassword(page)).toBe('relying party');
    expect((await idTokenClaims(page, config, req)).amr).toEqual(['pwd']);
  });
});

describe("Don't ask again on this device", () => {
  it('skips the second step on the next sign-in in the same browser, not in a fresh one', async () => {
    const accountPage = await freshBrowser();
    await openAccount(accountPage, rita);
    const { authenticator } = await setUpAuthenticatorApp(accountPage, rita);

    const page = await freshBrowser();
    const first = await startSignIn(page, config);
    await signIn(page, rita);
    expect(await stopAfterPassword(page)).toBe('second step');
    expect(await page.getByLabel("Don't ask again on this device for 30 days", { exact: true }).count()).toBe(1);
    expect((await submitCode(page, 'Authentication code', (await authenticator.freshCode()).code, { rememberDevice: true })).status()).toBe(303);
    expect((await idTokenClaims(page, config, first)).acr).toBe(ACR_MFA);

    // Same browser, a new sign-in (prompt=login: the password is asked again): no second step.
    const again = await startSignIn(page, config, { prompt: 'login' });
    await expectLoginPage(page, app.name);
    await signIn(page, rita);
    expect(await stopAfterPassword(page)).toBe('relying party');
    const claims = await idTokenClaims(page, config, again);
    expect(claims.sub).toBe(rita.id);
    expect(claims.amr).toContain('pwd');

    // A fresh browser has no such cookie: the second step is asked for.
    const elsewhere = await freshBrowser();
    await startSignIn(elsewhere, config);
    await signIn(elsewhere, rita);
    expect(await stopAfterPassword(elsewhere)).toBe('second step');
    await elsewhere.getByLabel('Authentication code', { exact: true }).waitFor();

    await openAccount(accountPage, rita);
    expect(await accountPage.locator('body').innerText()).toContain('1 device(s) skip the second step for now.');
  });
});

describe('text message codes', () => {
  it('confirms a phone number, turns SMS codes on, mails the owner and signs in with a code from the outbox', async () => {
    const phone = '+12025550143';
    const accountPage = await freshBrowser();
    await openAccount(accountPage, sally);
    await accountPage.getByLabel('Phone number', { exact: true }).fill('+1 202 555 0143');
    await accountPage.getByRole('button', { name: 'Add phone number' }).click();
    await accountPage.getByRole('heading', { name: 'Confirm your phone number' }).waitFor();
    await accountPage.getByLabel('Code from the text message', { exact: true }).fill(await textedCode(phone, 0));
    await accountPage.getByRole('button', { name: 'Confirm phone number' }).click();
    await accountPage.waitForURL((u) => u.searchParams.get('done') === 'phone-verified');
    await accountPage.getByRole('button', { name: 'Use text message codes to sign in' }).click();
    await accountPage.waitForURL((u) => u.searchParams.get('done') === 'sms-factor');
    expect(await accountPage.locator('body').innerText()).toContain('Text message codes are on for two-step verification.');
    const added = await mail.waitForMail({ to: sally.email, subject: 'A sign-in method was added' });
    expect(added.text).toContain('Text message codes was added to your Gatehouse account');

    const page = await freshBrowser();
    const req = await startSignIn(page, config);
    await signIn(page, sally);
    expect(await stopAfterPassword(page)).toBe('second step');
    // Nothing is texted until the person asks for it.
    expect(textsTo(phone)).toHaveLength(1);
    await page.getByRole('button', { name: 'Text me a code' }).click();
    const code = await textedCode(phone, 1);
    expect((await submitCode(page, 'Code from the text message', code)).status()).toBe(303);
    const claims = await idTokenClaims(page, config, req);
    expect(claims.sub).toBe(sally.id);
    expect(claims.acr).toBe(ACR_MFA);
    expect(sortedAmr(claims)).toEqual(['mfa', 'pwd', 'sms']);
  });
});

describe('email sign-in links', () => {
  it('refuses the link in another browser and signs in where it was asked for (amr email)', async () => {
    const page = await freshBrowser();
    const req = await startSignIn(page, config);
    await expectLoginPage(page, app.name);
    await page.getByLabel('Email', { exact: true }).fill(mia.email);
    await page.getByRole('button', { name: 'Email me a sign-in link instead' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    expect(await page.locator('body').innerText()).toContain('Open it in this browser to continue.');
    const message = await mail.waitForMail({ to: mia.email, subject: 'Your Gatehouse sign-in link' });
    const link = linkIn(message, '/interaction/');
    expect(link.origin).toBe(server.url);
    expect(link.pathname).toMatch(/^\/interaction\/[^/]+\/magic-link\/open$/);

    // A fresh browser (another device, or someone the mail was forwarded to) is refused.
    const elsewhere = await freshBrowser();
    const refused = await elsewhere.goto(link.href);
    expect(refused?.status()).toBe(400);
    await elsewhere.getByRole('heading', { name: 'This link cannot be used' }).waitFor();
    expect(cb.hitsFor('/cb').filter((u) => u.searchParams.get('state') === req.state)).toHaveLength(0);

    await page.goto(link.href);
    const claims = await idTokenClaims(page, config, req);
    expect(claims.sub).toBe(mia.id);
    expect(claims.amr).toEqual(['email']);
    expect(claims.acr).not.toBe(ACR_MFA);
  });

  it('still asks an account with an authenticator app for its code after the link (amr email, otp, mfa)', async () => {
    const page = await freshBrowser();
    const req = await startSignIn(page, config);
    await expectLoginPage(page, app.name);
    await page.getByLabel('Email', { exact: true }).fill(tom.email);
    await page.getByRole('button', { name: 'Email me a sign-in link instead' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    const link = linkIn(await mail.waitForMail({ to: tom.email, subject: 'sign-in link' }), '/interaction/');
    await page.goto(link.href);
    await secondStepHeading(page).waitFor();
    expect((await submitCode(page, 'Authentication code', (await tomApp.freshCode()).code)).status()).toBe(303);
    const claims = await idTokenClaims(page, config, req);
    expect(claims.sub).toBe(tom.id);
    expect(claims.acr).toBe(ACR_MFA);
    expect(sortedAmr(claims)).toEqual(['email', 'mfa', 'otp']);
  });
});

describe('MFA_POLICY=required', () => {
  it('walks a person without a second factor through enrollment right after the password', async () => {
    const page = await freshBrowser();
    const req = await startSignIn(page, requiredConfig);
    await expectLoginPage(page, requiredApp.name);
    await signIn(page, reqa);
    await page.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor();
    expect(await page.locator('body').innerText()).toContain('This service asks for a second step when you sign in.');
    await completeTotpSetup(page, reqa, 'Two-step verification is on');
    expect(cb.hitsFor('/cb').filter((u) => u.searchParams.get('state') === req.state)).toHaveLength(0);
    await page.getByRole('button', { name: 'I saved my codes, continue' }).click();
    const claims = await idTokenClaims(page, requiredConfig, req);
    expect(claims.sub).toBe(reqa.id);
    expect(claims.acr).toBe(ACR_MFA);
    expect(sortedAmr(claims)).toEqual(['mfa', 'otp', 'pwd']);
    const added = await mail.waitForMail({ to: reqa.email, subject: 'A sign-in method was added' });
    expect(added.text).toContain('An authenticator app was added');
  });
});
