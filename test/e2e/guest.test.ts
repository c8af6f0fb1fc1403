// Guest accounts end to end, with a real browser, a local SMTP server and openid-client as the
// relying party: "Continue as guest" only where the client allows it, what the application gets
// for a guest, saving the account with an email and password (same sub afterwards), the limit on
// guest creation, and the sweep that deletes guests nobody saved.
import crypto from 'node:crypto';
import fs from 'node:fs';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';
import { expectLoginPage, launchBrowser, signIn, waitForRedirect } from '../helpers/browser.ts';
import { linkIn, startMailSink, type MailSink } from '../helpers/mail.ts';
import { address, alertText, goto, pageText, submit } from '../helpers/pages.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/postgres.ts';
import {
  authRequest,
  createClient,
  createUser,
  exchangeCode,
  gatehouse,
  rpConfig,
  startCallbackServer,
  userinfoStatus,
  type AuthRequest,
  type CallbackServer,
  type CreatedClient,
} from '../helpers/rp.ts';
import { startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

const ACR_GUEST = 'urn:gatehouse:acr:guest';
const GUEST_LIMIT = 3;
const PASSWORD = 'copper lantern drifting 58 meadows';

let browser: Browser;
let cb: CallbackServer;
let mail: MailSink;
let dataDir: string;
let database: TestDatabase | undefined;
let server: RunningServer;
/** Allows guests (and is first-party, so no consent page). */
let game: CreatedClient;
let gameConfig: oidc.Configuration;
/** Does not allow guests. */
let members: CreatedClient;
let membersConfig: oidc.Configuration;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  [browser, cb, mail] = await Promise.all([launchBrowser(), startCallbackServer(), startMailSink()]);
  dataDir = tempDataDir('gh-e2e-guest-');
  // Real PostgreSQL when the run provides one, the embedded database otherwise.
  database = TEST_DATABASE_URL ? await createTestDatabase('gh_guest') : undefined;
  server = await startServer({
    DATA_DIR: dataDir,
    SMTP_URL: mail.url,
    MAIL_FROM: 'Gatehouse <no-reply@example.test>',
    // Each test browses from its own address (X-Forwarded-For), so the per-address guest limit
    // is met only where a test means to meet it.
    TRUST_PROXY: 'true',
    RATE_LIMIT_GUEST_IP: `${GUEST_LIMIT}/3600`,
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...testSecrets(),
  });
  const created = await gatehouse<{ client_id: string; client_secret: string; allow_guest?: unknown }>(server.env, [
    'client', 'create', '--name', 'Pocket Game', '--redirect-uri', cb.redirectUri, '--first-party', '--allow-guest',
  ]);
  expect(created.allow_guest).toBe(true);
  game = { client_id: created.client_id, client_secret: created.client_secret, name: 'Pocket Game', authMethod: 'client_secret_basic' };
  members = await createClient(server.env, { name: 'Members Area', redirectUris: [cb.redirectUri], firstParty: true });
  [gameConfig, membersConfig] = await Promise.all([rpConfig(server.url, game), rpConfig(server.url, members)]);
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close();
  await cb?.close();
  await mail?.close();
  const code = await server?.stop();
  if (code !== undefined && code !== 0 && code !== null) console.error(`server exited with ${code}:\n${server.logs()}`);
  await database?.drop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

let addresses = 0;

/** A fresh browser profile coming from an address no other test uses (unless `ip` is given). */
async function browse(ip?: string): Promise<{ context: BrowserContext; page: Page; ip: string }> {
  addresses += 1;
  const from = ip ?? `203.0.113.${addresses}`;
  const context = await browser.newContext({ extraHTTPHeaders: { 'x-forwarded-for': from } });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(15_000);
  contexts.push(context);
  return { context, page: await context.newPage(), ip: from };
}

function onCallback(page: Page): boolean {
  const here = new URL(page.url());
  return here.origin + here.pathname === cb.redirectUri;
}

type Tokens = Awaited<ReturnType<typeof exchangeCode>>;

/** Opens Pocket Game's login page and presses "Continue as guest"; returns the tokens. */
async function continueAsGuest(page: Page): Promise<{ tokens: Tokens; sub: string }> {
  const req = await authRequest(gameConfig, { redirectUri: cb.redirectUri, scope: 'openid profile email' });
  await goto(page, req.url);
  await expectLoginPage(page, game.name);
  await page.getByRole('button', { name: 'Continue as guest' }).click();
  return finish(page, gameConfig, req);
}

async function finish(page: Page, config: oidc.Configuration, req: AuthRequest): Promise<{ tokens: Tokens; sub: string }> {
  const back = await waitForRedirect(page, cb.redirectUri);
  const tokens = await exchangeCode(config, back, req);
  return { tokens, sub: tokens.claims()!.sub };
}

/** Saves the signed-in guest from /account; resolves on the "Check your email" page. */
async function saveAccount(page: Page, email: string, password: string): Promise<void> {
  await goto(page, `${server.url}/account`);
  await page.getByRole('heading', { name: 'Save your account' }).waitFor();
  await page.getByRole('link', { name: 'Add an email and password' }).click();
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  const res = await submit(page, () => page.getByRole('button', { name: 'Save account' }).click());
  expect(res.status()).toBe(200);
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
}

async function userIds(): Promise<string[]> {
  const out = await gatehouse<{ users: { id: string }[] }>(server.env, ['user', 'list']);
  return out.users.map((u) => u.id);
}

describe('guest accounts', () => {
  it('are not offered by a client without --allow-guest, and its guest route refuses', async () => {
    const { page } = await browse();
    const req = await authRequest(membersConfig, { redirectUri: cb.redirectUri });
    await goto(page, req.url);
    await expectLoginPage(page, members.name);
    expect(await page.getByRole('button', { name: 'Continue as guest' }).count()).toBe(0);

    // A hand-made POST with a valid CSRF token is refused all the same, and creates nobody.
    const before = await userIds();
    const csrf = await page.locator('form[action$="/login"] input[name="_csrf"]').inputValue();
    const uid = new URL(page.url()).pathname.split('/')[2]!;
    const res = await page.context().request.post(`${server.url}/interaction/${uid}/guest`, { form: { _csrf: csrf }, maxRedirects: 0 });
    expect(res.status()).toBe(403);
    expect(await res.text()).toContain('does not offer guest access');
    expect(await userIds()).toEqual(before);
  });

  it('"Continue as guest" gives the application a new sub without email, marked as a guest', async () => {
    const first = await browse();
    const guest = await continueAsGuest(first.page);
    const claims = guest.tokens.claims()!;
    expect(claims.sub).toMatch(/^[0-9a-f-]{36}$/);
    expect(claims.email).toBeUndefined();
    expect(claims.guest).toBe(true);
    expect(claims.acr).toBe(ACR_GUEST);
    expect(claims.amr).toBeUndefined();
    const info = await oidc.fetchUserInfo(gameConfig, guest.tokens.access_token, guest.sub);
    expect(info.email).toBeUndefined();
    expect(info.email_verified).toBeUndefined();
    expect(info.guest).toBe(true);

    // Every press is a new account.
    const second = await browse();
    expect((await continueAsGuest(second.page)).sub).not.toBe(guest.sub);

    // The guest session does not sign in to an application that does not take guests: its
    // login page is shown instead.
    const req = await authRequest(membersConfig, { redirectUri: cb.redirectUri });
    await goto(first.page, req.url);
    await expectLoginPage(first.page, members.name);
    expect(onCallback(first.page)).toBe(false);
    expect(await first.page.getByRole('button', { name: 'Continue as guest' }).count()).toBe(0);

    // ... while the application that allows guests still gets the same guest, without a page.
    const again = await authRequest(gameConfig, { redirectUri: cb.redirectUri });
    await goto(first.page, again.url);
    expect((await finish(first.page, gameConfig, again)).sub).toBe(guest.sub);
  });

  it('can be saved with an email and password from /account, keeping its sub', async () => {
    const { page } = await browse();
    const guest = await continueAsGuest(page);
    const email = address('saved-guest');

    // A weak password is refused next to the field; nothing is saved.
    await goto(page, `${server.url}/account`);
    await page.getByRole('heading', { name: 'Save your account' }).waitFor();
    expect(await page.getByRole('heading', { name: 'Password' }).count()).toBe(0);
    await page.getByRole('link', { name: 'Add an email and password' }).click();
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password', { exact: true }).fill('password1');
    const weak = await submit(page, () => page.getByRole('button', { name: 'Save account' }).click());
    expect(weak.status()).toBe(400);
    expect(await pageText(page)).toMatch(/too common or too easy to guess/);

    await saveAccount(page, email, PASSWORD);
    const verification = await mail.waitForMail({ to: email, subject: 'Confirm your email address' });

    // The address is unproven until the link is opened: a new password sign-in waits for it.
    const elsewhere = await browse();
    const early = await authRequest(gameConfig, { redirectUri: cb.redirectUri });
    await goto(elsewhere.page, early.url);
    await expectLoginPage(elsewhere.page, game.name);
    const refused = await submit(elsewhere.page, () => signIn(elsewhere.page, { email, password: PASSWORD }));
    expect(refused.status()).toBe(401);
    expect(await alertText(elsewhere.page)).toMatch(/verify your email address/i);

    // The guest's own session goes on, now as an ordinary account.
    await goto(page, `${server.url}/account`);
    expect(await pageText(page)).toContain(email);
    expect(await page.getByRole('heading', { name: 'Save your account' }).count()).toBe(0);

    const verified = await goto(elsewhere.page, linkIn(verification, '/verify-email'));
    expect(verified.status()).toBe(200);
    await elsewhere.page.getByRole('heading', { name: 'Email verified' }).waitFor();

    // Later, from another browser: email and password lead to the same sub.
    const later = await browse();
    const req = await authRequest(gameConfig, { redirectUri: cb.redirectUri, scope: 'openid profile email' });
    await goto(later.page, req.url);
    await expectLoginPage(later.page, game.name);
    await signIn(later.page, { email, password: PASSWORD });
    const signedIn = await finish(later.page, gameConfig, req);
    expect(signedIn.sub).toBe(guest.sub);
    expect(signedIn.tokens.claims()!.guest).toBeUndefined();
    const info = await oidc.fetchUserInfo(gameConfig, signedIn.tokens.access_token, signedIn.sub);
    expect(info.email).toBe(email);
    expect(info.email_verified).toBe(true);
  });

  it('saving with an address that has an account answers the same, mails its owner and stays a guest', async () => {
    const owner = await createUser(server.env, { email: address('owner'), password: 'orchid tunnel seventy 7 maps', verified: true });
    const { page } = await browse();
    const guest = await continueAsGuest(page);
    await saveAccount(page, owner.email, PASSWORD);
    expect(await pageText(page)).toContain('If the address can receive mail, a message is on its way.');
    await mail.waitForMail({ to: owner.email, subject: 'Someone tried to sign up' });

    await goto(page, `${server.url}/account`);
    await page.getByRole('heading', { name: 'Save your account' }).waitFor();
    // The owner's password still belongs to the owner's account only.
    const elsewhere = await browse();
    const req = await authRequest(gameConfig, { redirectUri: cb.redirectUri });
    await goto(elsewhere.page, req.url);
    await signIn(elsewhere.page, { email: owner.email, password: owner.password });
    expect((await finish(elsewhere.page, gameConfig, req)).sub).toBe(owner.id);
    expect(owner.id).not.toBe(guest.sub);
  });

  it(`answers 429 after ${GUEST_LIMIT} guests from one address`, async () => {
    const ip = `198.51.100.${crypto.randomInt(2, 250)}`;
    for (let i = 0; i < GUEST_LIMIT; i++) {
      const { page } = await browse(ip);
      await continueAsGuest(page);
    }
    const { page } = await browse(ip);
    const before = await userIds();
    const req = await authRequest(gameConfig, { redirectUri: cb.redirectUri });
    await goto(page, req.url);
    await expectLoginPage(page, game.name);
    const refused = await submit(page, () => page.getByRole('button', { name: 'Continue as guest' }).click());
    expect(refused.status()).toBe(429);
    expect(Number(refused.headers()['retry-after'])).toBeGreaterThan(0);
    expect(await pageText(page)).toMatch(/Too many attempts/);
    expect(await userIds()).toEqual(before);

    // Another address is not affected.
    const other = await browse();
    await continueAsGuest(other.page);
  });

  it('the sweep deletes a guest unused for GUEST_ACCOUNT_TTL_DAYS with its tokens, and keeps saved accounts', async () => {
    const abandoned = await browse();
    const idle = await continueAsGuest(abandoned.page);
    const keeper = await browse();
    const kept = await continueAsGuest(keeper.page);
    await saveAccount(keeper.page, address('kept-guest'), PASSWORD);
    const fresh = await browse();
    const recent = await continueAsGuest(fresh.page);
    expect(await userinfoStatus(gameConfig, idle.tokens.access_token)).toBe(200);

    // Forty days pass for two of them (the default lifetime is 30 days): the server is stopped
    // so the embedded database can be opened here, and started again, which sweeps at once.
    expect(await server.stop()).toBe(0);
    const db = await openDatabase(loadConfig({ DATA_DIR: dataDir, ...(database ? { DATABASE_URL: database.url } : {}) }));
    try {
      const aged = [idle.sub, kept.sub];
      const past = db.knex.raw("now() - interval '40 days'");
      await db.knex('accounts').whereIn('id', aged).update({ created_at: past, last_login_at: null });
      await db.knex('account_sessions').whereIn('account_id', aged).update({ created_at: past, last_active_at: past });
      await db.knex('account_grants').whereIn('account_id', aged).update({ created_at: past, last_used_at: past });
    } finally {
      await db.close();
    }
    server = await startServer(server.env);

    const deadline = Date.now() + 60_000;
    let ids = await userIds();
    while (ids.includes(idle.sub) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      ids = await userIds();
    }
    expect(ids).not.toContain(idle.sub);
    expect(ids).toContain(kept.sub);
    expect(ids).toContain(recent.sub);
    expect(await userinfoStatus(gameConfig, idle.tokens.access_token)).toBe(401);
    expect(await userinfoStatus(gameConfig, recent.tokens.access_token)).toBe(200);
  });
});
