// Federation end to end: a second Gatehouse started by the test is the upstream OpenID Connect
// provider ("Corp SSO"); the Gatehouse under test lists it on its login page. A real Chromium
// signs in at both, and openid-client plays the application, so the whole chain is checked:
// state, nonce and PKCE to the upstream, the ID token it returns, and the ID token the
// application finally gets.
//
// The upstream runs on 127.0.0.1 and the Gatehouse under test on localhost: browsers keep
// cookies per host name, not per port, so two instances on one host name would overwrite each
// other's session cookies.
import fs from 'node:fs';
import path from 'node:path';
import * as oidc from 'openid-client';
import { generateSync } from 'otplib';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectLoginPage, launchBrowser, signIn, waitForRedirect } from '../helpers/browser.ts';
import { alertText, goto, pageText, submit } from '../helpers/pages.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/postgres.ts';
import { authRequest, createClient, createUser, exchangeCode, rpConfig, startCallbackServer, type CallbackServer, type CreatedUser } from '../helpers/rp.ts';
import { freePort, startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

const APP_NAME = 'Team Wiki';
const UPSTREAM_CLIENT_NAME = 'Gatehouse at Acme';
const PROVIDER_NAME = 'Corp SSO';
const DOWNSTREAM_PASSWORD = 'copper lantern quietly sings';
const UPSTREAM_PASSWORD = 'granite meadow distant owl';

let browser: Browser;
let cb: CallbackServer;
const dirs: string[] = [];
const databases: TestDatabase[] = [];
let upstream: RunningServer;
let downstream: RunningServer;
let upstreamIssuer: string;
let app: oidc.Configuration;
const contexts: BrowserContext[] = [];
const tag = Date.now().toString(36);

// Upstream people: one new to the Gatehouse under test, one whose address has an account there.
let newcomer: CreatedUser;
let adaUpstream: CreatedUser;
let adaDownstream: CreatedUser;

async function database(prefix: string): Promise<Record<string, string>> {
  if (!TEST_DATABASE_URL) return {};
  const db = await createTestDatabase(prefix);
  databases.push(db);
  return { DATABASE_URL: db.url };
}

beforeAll(async () => {
  [browser, cb] = await Promise.all([launchBrowser(), startCallbackServer()]);
  const [upstreamPort, downstreamPort] = [await freePort(), await freePort()];
  upstreamIssuer = `http://127.0.0.1:${upstreamPort}`;
  const upstreamDir = tempDataDir('gh-e2e-fed-up-');
  const downstreamDir = tempDataDir('gh-e2e-fed-down-');
  dirs.push(upstreamDir, downstreamDir);

  upstream = await startServer({ DATA_DIR: upstreamDir, PORT: String(upstreamPort), ISSUER: upstreamIssuer, ...(await database('gh_fed_up')), ...testSecrets() });
  const registration = await createClient(upstream.env, {
    name: UPSTREAM_CLIENT_NAME,
    redirectUris: [`http://localhost:${downstreamPort}/federation/callback/corp`],
    scope: 'openid profile email',
    firstParty: true,
  });
  newcomer = await createUser(upstream.env, { email: `newcomer-${tag}@acme.test`, password: UPSTREAM_PASSWORD, name: 'Nia Newcomer', verified: true });
  adaUpstream = await createUser(upstream.env, { email: `ada-${tag}@acme.test`, password: UPSTREAM_PASSWORD, name: 'Ada Upstream', verified: true });

  // The secret goes through an env: reference, as an operator would keep it out of the file.
  const federationFile = path.join(downstreamDir, 'federation.json');
  fs.writeFileSync(federationFile, JSON.stringify({
    providers: [{ id: 'corp', kind: 'oidc', name: PROVIDER_NAME, issuer: upstreamIssuer, client_id: registration.client_id, client_secret: 'env:CORP_SSO_CLIENT_SECRET' }],
  }));
  downstream = await startServer({
    DATA_DIR: downstreamDir,
    PORT: String(downstreamPort),
    FEDERATION_CONFIG: federationFile,
    CORP_SSO_CLIENT_SECRET: registration.client_secret!,
    ...(await database('gh_fed_down')),
    ...testSecrets(),
  });
  adaDownstream = await createUser(downstream.env, { email: adaUpstream.email, password: DOWNSTREAM_PASSWORD, name: 'Ada Lovelace', verified: true });
  const client = await createClient(downstream.env, { name: APP_NAME, redirectUris: [cb.redirectUri], scope: 'openid profile email', firstParty: true });
  app = await rpConfig(downstream.url, client);
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close();
  await cb?.close();
  for (const server of [downstream, upstream]) {
    const code = await server?.stop();
    if (code !== undefined && code !== 0 && code !== null) console.error(`server exited with ${code}:\n${server.logs()}`);
  }
  for (const db of databases) await db.drop();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

async function freshPage(): Promise<Page> {
  const context = await browser.newContext();
  context.setDefaultTimeout(20_000);
  context.setDefaultNavigationTimeout(20_000);
  contexts.push(context);
  return context.newPage();
}

/** Opens the application's sign-in and waits for the login page of the Gatehouse under test. */
async function openAppSignIn(page: Page, opts: { prompt?: string } = {}) {
  const req = await authRequest(app, { redirectUri: cb.redirectUri, scope: 'openid profile email', prompt: opts.prompt });
  await goto(page, req.url);
  await expectLoginPage(page, APP_NAME);
  return req;
}

async function continueWithCorp(page: Page): Promise<void> {
  await page.getByRole('button', { name: `Continue with ${PROVIDER_NAME}` }).click();
}

/** At the upstream: its own login page, for the client registered for the Gatehouse under test. */
async function signInUpstream(page: Page, user: CreatedUser): Promise<void> {
  await expectLoginPage(page, UPSTREAM_CLIENT_NAME);
  expect(new URL(page.url()).origin).toBe(upstreamIssuer);
  await signIn(page, { email: user.email, password: user.password });
}

function amrOf(claims: oidc.IDToken | undefined): string[] {
  return Array.isArray(claims?.amr) ? (claims.amr as string[]) : [];
}

describe('signing in with an upstream provider', () => {
  let newcomerPage: Page;

  it('creates a linked account on the first sign-in; the application gets the upstream email and amr "fed"', async () => {
    newcomerPage = await freshPage();
    const req = await openAppSignIn(newcomerPage);
    // The login page sends the browser to the upstream with state, nonce and PKCE (S256).
    const toUpstream = newcomerPage.waitForRequest((r) => r.url().startsWith(`${upstreamIssuer}/auth`));
    await continueWithCorp(newcomerPage);
    const authUrl = new URL((await toUpstream).url());
    for (const param of ['state', 'nonce', 'code_challenge']) expect(authUrl.searchParams.get(param), param).toBeTruthy();
    expect(authUrl.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authUrl.searchParams.get('redirect_uri')).toBe(`${downstream.url}/federation/callback/corp`);

    await signInUpstream(newcomerPage, newcomer);
    const back = await waitForRedirect(newcomerPage, cb.redirectUri);
    const tokens = await exchangeCode(app, back, req);
    const claims = tokens.claims();
    const profile = await oidc.fetchUserInfo(app, tokens.access_token, claims!.sub);
    expect(profile.email).toBe(newcomer.email);
    expect(profile.email_verified).toBe(true);
    expect(profile.name).toBe('Nia Newcomer');
    expect(amrOf(claims)).toContain('fed');
    expect(amrOf(claims)).not.toContain('pwd');
  });

  it('lists the identity in /account and refuses to unlink the only way to sign in', async () => {
    await goto(newcomerPage, `${downstream.url}/account`);
    await newcomerPage.getByRole('link', { name: 'Linked sign-in methods' }).click();
    await newcomerPage.getByRole('heading', { name: 'Linked sign-in methods' }).waitFor();
    const list = newcomerPage.getByRole('list', { name: 'Linked sign-in methods' });
    expect(await list.innerText()).toContain(PROVIDER_NAME);
    expect(await list.innerText()).toContain(newcomer.email);

    const res = await submit(newcomerPage, () => newcomerPage.getByRole('button', { name: `Unlink ${PROVIDER_NAME}` }).click());
    expect(res.status()).toBe(400);
    expect(await alertText(newcomerPage)).toContain('only way you can sign in');
    expect(await newcomerPage.getByRole('list', { name: 'Linked sign-in methods' }).innerText()).toContain(PROVIDER_NAME);
  });

  it('asks an account with an authenticator app for its code after the upstream; the application sees fed + otp as mfa', async () => {
    await goto(newcomerPage, `${downstream.url}/account`);
    await newcomerPage.getByRole('button', { name: 'Set up authenticator app', exact: true }).click();
    const href = await newcomerPage.getByRole('link', { name: 'Open in an authenticator app on this device' }).getAttribute('href');
    const secret = new URL(href ?? '').searchParams.get('secret') ?? '';
    const step = Math.floor(Date.now() / 1000 / 30);
    await newcomerPage.getByLabel('Authentication code', { exact: true }).fill(generateSync({ secret, epoch: step * 30 }));
    await newcomerPage.getByRole('button', { name: 'Verify', exact: true }).click();
    await newcomerPage.getByRole('heading', { name: 'Authenticator app enabled' }).waitFor();

    const req = await openAppSignIn(newcomerPage, { prompt: 'login' });
    await continueWithCorp(newcomerPage);
    // The upstream still has its session; the second step is ours.
    await newcomerPage.getByLabel('Authentication code', { exact: true }).fill(generateSync({ secret, epoch: (step + 1) * 30 }));
    await newcomerPage.getByRole('button', { name: 'Verify', exact: true }).click();
    const back = await waitForRedirect(newcomerPage, cb.redirectUri);
    const claims = (await exchangeCode(app, back, req)).claims();
    expect(amrOf(claims)).toEqual(expect.arrayContaining(['fed', 'otp', 'mfa']));
    expect(claims?.acr).toBe('urn:gatehouse:acr:mfa');
  });
});

describe('an upstream email that already has an account', () => {
  let page: Page;

  it('asks for that account password before linking; a wrong one is refused, the right one links and signs in', async () => {
    page = await freshPage();
    const req = await openAppSignIn(page);
    await continueWithCorp(page);
    await signInUpstream(page, adaUpstream);
    await page.getByRole('heading', { name: `Link ${PROVIDER_NAME} to your account` }).waitFor();
    expect(await pageText(page)).toContain(`An account with the email address ${adaUpstream.email} already exists`);

    await page.getByLabel('Password', { exact: true }).fill('not the password at all');
    const wrong = await submit(page, () => page.getByRole('button', { name: 'Link and sign in' }).click());
    expect(wrong.status()).toBe(401);
    expect(await alertText(page)).toContain('That password is not correct');

    await page.getByLabel('Password', { exact: true }).fill(DOWNSTREAM_PASSWORD);
    await page.getByRole('button', { name: 'Link and sign in' }).click();
    const back = await waitForRedirect(page, cb.redirectUri);
    const tokens = await exchangeCode(app, back, req);
    const claims = tokens.claims();
    // The existing account, not a new one.
    expect(claims?.sub).toBe(adaDownstream.id);
    expect((await oidc.fetchUserInfo(app, tokens.access_token, claims!.sub)).name).toBe('Ada Lovelace');
    expect(amrOf(claims)).toContain('fed');
  });

  it('signs in directly the next time', async () => {
    const req = await openAppSignIn(page, { prompt: 'login' });
    await continueWithCorp(page);
    // The upstream still has its session: no page of ours or theirs in between.
    const back = await waitForRedirect(page, cb.redirectUri);
    const claims = (await exchangeCode(app, back, req)).claims();
    expect(claims?.sub).toBe(adaDownstream.id);
    expect(amrOf(claims)).toContain('fed');
  });

  it('unlinks an account that has a password; the next sign-in asks for the password again; linking from /account works', async () => {
    await goto(page, `${downstream.url}/account/linked`);
    expect(await page.getByRole('list', { name: 'Linked sign-in methods' }).innerText()).toContain(PROVIDER_NAME);
    await submit(page, () => page.getByRole('button', { name: `Unlink ${PROVIDER_NAME}` }).click());
    expect(await pageText(page)).toContain('The sign-in method is unlinked.');
    expect(await pageText(page)).toContain('No other service is linked to your account.');

    await openAppSignIn(page, { prompt: 'login' });
    await continueWithCorp(page);
    await page.getByRole('heading', { name: `Link ${PROVIDER_NAME} to your account` }).waitFor();

    // Linking while signed in to /account: the round trip comes back to the account page.
    await goto(page, `${downstream.url}/account/linked`);
    await page.getByRole('button', { name: `Link ${PROVIDER_NAME}` }).click();
    await page.getByText('The sign-in method is linked.').waitFor();
    expect(await page.getByRole('list', { name: 'Linked sign-in methods' }).innerText()).toContain(adaUpstream.email);
  });
});

describe('failures', () => {
  it('cancelling at the upstream returns to the login page of the same sign-in with a message', async () => {
    const page = await freshPage();
    await openAppSignIn(page);
    const loginUrl = page.url();
    await continueWithCorp(page);
    await expectLoginPage(page, UPSTREAM_CLIENT_NAME);
    await page.getByRole('button', { name: `Cancel and return to ${UPSTREAM_CLIENT_NAME}` }).click();
    await expectLoginPage(page, APP_NAME);
    expect(new URL(page.url()).pathname).toBe(`${new URL(loginUrl).pathname}/federation/continue`);
    expect(await alertText(page)).toBe(`Sign-in with ${PROVIDER_NAME} was cancelled.`);
    expect(cb.hits.filter((u) => u.searchParams.get('error') === 'access_denied')).toHaveLength(0);
  });

  it('refuses a callback whose state was tampered with', async () => {
    const page = await freshPage();
    await openAppSignIn(page);
    // Browsers do not let scripts touch requests inside a redirect chain, so the state is changed
    // in our redirect to the upstream, which returns it unchanged to the callback.
    await page.route(`${downstream.url}/interaction/*/federation/corp`, async (route) => {
      const response = await route.fetch({ maxRedirects: 0 });
      const location = new URL(response.headers().location!);
      location.searchParams.set('state', `${location.searchParams.get('state')}x`);
      await route.fulfill({ response, headers: { ...response.headers(), location: location.toString() } });
    });
    await continueWithCorp(page);
    await expectLoginPage(page, UPSTREAM_CLIENT_NAME);
    const res = await submit(page, () => signIn(page, { email: newcomer.email, password: newcomer.password }));
    expect(res.status()).toBe(400);
    await page.getByRole('heading', { name: 'This sign-in cannot be completed' }).waitFor();
    expect(await pageText(page)).not.toMatch(/at .*\.ts:\d+/);
  });

  it('refuses a callback no sign-in in this browser started', async () => {
    const page = await freshPage();
    const res = await goto(page, `${downstream.url}/federation/callback/corp?code=forged&state=forged`);
    expect(res.status()).toBe(400);
    expect(await pageText(page)).toContain('This sign-in cannot be completed');
  });

  // Read straight from the database, which needs the PostgreSQL of TEST_DATABASE_URL.
  it.skipIf(!TEST_DATABASE_URL)('wrote audit events for each change and refusal', async () => {
    const db = new pg.Client({ connectionString: downstream.env.DATABASE_URL });
    await db.connect();
    try {
      const { rows } = await db.query<{ event_type: string; outcome: string; reason: string | null }>(
        "SELECT event_type, outcome, details->>'reason' AS reason FROM audit_events WHERE event_type LIKE 'federation.%'",
      );
      const seen = new Set(rows.map((r) => `${r.event_type}:${r.outcome}${r.reason ? `:${r.reason}` : ''}`));
      for (const expected of [
        'federation.account_created:success',
        'federation.sign_in:success',
        'federation.linked:success',
        'federation.linked:failure:bad_password',
        'federation.unlinked:success',
        'federation.unlinked:failure:last_sign_in_method',
        'federation.callback:failure:access_denied',
        'federation.callback:failure:bad_state',
      ]) expect(seen, expected).toContain(expected);
    } finally {
      await db.end();
    }
  });
});
