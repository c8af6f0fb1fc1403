// Account lifecycle end to end, with a real browser, a local SMTP server receiving Gatehouse's
// mail and openid-client as the relying party: signup and email verification, signup with an
// address that already has an account, password recovery (and what it does to existing tokens),
// administrative account states and invitations from the CLI, and the /account page.
import fs from 'node:fs';
import path from 'node:path';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consent, expectLoginPage, isConsentPage, launchBrowser, newPage, signIn, waitForRedirect } from '../helpers/browser.ts';
import { CookieJar, parseForms } from '../helpers/http-login.ts';
import { linkIn, startMailSink, type MailSink } from '../helpers/mail.ts';
import {
  authRequest,
  createClient,
  createUser,
  exchangeCode,
  gatehouse,
  oauthError,
  rpConfig,
  startCallbackServer,
  userinfoStatus,
  type CallbackServer,
  type CreatedClient,
} from '../helpers/rp.ts';
import { address, alertText, goto, pageText, submit } from '../helpers/pages.ts';
import { startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

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

// ---------------------------------------------------------------------------------------------
// Helpers: pages as a person sees them.
// ---------------------------------------------------------------------------------------------


interface Flow {
  server: RunningServer;
  /** First-party app: no consent page. */
  app: CreatedClient;
  appConfig: oidc.Configuration;
  /** Third-party app allowed refresh tokens (offline_access needs prompt=consent). */
  offline: CreatedClient;
  offlineConfig: oidc.Configuration;
}

async function setUpFlow(server: RunningServer): Promise<Flow> {
  const app = await createClient(server.env, { name: 'Lifecycle App', redirectUris: [cb.redirectUri], firstParty: true });
  const offline = await createClient(server.env, {
    name: 'Offline Sync',
    redirectUris: [cb.redirectUri],
    grantTypes: ['authorization_code', 'refresh_token'],
    scope: 'openid profile email phone offline_access',
  });
  return { server, app, appConfig: await rpConfig(server.url, app), offline, offlineConfig: await rpConfig(server.url, offline) };
}

type Tokens = Awaited<ReturnType<typeof exchangeCode>>;

type SignInOutcome =
  | { ok: true; tokens: Tokens; sub: string }
  | { ok: false; status: number; alert: string; text: string };

/**
 * One sign-in to an RP on `page`: opens the authorization request, fills the login form (unless
 * the browser is already signed in), allows consent when asked, and exchanges the code.
 */
async function signInToRp(
  page: Page,
  config: oidc.Configuration,
  clientName: string,
  creds: { email: string; password: string } | undefined,
  opts: { scope?: string; prompt?: string; remember?: boolean } = {},
): Promise<SignInOutcome> {
  const req = await authRequest(config, { redirectUri: cb.redirectUri, scope: opts.scope ?? 'openid profile email', prompt: opts.prompt });
  const first = await goto(page, req.url);
  let landed = first;
  if (creds) {
    expect(first.status()).toBe(200);
    await expectLoginPage(page, clientName);
    landed = await submit(page, () => signIn(page, { ...creds, remember: opts.remember }));
  }
  const onCallback = () => {
    const here = new URL(page.url());
    return here.origin + here.pathname === cb.redirectUri;
  };
  if (!onCallback() && (await isConsentPage(page))) {
    await consent(page, 'allow');
    await waitForRedirect(page, cb.redirectUri);
  }
  if (!onCallback()) {
    return { ok: false, status: landed.status(), alert: await alertText(page).catch(() => ''), text: await pageText(page) };
  }
  const back = await waitForRedirect(page, cb.redirectUri);
  const tokens = await exchangeCode(config, back, req);
  return { ok: true, tokens, sub: tokens.claims()!.sub };
}

/** signInToRp in a fresh browser profile. */
async function freshSignIn(
  config: oidc.Configuration,
  clientName: string,
  creds: { email: string; password: string },
  opts: { scope?: string; prompt?: string } = {},
): Promise<SignInOutcome> {
  const { context, page } = await newPage(browser);
  try {
    return await signInToRp(page, config, clientName, creds, opts);
  } finally {
    await context.close();
  }
}

function expectSignedIn(outcome: SignInOutcome): asserts outcome is Extract<SignInOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`sign-in was refused (${outcome.status}): ${outcome.text}`);
}

function expectRefused(outcome: SignInOutcome): Extract<SignInOutcome, { ok: false }> {
  if (outcome.ok) throw new Error('sign-in succeeded but should have been refused');
  return outcome;
}

async function userinfo(config: oidc.Configuration, outcome: Extract<SignInOutcome, { ok: true }>) {
  return oidc.fetchUserInfo(config, outcome.tokens.access_token, outcome.sub);
}

async function listUser(server: RunningServer, email: string): Promise<Record<string, unknown> | undefined> {
  const out = await gatehouse<{ users: Record<string, unknown>[] }>(server.env, ['user', 'list']);
  return out.users.find((u) => u.email === email);
}

// ---------------------------------------------------------------------------------------------
// One server for most of the file (embedded database, mail to the local SMTP server).
// ---------------------------------------------------------------------------------------------

describe('account lifecycle', () => {
  let dataDir: string;
  let flow: Flow;

  beforeAll(async () => {
    dataDir = tempDataDir('gh-e2e-lifecycle-');
    const server = await startServer({ DATA_DIR: dataDir, SMTP_URL: mail.url, MAIL_FROM: 'Gatehouse <no-reply@example.test>', ...testSecrets() });
    flow = await setUpFlow(server);
  });

  afterAll(async () => {
    const code = await flow?.server.stop();
    if (code !== undefined && code !== 0 && code !== null) console.error(`server exited with ${code}:\n${flow.server.logs()}`);
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  describe('signup and email verification', () => {
    it('creates a pending account, refuses sign-in until the mailed link is opened, then signs in with a verified email', async () => {
      const email = address('newcomer');
      const password = 'amber kettle rowing 42 lanterns';
      const { context, page } = await newPage(browser);
      try {
        const req = await authRequest(flow.appConfig, { redirectUri: cb.redirectUri, scope: 'openid profile email' });
        await goto(page, req.url);
        await expectLoginPage(page, flow.app.name);
        await page.getByRole('link', { name: 'Create account' }).click();
        await page.getByRole('heading', { name: 'Create your account' }).waitFor();
        await page.getByLabel('Email', { exact: true }).fill(email);
        await page.getByLabel('Password', { exact: true }).fill(password);
        await page.getByLabel(/^Name/).fill('Nina Newcomer');
        const created = await submit(page, () => page.getByRole('button', { name: 'Create account' }).click());
        expect(created.status()).toBe(200);
        await page.getByRole('heading', { name: 'Check your email' }).waitFor();

        const verification = await mail.waitForMail({ to: email, subject: 'Confirm your email address' });
        const link = linkIn(verification, '/verify-email');
        expect(link.origin).toBe(flow.server.url);
        expect(link.searchParams.get('token')).toBeTruthy();
        expect(await listUser(flow.server, email)).toMatchObject({ status: 'pending', email_verified: false });

        // Before verifying: the right password is not enough, and the page says why.
        await page.getByRole('link', { name: 'Back to sign in' }).click();
        await expectLoginPage(page, flow.app.name);
        const refused = await submit(page, () => signIn(page, { email, password }));
        expect(refused.status()).toBe(401);
        expect(await alertText(page)).toMatch(/verify your email address/i);
        expect(new URL(page.url()).origin).toBe(flow.server.url);

        // A tampered link is refused and verifies nothing.
        const token = link.searchParams.get('token')!;
        const tampered = new URL(link);
        tampered.searchParams.set('token', `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`);
        const linkPage = await context.newPage();
        const bad = await goto(linkPage, tampered);
        expect(bad.status()).toBe(400);
        await linkPage.getByRole('heading', { name: 'This link cannot be used' }).waitFor();
        expect(await listUser(flow.server, email)).toMatchObject({ status: 'pending', email_verified: false });

        // The real link verifies the address ...
        const ok = await goto(linkPage, link);
        expect(ok.status()).toBe(200);
        await linkPage.getByRole('heading', { name: 'Email verified' }).waitFor();
        expect(await pageText(linkPage)).toContain(email);
        // ... once.
        const reused = await goto(linkPage, link);
        expect(reused.status()).toBe(400);
        await linkPage.getByRole('heading', { name: 'This link cannot be used' }).waitFor();
        await linkPage.close();
        expect(await listUser(flow.server, email)).toMatchObject({ status: 'active', email_verified: true, name: 'Nina Newcomer' });

        // Back in the sign-in that was refused: now it goes through to the application.
        await signIn(page, { email, password });
        const back = await waitForRedirect(page, cb.redirectUri);
        const tokens = await exchangeCode(flow.appConfig, back, req);
        const claims = tokens.claims()!;
        const info = await oidc.fetchUserInfo(flow.appConfig, tokens.access_token, claims.sub);
        expect(info.email).toBe(email);
        expect(info.email_verified).toBe(true);
        expect(info.name).toBe('Nina Newcomer');
      } finally {
        await context.close();
      }
    });
  });

  describe('signup with an address that already has an account', () => {
    it('answers exactly like a new signup, mails the owner and changes nothing', async () => {
      const owner = await createUser(flow.server.env, { email: address('owner'), password: 'orchid tunnel seventy 7 maps', name: 'Olivia Owner', verified: true });
      const before = await listUser(flow.server, owner.email);

      const signUp = async (email: string) => {
        const { context, page } = await newPage(browser);
        try {
          const req = await authRequest(flow.appConfig, { redirectUri: cb.redirectUri });
          await goto(page, req.url);
          await page.getByRole('link', { name: 'Create account' }).click();
          await page.getByRole('heading', { name: 'Create your account' }).waitFor();
          await page.getByLabel('Email', { exact: true }).fill(email);
          await page.getByLabel('Password', { exact: true }).fill('granite whistle harbour 19 comets');
          await page.getByLabel(/^Name/).fill('Somebody Else');
          const res = await submit(page, () => page.getByRole('button', { name: 'Create account' }).click());
          return {
            status: res.status(),
            title: await page.title(),
            heading: (await page.getByRole('heading', { level: 1 }).innerText()).trim(),
            text: await pageText(page),
          };
        } finally {
          await context.close();
        }
      };

      const fresh = await signUp(address('brand-new'));
      const existing = await signUp(owner.email);
      expect(fresh.status).toBe(200);
      expect(existing).toEqual(fresh);

      const notice = await mail.waitForMail({ to: owner.email, subject: /someone tried to sign up/i });
      expect(notice.text).toMatch(/already exists/i);
      // No verification link for the existing address, and the account is as it was.
      await new Promise((r) => setTimeout(r, 1500));
      expect(mail.mailsTo(owner.email, 'Confirm your email address')).toHaveLength(0);
      expect(await listUser(flow.server, owner.email)).toEqual(before);
      const stillOwner = await freshSignIn(flow.appConfig, flow.app.name, owner);
      expectSignedIn(stillOwner);
      expect((await userinfo(flow.appConfig, stillOwner)).name).toBe('Olivia Owner');
      const intruder = expectRefused(await freshSignIn(flow.appConfig, flow.app.name, { email: owner.email, password: 'granite whistle harbour 19 comets' }));
      expect(intruder.status).toBe(401);
    });
  });

  describe('password recovery', () => {
    it('resets through the mailed link, ends earlier sessions and tokens, and tells the owner', async () => {
      const user = await createUser(flow.server.env, { email: address('forgetful'), password: 'copper meadow ninety 3 owls', name: 'Fred Forgetful', verified: true });
      const newPassword = 'velvet canyon 58 marching ferns';

      // Before the reset: an application holds a refresh token, and a browser stays signed in.
      const offline = await freshSignIn(flow.offlineConfig, flow.offline.name, user, { scope: 'openid email offline_access', prompt: 'consent' });
      expectSignedIn(offline);
      expect(offline.tokens.refresh_token).toBeTruthy();
      const earlier = await newPage(browser);
      expectSignedIn(await signInToRp(earlier.page, flow.appConfig, flow.app.name, user, { remember: true }));
      // Tokens issued in the same second as a reset count as earlier ones; start on a new second.
      await new Promise((r) => setTimeout(r, 1100));

      const { context, page } = await newPage(browser);
      try {
        const req = await authRequest(flow.appConfig, { redirectUri: cb.redirectUri });
        await goto(page, req.url);
        await expectLoginPage(page, flow.app.name);
        await page.getByRole('link', { name: 'Forgot password?' }).click();
        await page.getByRole('heading', { name: 'Reset your password' }).waitFor();
        await page.getByLabel('Email', { exact: true }).fill(user.email);
        const sent = await submit(page, () => page.getByRole('button', { name: 'Send reset link' }).click());
        expect(sent.status()).toBe(200);
        await page.getByRole('heading', { name: 'Check your email' }).waitFor();

        const resetMail = await mail.waitForMail({ to: user.email, subject: 'Reset your' });
        const link = linkIn(resetMail, '/reset-password');
        expect(link.searchParams.get('token')).toBeTruthy();
        expect(resetMail.text).toMatch(/30 minutes/);

        const resetPage = await context.newPage();
        const form = await goto(resetPage, link);
        expect(form.status()).toBe(200);
        await resetPage.getByRole('heading', { name: 'Choose a new password' }).waitFor();
        await resetPage.getByLabel('New password', { exact: true }).fill(newPassword);
        const saved = await submit(resetPage, () => resetPage.getByRole('button', { name: 'Save new password' }).click());
        expect(saved.status()).toBe(200);
        await resetPage.getByRole('heading', { name: 'Password changed' }).waitFor();

        // The link works once.
        const again = await goto(resetPage, link);
        expect(again.status()).toBe(400);
        await resetPage.getByRole('heading', { name: 'This link cannot be used' }).waitFor();
        await resetPage.close();

        const changed = await mail.waitForMail({ to: user.email, subject: /password was changed/i });
        expect(changed.text.length).toBeGreaterThan(0);
        // Revocation has one-second granularity: a sign-in in the second of the reset counts as
        // an earlier one. A person takes longer than that to come back.
        await new Promise((r) => setTimeout(r, 1100));

        // The new password signs in to the application ...
        const after = await signInToRp(page, flow.appConfig, flow.app.name, { email: user.email, password: newPassword });
        expectSignedIn(after);
        expect((await userinfo(flow.appConfig, after)).email).toBe(user.email);
      } finally {
        await context.close();
      }

      // ... the old one does not ...
      const old = expectRefused(await freshSignIn(flow.appConfig, flow.app.name, user));
      expect(old.status).toBe(401);
      expect(old.alert).toBe(BAD_CREDENTIALS);

      // ... and what was issued before the reset stopped working.
      const refresh = await oauthError(oidc.refreshTokenGrant(flow.offlineConfig, offline.tokens.refresh_token!));
      expect(refresh.error).toBe('invalid_grant');
      expect(await userinfoStatus(flow.offlineConfig, offline.tokens.access_token)).toBe(401);
      try {
        // The browser signed in before the reset is asked to sign in again.
        const req = await authRequest(flow.appConfig, { redirectUri: cb.redirectUri });
        const res = await goto(earlier.page, req.url);
        expect(res.status(), `GET /auth with the earlier session: ${await pageText(earlier.page)}`).toBe(200);
        await expectLoginPage(earlier.page, flow.app.name);
      } finally {
        await earlier.context.close();
      }
    });

    it('answers the same for an unknown email on the forgot page', async () => {
      const known = await createUser(flow.server.env, { email: address('known'), password: 'saffron bridge 61 quiet tides', verified: true });
      const request = async (email: string) => {
        const { context, page } = await newPage(browser);
        try {
          const req = await authRequest(flow.appConfig, { redirectUri: cb.redirectUri });
          await goto(page, req.url);
          await page.getByRole('link', { name: 'Forgot password?' }).click();
          await page.getByLabel('Email', { exact: true }).fill(email);
          const res = await submit(page, () => page.getByRole('button', { name: 'Send reset link' }).click());
          return { status: res.status(), title: await page.title(), text: await pageText(page) };
        } finally {
          await context.close();
        }
      };
      const forKnown = await request(known.email);
      const forUnknown = await request(address('nobody'));
      expect(forKnown.status).toBe(200);
      expect(forUnknown).toEqual(forKnown);
      await mail.waitForMail({ to: known.email, subject: 'Reset your' });
    });

    it('answers the same on the login page for an unknown email and a wrong password', async () => {
      const user = await createUser(flow.server.env, { email: address('careful'), password: 'juniper socket 24 bright kites', verified: true });
      const attempt = async (email: string, password: string) => {
        const { context, page } = await newPage(browser);
        try {
          const req = await authRequest(flow.appConfig, { redirectUri: cb.redirectUri });
          await goto(page, req.url);
          await expectLoginPage(page, flow.app.name);
          const res = await submit(page, () => signIn(page, { email, password }));
          return { status: res.status(), alert: await alertText(page), text: await pageText(page) };
        } finally {
          await context.close();
        }
      };
      const wrongPassword = await attempt(user.email, 'not the password at all');
      const unknownEmail = await attempt(address('stranger'), 'not the password at all');
      expect(wrongPassword.status).toBe(401);
      expect(wrongPassword.alert).toBe(BAD_CREDENTIALS);
      expect(unknownEmail).toEqual(wrongPassword);
    });
  });

  describe('account states from the CLI', () => {
    it('suspend refuses sign-in and earlier refresh tokens; reactivate lets the account in again', async () => {
      const user = await createUser(flow.server.env, { email: address('suspended'), password: 'harvest pillow 83 silver foxes', verified: true });
      const before = await freshSignIn(flow.offlineConfig, flow.offline.name, user, { scope: 'openid email offline_access', prompt: 'consent' });
      expectSignedIn(before);
      expect(before.tokens.refresh_token).toBeTruthy();
      await new Promise((r) => setTimeout(r, 1100));

      const suspended = await gatehouse<{ account: { status: string } }>(flow.server.env, ['user', 'suspend', user.email]);
      expect(suspended.account.status).toBe('suspended');
      const refused = expectRefused(await freshSignIn(flow.appConfig, flow.app.name, user));
      expect(refused.status).toBe(401);
      expect(refused.alert).toBe(BAD_CREDENTIALS);
      const refresh = await oauthError(oidc.refreshTokenGrant(flow.offlineConfig, before.tokens.refresh_token!));
      expect(refresh.error).toBe('invalid_grant');
      expect(await userinfoStatus(flow.offlineConfig, before.tokens.access_token)).toBe(401);

      const reactivated = await gatehouse<{ account: { status: string } }>(flow.server.env, ['user', 'reactivate', user.email]);
      expect(reactivated.account.status).toBe('active');
      const back = await freshSignIn(flow.appConfig, flow.app.name, user);
      expectSignedIn(back);
      expect((await userinfo(flow.appConfig, back)).email).toBe(user.email);
    });

    it('suspend also ends browser sessions: a signed-in browser is asked to sign in again', async () => {
      const user = await createUser(flow.server.env, { email: address('session'), password: 'pepper garden 51 lazy whales', verified: true });
      const { context, page } = await newPage(browser);
      try {
        expectSignedIn(await signInToRp(page, flow.appConfig, flow.app.name, user, { remember: true }));
        await new Promise((r) => setTimeout(r, 1100));
        await gatehouse(flow.server.env, ['user', 'suspend', user.email]);
        const req = await authRequest(flow.appConfig, { redirectUri: cb.redirectUri });
        const res = await goto(page, req.url);
        expect(res.status(), `GET /auth with the session of a suspended account: ${await pageText(page)}`).toBe(200);
        await expectLoginPage(page, flow.app.name);
      } finally {
        await context.close();
      }
    });

    it('an invitation mails a link; the invitee sets a password and signs in with a verified email', async () => {
      const email = address('invitee');
      const password = 'lilac anchor 36 wandering gulls';
      const invited = await gatehouse<{ invited: boolean; account: { status: string; email: string } }>(flow.server.env, ['user', 'invite', '--email', email, '--name', 'Ivy Invitee']);
      expect(invited).toMatchObject({ invited: true, account: { email, status: 'pending' } });

      const invitation = await mail.waitForMail({ to: email, subject: 'You are invited' });
      const link = linkIn(invitation, '/invitation');
      expect(link.searchParams.get('token')).toBeTruthy();
      expect(invitation.text).toMatch(/7 days/);
      // Not yet usable for signing in: there is no password.
      expectRefused(await freshSignIn(flow.appConfig, flow.app.name, { email, password }));

      const { context, page } = await newPage(browser);
      try {
        const shown = await goto(page, link);
        expect(shown.status()).toBe(200);
        await page.getByRole('heading', { name: 'Set up your account' }).waitFor();
        expect(await pageText(page)).toContain(email);
        await expect(page.getByLabel(/^Name/).inputValue()).resolves.toBe('Ivy Invitee');
        await page.getByLabel('New password', { exact: true }).fill(password);
        const done = await submit(page, () => page.getByRole('button', { name: 'Create my account' }).click());
        expect(done.status()).toBe(200);
        await page.getByRole('heading', { name: 'Your account is ready' }).waitFor();
        const reused = await goto(page, link);
        expect(reused.status()).toBe(400);
      } finally {
        await context.close();
      }

      expect(await listUser(flow.server, email)).toMatchObject({ status: 'active', email_verified: true, name: 'Ivy Invitee' });
      const signedIn = await freshSignIn(flow.appConfig, flow.app.name, { email, password });
      expectSignedIn(signedIn);
      const info = await userinfo(flow.appConfig, signedIn);
      expect(info.email).toBe(email);
      expect(info.email_verified).toBe(true);
      expect(info.name).toBe('Ivy Invitee');
    });

    it('delete: the account is erased and can no longer sign in', async () => {
      const user = await createUser(flow.server.env, { email: address('leaving'), password: 'marble lantern 47 sleepy bees', verified: true });
      expectSignedIn(await freshSignIn(flow.appConfig, flow.app.name, user));
      const deleted = await gatehouse<{ erased: boolean; pseudonym: string }>(flow.server.env, ['user', 'delete', user.email]);
      expect(deleted).toMatchObject({ erased: true, pseudonym: expect.any(String) });
      const refused = expectRefused(await freshSignIn(flow.appConfig, flow.app.name, user));
      expect(refused.status).toBe(401);
      expect(refused.alert).toBe(BAD_CREDENTIALS);
      expect(await listUser(flow.server, user.email)).toBeUndefined();
    });
  });

  describe('/account', () => {
    const PHONE = '+14155550123';

    /** The newest SMS written to DATA_DIR/outbox/sms for `to`. */
    async function waitForSms(to: string, after: Set<string>, timeoutMs = 15_000): Promise<{ file: string; body: string }> {
      const dir = path.join(dataDir, 'outbox', 'sms');
      const until = Date.now() + timeoutMs;
      for (;;) {
        const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json') && !after.has(f)).sort() : [];
        for (const file of files.reverse()) {
          const sms = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as { to?: unknown; body?: unknown };
          if (sms.to === to && typeof sms.body === 'string') return { file, body: sms.body };
        }
        if (Date.now() > until) throw new Error(`no SMS to ${to} in ${dir} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    function smsFiles(): Set<string> {
      const dir = path.join(dataDir, 'outbox', 'sms');
      return new Set(fs.existsSync(dir) ? fs.readdirSync(dir) : []);
    }

    it('signs in through the hosted login and changes name, phone and password', async () => {
      const user = await createUser(flow.server.env, { email: address('dana'), password: 'tangerine ladder 72 humming owls', name: 'Dana Before', verified: true });
      const newPassword = 'obsidian piano 15 drifting clouds';
      let context: BrowserContext | undefined;
      try {
        const opened = await newPage(browser);
        context = opened.context;
        const page = opened.page;

        // /account sends the browser through the hosted login and back.
        await goto(page, `${flow.server.url}/account`);
        await expectLoginPage(page, 'Gatehouse account');
        await signIn(page, user);
        await page.waitForURL(`${flow.server.url}/account`);
        await page.getByRole('heading', { name: 'Your account' }).waitFor();
        expect(await pageText(page)).toContain(user.email);

        // An application signed in through the same browser session (single sign-on).
        const rpPage = await context.newPage();
        const rp = await signInToRp(rpPage, flow.appConfig, flow.app.name, undefined, { scope: 'openid profile email' });
        expectSignedIn(rp);
        expect((await userinfo(flow.appConfig, rp)).name).toBe('Dana Before');

        // Name.
        await page.locator('form').filter({ has: page.getByRole('button', { name: 'Save name' }) }).getByRole('textbox').fill('Dana After');
        const named = await submit(page, () => page.getByRole('button', { name: 'Save name' }).click());
        expect(named.status()).toBe(200);
        await expect(page.getByRole('status').innerText()).resolves.toContain('Your name is saved.');
        expect((await userinfo(flow.appConfig, rp)).name).toBe('Dana After');

        // Phone: add, a wrong code is refused, the texted code confirms it.
        const seen = smsFiles();
        await page.getByRole('textbox', { name: 'Phone number' }).fill(PHONE);
        const added = await submit(page, () => page.getByRole('button', { name: 'Add phone number' }).click());
        expect(added.status()).toBe(200);
        await expect(page.getByRole('status').innerText()).resolves.toMatch(/sent a 6-digit code/i);
        const sms = await waitForSms(PHONE, seen);
        const code = /\b(\d{6})\b/.exec(sms.body)?.[1];
        if (!code) throw new Error(`no 6-digit code in SMS: ${sms.body}`);
        const wrongCode = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
        await page.getByLabel('Code from the text message').fill(wrongCode);
        const wrong = await submit(page, () => page.getByRole('button', { name: 'Confirm phone number' }).click());
        expect(wrong.status()).toBe(400);
        expect(await alertText(page)).toMatch(/not correct/i);
        await page.getByLabel('Code from the text message').fill(code);
        const confirmed = await submit(page, () => page.getByRole('button', { name: 'Confirm phone number' }).click());
        expect(confirmed.status()).toBe(200);
        await expect(page.getByRole('status').innerText()).resolves.toContain('Your phone number is confirmed.');
        await page.getByRole('heading', { name: 'Your account' }).waitFor();

        const withPhone = await signInToRp(rpPage, flow.appConfig, flow.app.name, undefined, { scope: 'openid phone' });
        expectSignedIn(withPhone);
        const phoneInfo = await userinfo(flow.appConfig, withPhone);
        expect(phoneInfo.phone_number).toBe(PHONE);
        expect(phoneInfo.phone_number_verified).toBe(true);

        // Password: the current one is required.
        const passwordLink = page.getByRole('link', { name: /change your password/i });
        if (await passwordLink.count()) await passwordLink.click();
        await page.getByLabel('Current password').fill('this is not my password');
        await page.getByLabel('New password', { exact: true }).fill(newPassword);
        const refused = await submit(page, () => page.getByRole('button', { name: 'Change password' }).click());
        expect(refused.status()).toBe(400);
        expect(await alertText(page)).toMatch(/current password is not correct/i);
        await page.getByLabel('Current password').fill(user.password);
        await page.getByLabel('New password', { exact: true }).fill(newPassword);
        const changed = await submit(page, () => page.getByRole('button', { name: 'Change password' }).click());
        expect(changed.status()).toBe(200);
        await expect(page.getByRole('status').innerText()).resolves.toContain('Your password is changed.');
      } finally {
        await context?.close();
      }

      await mail.waitForMail({ to: user.email, subject: /password was changed/i });
      const oldPassword = expectRefused(await freshSignIn(flow.appConfig, flow.app.name, user));
      expect(oldPassword.alert).toBe(BAD_CREDENTIALS);
      const fresh = await freshSignIn(flow.appConfig, flow.app.name, { email: user.email, password: newPassword }, { scope: 'openid profile phone' });
      expectSignedIn(fresh);
      expect(await userinfo(flow.appConfig, fresh)).toMatchObject({ name: 'Dana After', phone_number: PHONE, phone_number_verified: true });
    });
  });
});

// ---------------------------------------------------------------------------------------------
// A server whose reset links live two seconds.
// ---------------------------------------------------------------------------------------------

describe('password reset links expire', () => {
  let dataDir: string;
  let server: RunningServer;

  beforeAll(async () => {
    dataDir = tempDataDir('gh-e2e-reset-ttl-');
    server = await startServer({ DATA_DIR: dataDir, SMTP_URL: mail.url, PASSWORD_RESET_TTL: '2', ...testSecrets() });
  });

  afterAll(async () => {
    const code = await server?.stop();
    if (code !== undefined && code !== 0 && code !== null) console.error(`server exited with ${code}:\n${server.logs()}`);
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses a link after PASSWORD_RESET_TTL, both to show the form and to save a password', async () => {
    const user = await createUser(server.env, { email: address('slow'), password: 'walnut cobalt 29 patient herons', verified: true });
    const app = await createClient(server.env, { name: 'Expiry App', redirectUris: [cb.redirectUri], firstParty: true });
    const config = await rpConfig(server.url, app);

    const { context, page } = await newPage(browser);
    try {
      await goto(page, `${server.url}/forgot-password`);
      await page.getByLabel('Email', { exact: true }).fill(user.email);
      const sent = await submit(page, () => page.getByRole('button', { name: 'Send reset link' }).click());
      expect(sent.status(), `POST /forgot-password for an existing account: ${await pageText(page)}`).toBe(200);
      const link = linkIn(await mail.waitForMail({ to: user.email, subject: 'Reset your' }), '/reset-password');

      await new Promise((r) => setTimeout(r, 3000));
      const expired = await goto(page, link);
      expect(expired.status()).toBe(400);
      await page.getByRole('heading', { name: 'This link cannot be used' }).waitFor();
    } finally {
      await context.close();
    }

    // Posting the form directly with the expired token changes nothing either.
    const jar = new CookieJar();
    const forgotUrl = new URL('/forgot-password', server.url);
    const formPage = await fetch(forgotUrl, { headers: { accept: 'text/html' } });
    jar.store(forgotUrl, formPage.headers.getSetCookie());
    const csrf = parseForms(await formPage.text())[0]?.hidden.find(([k]) => k === '_csrf')?.[1];
    expect(csrf).toBeTruthy();
    const resetUrl = new URL('/reset-password', server.url);
    const token = mail.mailsTo(user.email, 'Reset your').at(-1)!;
    const post = await fetch(resetUrl, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', cookie: jar.header(resetUrl), origin: server.url },
      body: new URLSearchParams({ _csrf: csrf!, token: linkIn(token, '/reset-password').searchParams.get('token')!, new_password: 'another 88 sturdy password' }),
    });
    expect(post.status).toBe(400);
    expect(await post.text()).toContain('This link cannot be used');

    const stillOld = await freshSignIn(config, app.name, user);
    expectSignedIn(stillOld);
  });
});
