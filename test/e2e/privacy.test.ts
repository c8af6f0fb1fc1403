// Privacy end to end, with a real browser and openid-client as the app: "Connected apps" in
// /account lists what the person allowed and revoking it ends the app's tokens; the data export
// holds what was stored (profile, second factors without their secrets, sessions, the grant,
// the audit trail); deleting the account asks for the password, then leaves nothing that names
// the person in any table (checked by SQL over every text column), keeps the audit rows under a
// pseudonym, ends sessions and tokens, and frees the address for a new signup.
//
// Each person browses with their own user agent and, through X-Forwarded-For (TRUST_PROXY), their
// own address, so their traces can be searched for in the database.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Knex } from 'knex';
import * as oidc from 'openid-client';
import { generateSync } from 'otplib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consent, expectLoginPage, isConsentPage, launchBrowser, signIn, waitForRedirect } from '../helpers/browser.ts';
import { startMailSink, type MailSink } from '../helpers/mail.ts';
import { goto, pageText, submit } from '../helpers/pages.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/postgres.ts';
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
  type CreatedUser,
} from '../helpers/rp.ts';
import { startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';

const APP_NAME = 'Photo Album';
const SCOPE = 'openid email offline_access';
const PASSWORD = 'violet harbour seventy lamps';

let browser: Browser;
let cb: CallbackServer;
let mail: MailSink;
let dataDir: string;
let database: TestDatabase | undefined;
let server: RunningServer;
let app: CreatedClient;
let appConfig: oidc.Configuration;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  [browser, cb, mail] = await Promise.all([launchBrowser(), startCallbackServer(), startMailSink()]);
  dataDir = tempDataDir('gh-e2e-privacy-');
  // Real PostgreSQL when the run provides one, the embedded database otherwise.
  database = TEST_DATABASE_URL ? await createTestDatabase('gh_privacy') : undefined;
  server = await startServer({
    DATA_DIR: dataDir,
    SMTP_URL: mail.url,
    MAIL_FROM: 'Gatehouse <no-reply@example.test>',
    TRUST_PROXY: 'true',
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...testSecrets(),
  });
  app = await createClient(server.env, {
    name: APP_NAME,
    redirectUris: [cb.redirectUri],
    grantTypes: ['authorization_code', 'refresh_token'],
    scope: 'openid profile email phone offline_access',
  });
  appConfig = await rpConfig(server.url, app);
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

interface Person {
  user: CreatedUser & { name: string };
  ip: string;
  userAgent: string;
  context: BrowserContext;
  page: Page;
}

let people = 0;

/** A new account (created with the CLI) and a browser of its own, with its own address and agent. */
async function newPerson(label: string): Promise<Person> {
  people += 1;
  const tag = crypto.randomBytes(4).toString('hex');
  const name = `${label} Quill${tag}`;
  const user = await createUser(server.env, { email: `${label}-${tag}@example.test`, password: PASSWORD, name, verified: true });
  const ip = `198.51.100.${10 + people}`;
  const userAgent = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36 PrivacyProbe/${tag}`;
  const context = await browser.newContext({ userAgent, extraHTTPHeaders: { 'x-forwarded-for': ip } });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(15_000);
  contexts.push(context);
  return { user: { ...user, name }, ip, userAgent, context, page: await context.newPage() };
}

/** Signs the person in to the app (password if asked, consent), and redeems the code. */
async function signInToApp(p: Person, opts: { prompt?: string } = {}) {
  const req = await authRequest(appConfig, { redirectUri: cb.redirectUri, scope: SCOPE, prompt: opts.prompt ?? 'consent' });
  await goto(p.page, req.url);
  const allow = p.page.getByRole('button', { name: 'Allow', exact: true });
  await allow.or(p.page.getByLabel('Password', { exact: true })).waitFor();
  if (!(await isConsentPage(p.page))) {
    await expectLoginPage(p.page, APP_NAME);
    await signIn(p.page, p.user);
    await allow.waitFor();
  }
  await consent(p.page, 'allow');
  const back = await waitForRedirect(p.page, cb.redirectUri);
  return exchangeCode(appConfig, back, req);
}

/** Opens /account in the person's browser, signing in when the browser has no session. */
async function openAccount(p: Person): Promise<void> {
  await p.page.goto(`${server.url}/account`);
  const heading = p.page.getByRole('heading', { name: 'Your account' });
  const login = p.page.getByRole('heading', { name: /Sign in to Gatehouse account/ });
  await heading.or(login).waitFor();
  if (await login.count()) {
    await signIn(p.page, p.user);
    await heading.waitFor();
  }
}

async function addPhone(p: Person, phone: string): Promise<void> {
  await openAccount(p);
  await p.page.getByLabel('Phone number', { exact: true }).fill(phone);
  await submit(p.page, () => p.page.getByRole('button', { name: 'Add phone number' }).click());
  expect(await pageText(p.page)).toContain('We sent a 6-digit code to your phone');
}

describe('connected apps', () => {
  it('lists the app after consent; revoking it ends its refresh and access tokens and asks for consent again', async () => {
    const p = await newPerson('ada');
    const tokens = await signInToApp(p);
    expect(tokens.refresh_token).toBeTruthy();

    await openAccount(p);
    await submit(p.page, () => p.page.getByRole('link', { name: 'Connected apps' }).click());
    await p.page.getByRole('heading', { name: 'Connected apps' }).waitFor();
    const listed = await p.page.getByRole('list', { name: 'Connected apps' }).innerText();
    expect(listed).toContain(APP_NAME);
    expect(listed).toContain('See your email address and whether it is verified');
    expect(listed).toContain('Stay connected when you are not using it');
    expect(listed).toContain(`Access given ${new Date().toISOString().slice(0, 10)}`);
    // The account page's own client is not an app the person connected.
    expect(listed).not.toContain('Gatehouse account');

    const refreshed = await oidc.refreshTokenGrant(appConfig, tokens.refresh_token!);
    expect(await userinfoStatus(appConfig, refreshed.access_token)).toBe(200);

    await submit(p.page, () => p.page.getByRole('button', { name: `Revoke access for ${APP_NAME}` }).click());
    expect(await pageText(p.page)).toContain('The app no longer has access to your account.');
    expect(await pageText(p.page)).toContain('No app has access to your account.');
    expect(await p.page.getByRole('list', { name: 'Connected apps' }).count()).toBe(0);

    expect((await oauthError(oidc.refreshTokenGrant(appConfig, refreshed.refresh_token!))).error).toBe('invalid_grant');
    expect(await userinfoStatus(appConfig, refreshed.access_token)).toBe(401);

    // Still signed in to Gatehouse, but the app must ask again.
    const again = await authRequest(appConfig, { redirectUri: cb.redirectUri, scope: 'openid email' });
    await goto(p.page, again.url);
    await p.page.getByRole('button', { name: 'Allow', exact: true }).waitFor();
    expect(await isConsentPage(p.page)).toBe(true);
  });
});

interface ExportDocument {
  format: string;
  profile: Record<string, unknown>;
  mfa: { factors: Record<string, unknown>[]; recovery_codes_remaining: number };
  sessions: Record<string, unknown>[];
  connected_apps: Record<string, unknown>[];
  remembered_devices: unknown[];
  api_keys: unknown[];
  roles: { direct: string[]; effective: string[] };
  audit_events: { type: string; outcome: string; ip: string | null; user_agent: string | null }[];
}

describe('data export', () => {
  it('downloads one JSON document with the profile, factor metadata without secrets, sessions, the grant and the audit trail', async () => {
    const p = await newPerson('grace');
    await signInToApp(p);
    await addPhone(p, '+44 20 7946 0958');

    // An authenticator app, "scanned" from the set-up page.
    await openAccount(p);
    await p.page.getByRole('button', { name: 'Set up authenticator app', exact: true }).click();
    await p.page.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor();
    const otpauth = new URL((await p.page.getByRole('link', { name: 'Open in an authenticator app on this device' }).getAttribute('href')) ?? '');
    const totpSecret = otpauth.searchParams.get('secret') ?? '';
    expect(totpSecret).toMatch(/^[A-Z2-7]{32}$/);
    await p.page.getByLabel('Authentication code', { exact: true }).fill(generateSync({ secret: totpSecret }));
    await p.page.getByRole('button', { name: 'Verify', exact: true }).click();
    await p.page.getByRole('heading', { name: 'Authenticator app enabled' }).waitFor();
    const recoveryCodes = (await p.page.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').allInnerTexts()).map((c) => c.trim());
    expect(recoveryCodes).toHaveLength(10);

    // A passkey from Chromium's virtual authenticator.
    const cdp = await p.context.newCDPSession(p.page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    await openAccount(p);
    await p.page.getByLabel(/Passkey label/).fill('Desk key');
    await p.page.getByRole('button', { name: 'Add passkey' }).click();
    await p.page.waitForURL((u) => u.searchParams.get('done') === 'passkey-added');

    await openAccount(p);
    const downloading = p.page.waitForEvent('download');
    await p.page.getByRole('link', { name: 'Download your data' }).click();
    const download = await downloading;
    expect(download.suggestedFilename()).toMatch(/^gatehouse-export-\d{4}-\d{2}-\d{2}\.json$/);
    const text = fs.readFileSync(await download.path(), 'utf8');
    const doc = JSON.parse(text) as ExportDocument;

    expect(doc.format).toBe('gatehouse.account-export');
    expect(doc.profile).toMatchObject({
      id: p.user.id,
      email: p.user.email,
      email_verified: true,
      name: p.user.name,
      phone_number: '+442079460958',
      phone_number_verified: false,
      status: 'active',
      has_password: true,
    });

    const totp = doc.mfa.factors.find((f) => f.type === 'totp' && f.confirmed === true);
    expect(totp).toMatchObject({ name: 'Authenticator app' });
    expect(Date.parse(String(totp!.created_at))).not.toBeNaN();
    const passkey = doc.mfa.factors.find((f) => f.type === 'webauthn');
    expect(passkey).toMatchObject({ name: 'Desk key', confirmed: true });
    expect(typeof passkey!.backup_eligible).toBe('boolean');
    expect(typeof passkey!.backed_up).toBe('boolean');
    expect(doc.mfa.recovery_codes_remaining).toBe(10);
    // Described, never disclosed.
    expect(text).not.toContain(totpSecret);
    for (const code of recoveryCodes) expect(text).not.toContain(code);
    for (const secretName of ['password_hash', 'totp_secret', 'public_key', 'credential_id', 'token_hash', 'key_hash', 'code_mac', '$argon2']) {
      expect(text).not.toContain(secretName);
    }

    const session = doc.sessions.find((s) => s.login_user_agent === p.userAgent);
    expect(session).toMatchObject({ login_ip: p.ip, revoked_at: null });
    expect(doc.sessions.some((s) => (s.apps as string[]).includes(app.client_id))).toBe(true);

    const grant = doc.connected_apps.find((g) => g.client_id === app.client_id);
    expect(grant).toMatchObject({ client_name: APP_NAME });
    expect(grant!.scopes).toEqual(expect.arrayContaining(['openid', 'email', 'offline_access']));

    const types = doc.audit_events.map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['user.created', 'consent.granted', 'user.phone_added', 'mfa.factor_added']));
    expect(doc.audit_events.find((e) => e.type === 'consent.granted')).toMatchObject({ outcome: 'success', ip: p.ip, user_agent: p.userAgent });
    expect(doc.api_keys).toEqual([]);
    expect(Array.isArray(doc.roles.effective)).toBe(true);

    // The download itself is on record.
    const second = (await (await p.page.request.get(`${server.url}/account/export`)).json()) as ExportDocument;
    expect(second.audit_events.map((e) => e.type)).toContain('account.exported');
  });
});

/** Every text-like column of every table in the database, as "table.column". */
async function textColumns(knex: Knex): Promise<{ table: string; column: string }[]> {
  const rows = await knex('information_schema.columns')
    .where({ table_schema: 'public' })
    .whereIn('data_type', ['text', 'character varying', 'jsonb', 'json', 'uuid', 'ARRAY'])
    .select<{ table_name: string; column_name: string }[]>('table_name', 'column_name');
  return rows.map((r) => ({ table: r.table_name, column: r.column_name }));
}

describe('erasure', () => {
  it('needs the password, then leaves no personal data, pseudonymous audit rows, no live tokens, and a free address', async () => {
    const p = await newPerson('erin');
    const tokens = await signInToApp(p);
    await addPhone(p, '+44 20 7946 0123');

    await openAccount(p);
    await submit(p.page, () => p.page.getByRole('link', { name: 'Delete your account' }).click());
    await p.page.getByRole('heading', { name: 'Delete your account' }).waitFor();

    // A wrong password deletes nothing.
    await p.page.getByLabel('Your password', { exact: true }).fill('not my password at all');
    const refused = await submit(p.page, () => p.page.getByRole('button', { name: 'Delete my account' }).click());
    expect(refused.status()).toBe(400);
    expect(await pageText(p.page)).toContain('That password is not correct.');
    const stillThere = await oidc.refreshTokenGrant(appConfig, tokens.refresh_token!);
    expect(stillThere.access_token).toBeTruthy();

    await p.page.getByLabel('Your password', { exact: true }).fill(PASSWORD);
    const erased = await submit(p.page, () => p.page.getByRole('button', { name: 'Delete my account' }).click());
    expect(erased.status()).toBe(200);
    await p.page.getByRole('heading', { name: 'Your account is deleted' }).waitFor();

    // Sessions and tokens are gone: the app's refresh and access tokens fail, /account asks to sign in.
    expect((await oauthError(oidc.refreshTokenGrant(appConfig, stillThere.refresh_token!))).error).toBe('invalid_grant');
    expect(await userinfoStatus(appConfig, stillThere.access_token)).toBe(401);
    await p.page.goto(`${server.url}/account`);
    await expectLoginPage(p.page, 'Gatehouse account');

    // The database, read directly (the embedded one admits a single process: stop the server).
    await server.stop();
    const db = await openDatabase(loadConfig({ DATA_DIR: dataDir, ...(database ? { DATABASE_URL: database.url } : {}) }));
    try {
      const needles = [p.user.email, p.user.name, '79460123', p.ip, p.userAgent, p.user.id];
      const found: string[] = [];
      for (const { table, column } of await textColumns(db.knex)) {
        for (const needle of needles) {
          const [row] = await db.knex(table).whereRaw('??::text ILIKE ?', [column, `%${needle}%`]).count<{ count: string | number }[]>({ count: '*' });
          if (Number(row!.count) > 0) found.push(`${table}.${column} contains ${needle}`);
        }
      }
      expect(found).toEqual([]);

      const erasure = await db.knex('audit_events').where({ event_type: 'account.erased' }).first<{ account_id: string; ip: string | null; user_agent: string | null }>();
      expect(erasure).toBeDefined();
      const pseudonym = erasure!.account_id;
      expect(pseudonym).toMatch(/^[0-9a-f-]{36}$/);
      expect(pseudonym).not.toBe(p.user.id);
      const trail = await db.knex('audit_events').where({ account_id: pseudonym }).orderBy('id').select<{ event_type: string; ip: string | null; user_agent: string | null }[]>('event_type', 'ip', 'user_agent');
      // What happened is kept, in order, under the pseudonym, without addresses or agents.
      const types = trail.map((e) => e.event_type);
      expect(types).toEqual(expect.arrayContaining(['user.created', 'consent.granted', 'user.phone_added', 'account.erasure_refused', 'user.deleted', 'account.erased']));
      expect(types.at(-1)).toBe('account.erased');
      expect(trail.every((e) => e.ip === null && e.user_agent === null)).toBe(true);
      expect(await db.knex('accounts').where({ id: p.user.id }).first()).toBeUndefined();
    } finally {
      await db.close();
    }
    server = await startServer(server.env);

    // The address can sign up again: a verification link arrives, not an "account exists" notice.
    const { page } = await newPerson('newcomer');
    const req = await authRequest(appConfig, { redirectUri: cb.redirectUri, scope: 'openid email' });
    await goto(page, req.url);
    await expectLoginPage(page, APP_NAME);
    await page.getByRole('link', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Create your account' }).waitFor();
    await page.getByLabel('Email', { exact: true }).fill(p.user.email);
    await page.getByLabel('Password', { exact: true }).fill('another long passphrase 77');
    await page.getByLabel(/^Name/).fill('Erin Again');
    await submit(page, () => page.getByRole('button', { name: 'Create account' }).click());
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    await mail.waitForMail({ to: p.user.email, subject: 'Confirm your email address' });
    expect(mail.mailsTo(p.user.email, /tried to sign up/i)).toHaveLength(0);
    const listed = await gatehouse<{ users: { id: string; email: string; status: string }[] }>(server.env, ['user', 'list']);
    const again = listed.users.find((u) => u.email === p.user.email);
    expect(again).toMatchObject({ status: 'pending' });
    expect(again!.id).not.toBe(p.user.id);
  });
});
