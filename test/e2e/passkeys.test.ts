// Passkeys end to end with Chromium's virtual authenticator (CDP WebAuthn domain: CTAP2, internal
// transport, resident keys, user verification): registering one in /account, signing in with it
// and no password (button and Email-field autofill), using it as the second step after a
// password, refusing a signature counter that went backwards, and removing it again. Mail goes to
// the outbox directory (no SMTP_URL), where the tests read it.
import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { simpleParser } from 'mailparser';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectLoginPage, launchBrowser, newPage, waitForRedirect } from '../helpers/browser.ts';
import { authRequest, createClient, createUser, exchangeCode, rpConfig, startCallbackServer, type CallbackServer, type CreatedClient, type CreatedUser } from '../helpers/rp.ts';
import { startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

const ACR_MFA = 'urn:gatehouse:acr:mfa';

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let cb: CallbackServer;
let alice: CreatedUser;
let app: CreatedClient;

/** A credential as the CDP WebAuthn domain describes it (enough to copy it to another browser). */
interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  privateKey: string;
  userHandle?: string;
  signCount: number;
}

interface Authenticator {
  cdp: CDPSession;
  id: string;
  credentials(): Promise<VirtualCredential[]>;
  add(credential: VirtualCredential): Promise<void>;
}

async function virtualAuthenticator(context: BrowserContext, page: Page): Promise<Authenticator> {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  return {
    cdp,
    id: authenticatorId,
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials as VirtualCredential[],
    add: async (credential) => {
      await cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
    },
  };
}

/** A fresh browser profile whose authenticator holds `credentials`. */
async function browserHolding(credentials: VirtualCredential[]): Promise<{ context: BrowserContext; page: Page; authenticator: Authenticator }> {
  const { context, page } = await newPage(browser);
  const authenticator = await virtualAuthenticator(context, page);
  for (const credential of credentials) await authenticator.add(credential);
  return { context, page, authenticator };
}

async function passwordSignIn(page: Page, user: CreatedUser): Promise<void> {
  await page.getByLabel('Email', { exact: true }).fill(user.email);
  await page.getByLabel('Password', { exact: true }).fill(user.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

function claimsOf(idToken: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(idToken.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** The mails in the outbox directory whose subject contains `subject`, parsed. */
async function outboxMails(subject: string): Promise<{ to: string; subject: string; text: string }[]> {
  const dir = path.join(dataDir, 'outbox', 'mail');
  if (!fs.existsSync(dir)) return [];
  const mails = await Promise.all(fs.readdirSync(dir).filter((f) => f.endsWith('.eml')).sort().map(async (f) => {
    const parsed = await simpleParser(fs.readFileSync(path.join(dir, f)));
    const to = Array.isArray(parsed.to) ? parsed.to.map((a) => a.text).join(', ') : (parsed.to?.text ?? '');
    return { to, subject: parsed.subject ?? '', text: parsed.text ?? '' };
  }));
  return mails.filter((m) => m.subject.includes(subject));
}

async function waitForMail(to: string, subject: string, count = 1): Promise<{ to: string; subject: string; text: string }[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = (await outboxMails(subject)).filter((m) => m.to.includes(to));
    if (found.length >= count) return found;
    if (Date.now() > deadline) throw new Error(`no mail "${subject}" to ${to} in the outbox`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// The passkey as it was last used: each browser below starts from a copy, which must carry the
// authenticator's current signature counter (an older copy is a clone, and refused).
let registered: VirtualCredential[] = [];

/** The authenticator's credentials after a use, checking that the counter moved forward. */
async function stillCounting(authenticator: Authenticator): Promise<VirtualCredential[]> {
  const now = await authenticator.credentials();
  expect(now[0]!.signCount).toBeGreaterThan(registered[0]!.signCount);
  return now;
}
// The account page session that registered the passkey; later used to remove it.
let accountBrowser: { context: BrowserContext; page: Page; authenticator: Authenticator };

beforeAll(async () => {
  dataDir = tempDataDir('gh-e2e-passkeys-');
  cb = await startCallbackServer();
  [server, browser] = await Promise.all([startServer({ DATA_DIR: dataDir, ...testSecrets() }), launchBrowser()]);
  alice = await createUser(server.env, { email: 'alice@example.test', password: 'correct horse battery staple', name: 'Alice Example', verified: true });
  app = await createClient(server.env, { name: 'Notes', redirectUris: [cb.redirectUri], firstParty: true });
});

afterAll(async () => {
  await accountBrowser?.context.close();
  await browser?.close();
  await server?.stop();
  await cb?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('passkeys', () => {
  it('registers a passkey in /account with its name, and mails the owner', async () => {
    accountBrowser = await browserHolding([]);
    const { page, authenticator } = accountBrowser;
    await page.goto(`${server.url}/account`);
    await expectLoginPage(page, 'Gatehouse account');
    await passwordSignIn(page, alice);
    await page.getByRole('heading', { name: 'Your account' }).waitFor();

    await page.getByLabel(/Passkey label/).fill('Work laptop');
    await page.getByRole('button', { name: 'Add passkey' }).click();
    await page.waitForURL((u) => u.searchParams.get('done') === 'passkey-added');
    const text = await page.locator('body').innerText();
    expect(text).toContain('Your passkey is added.');
    expect(text).toContain('Work laptop');
    expect(text).toMatch(/Passkey · added \d{4}-\d{2}-\d{2}/);

    registered = await authenticator.credentials();
    expect(registered).toHaveLength(1);
    expect(registered[0]!.rpId).toBe('localhost');
    expect(registered[0]!.isResidentCredential).toBe(true);
    // The user handle is the account id's bytes, so a discoverable credential names its account.
    expect(Buffer.from(registered[0]!.userHandle!, 'base64').toString('hex')).toBe(alice.id.replace(/-/g, ''));

    const [mail] = await waitForMail(alice.email, 'A sign-in method was added');
    expect(mail!.text).toContain('Work laptop');
  });

  it('does not register the same authenticator twice (excludeCredentials)', async () => {
    const { page, authenticator } = accountBrowser;
    await page.getByRole('button', { name: 'Add passkey' }).click();
    await expect.poll(async () => page.locator('#passkey-error').innerText()).toMatch(/already holds a passkey/);
    expect(await authenticator.credentials()).toHaveLength(1);
  });

  it('signs in with the passkey alone from a fresh browser: same sub, amr hwk/swk + user, acr mfa', async () => {
    const { context, page, authenticator } = await browserHolding(registered);
    try {
      const config = await rpConfig(server.url, app);
      const req = await authRequest(config, { redirectUri: cb.redirectUri, scope: 'openid email' });
      await page.goto(req.url.href);
      await expectLoginPage(page, app.name);
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      const back = await waitForRedirect(page, cb.redirectUri);
      const tokens = await exchangeCode(config, back, req);
      const claims = tokens.claims()!;
      expect(claims.sub).toBe(alice.id);
      expect(claims.acr).toBe(ACR_MFA);
      const amr = claims.amr as string[];
      expect(amr.some((m) => m === 'hwk' || m === 'swk')).toBe(true);
      expect(amr).toEqual(expect.arrayContaining(['user', 'mfa']));
      expect(amr).not.toContain('pwd');
      registered = await stillCounting(authenticator);
    } finally {
      await context.close();
    }
  });

  it('signs in through the Email field autofill (conditional mediation)', async () => {
    const { context, page, authenticator } = await browserHolding(registered);
    try {
      const config = await rpConfig(server.url, app);
      const req = await authRequest(config, { redirectUri: cb.redirectUri, scope: 'openid' });
      await page.goto(req.url.href);
      await expectLoginPage(page, app.name);
      // The virtual authenticator answers the autofill request as soon as it starts.
      await page.getByLabel('Email', { exact: true }).click();
      const back = await waitForRedirect(page, cb.redirectUri);
      const tokens = await exchangeCode(config, back, req);
      expect(tokens.claims()!.sub).toBe(alice.id);
      expect(tokens.claims()!.acr).toBe(ACR_MFA);
      registered = await stillCounting(authenticator);
    } finally {
      await context.close();
    }
  });

  it('asks for the passkey as the second step after the password', async () => {
    const { context, page, authenticator } = await browserHolding(registered);
    try {
      const config = await rpConfig(server.url, app);
      const req = await authRequest(config, { redirectUri: cb.redirectUri, scope: 'openid' });
      await page.goto(req.url.href);
      await expectLoginPage(page, app.name);
      await passwordSignIn(page, alice);
      await page.getByRole('heading', { name: 'Two-step verification' }).waitFor();
      await page.getByRole('button', { name: 'Use your passkey' }).click();
      const back = await waitForRedirect(page, cb.redirectUri);
      const tokens = await exchangeCode(config, back, req);
      const claims = tokens.claims()!;
      expect(claims.sub).toBe(alice.id);
      expect(claims.acr).toBe(ACR_MFA);
      expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'mfa']));
      expect((claims.amr as string[]).some((m) => m === 'hwk' || m === 'swk')).toBe(true);
      expect(claimsOf(tokens.id_token!).sub).toBe(alice.id);
      registered = await stillCounting(authenticator);
    } finally {
      await context.close();
    }
  });

  it('refuses a credential whose signature counter went backwards', async () => {
    // A copy of the key with an older counter: what a cloned authenticator looks like.
    expect(registered[0]!.signCount).toBeGreaterThan(1);
    const clone = registered.map((c) => ({ ...c, signCount: 0 }));
    const { context, page } = await browserHolding(clone);
    try {
      const config = await rpConfig(server.url, app);
      const req = await authRequest(config, { redirectUri: cb.redirectUri, scope: 'openid' });
      await page.goto(req.url.href);
      await expectLoginPage(page, app.name);
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await expect.poll(async () => page.locator('#passkey-login-error').innerText()).toMatch(/could not be verified/);
      // Still on the login page: nothing reached the relying party.
      await expectLoginPage(page, app.name);
      expect(cb.hitsFor('/cb').filter((u) => u.searchParams.get('state') === req.state)).toHaveLength(0);
    } finally {
      await context.close();
    }
  });

  it('removes the passkey in /account and mails the owner', async () => {
    const { page } = accountBrowser;
    await page.goto(`${server.url}/account`);
    await page.getByRole('button', { name: /^(Remove|Delete) Work laptop$/ }).click();
    await page.waitForURL((u) => u.searchParams.get('done') === 'factor-removed');
    expect(await page.locator('body').innerText()).not.toContain('Work laptop');
    const [mail] = await waitForMail(alice.email, 'A sign-in method was removed');
    expect(mail!.text).toContain('Work laptop');

    // The removed passkey no longer signs in.
    const { context, page: fresh } = await browserHolding(registered);
    try {
      const config = await rpConfig(server.url, app);
      const req = await authRequest(config, { redirectUri: cb.redirectUri, scope: 'openid' });
      await fresh.goto(req.url.href);
      await expectLoginPage(fresh, app.name);
      await fresh.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await expect.poll(async () => fresh.locator('#passkey-login-error').innerText()).toMatch(/not registered/);
    } finally {
      await context.close();
    }
  });

  it('wrote audit events for the enrollment, the sign-ins, the refused counter and the removal', async () => {
    await accountBrowser.context.close();
    expect(await server.stop()).toBe(0);
    const db = await PGlite.create(path.join(dataDir, 'pgdata'));
    try {
      const { rows } = await db.query<{ event_type: string; outcome: string; details: Record<string, unknown> }>(
        "SELECT event_type, outcome, details FROM audit_events WHERE event_type IN ('mfa.factor_added', 'mfa.factor_removed', 'login.passkey', 'mfa.webauthn') ORDER BY id",
      );
      const seen = rows.map((r) => `${r.event_type}:${r.outcome}:${String(r.details.reason ?? r.details.factor ?? '')}`);
      expect(seen).toEqual(expect.arrayContaining([
        'mfa.factor_added:success:webauthn',
        'login.passkey:success:',
        'mfa.webauthn:success:',
        'login.passkey:failure:counter_regression',
        'mfa.factor_removed:success:webauthn',
        'login.passkey:failure:unknown_credential',
      ]));
      const regression = rows.find((r) => r.details.reason === 'counter_regression')!;
      expect(Number(regression.details.reported)).toBeLessThanOrEqual(Number(regression.details.stored));
    } finally {
      await db.close();
    }
  });
});
