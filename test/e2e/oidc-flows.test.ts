// Browser sign-in flows against a running Gatehouse: code + PKCE with a validated ID token, SSO,
// first-party clients without consent, and RP-initiated logout. Chromium drives the hosted pages;
// openid-client v6 is the relying party.
import fs from 'node:fs';
import * as jose from 'jose';
import * as oidc from 'openid-client';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consent, cspProblems, expectLoginPage, isConsentPage, launchBrowser, newPage, recordRenderedPages, signIn, waitForRedirect } from '../helpers/browser.ts';
import {
  authRequest,
  createClient,
  createUser,
  exchangeCode,
  rpConfig,
  startCallbackServer,
  type CallbackServer,
  type CreatedClient,
  type CreatedUser,
} from '../helpers/rp.ts';
import { startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let cb: CallbackServer;
let alice: CreatedUser;
let app: CreatedClient; // third-party: shows consent
let otherApp: CreatedClient; // a second third-party client
let firstParty: CreatedClient;
let logoutApp: CreatedClient;

beforeAll(async () => {
  dataDir = tempDataDir('gh-e2e-flows-');
  cb = await startCallbackServer();
  [server, browser] = await Promise.all([startServer({ DATA_DIR: dataDir, ...testSecrets() }), launchBrowser()]);
  const env = server.env;
  alice = await createUser(env, { email: 'alice@example.test', password: 'correct horse battery staple', name: 'Alice Example', verified: true });
  app = await createClient(env, { name: 'Photo Gallery', redirectUris: [cb.redirectUri] });
  otherApp = await createClient(env, { name: 'Recipe Box', redirectUris: [cb.redirectUri] });
  firstParty = await createClient(env, { name: 'Gatehouse Console', redirectUris: [cb.redirectUri], firstParty: true });
  logoutApp = await createClient(env, {
    name: 'Notes',
    redirectUris: [cb.redirectUri],
    postLogoutRedirectUris: [cb.postLogoutRedirectUri],
    firstParty: true,
  });
});

afterAll(async () => {
  await browser?.close();
  const code = await server?.stop();
  if (code !== undefined && code !== 0 && code !== null) console.error(`server exited with ${code}:\n${server.logs()}`);
  await cb?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('authorization code + PKCE', () => {
  it('signs in through the hosted pages and returns a validated ID token and userinfo', async () => {
    const config = await rpConfig(server.url, app);
    const meta = config.serverMetadata();
    expect(meta.issuer).toBe(server.url);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(['openid', 'profile', 'email', 'offline_access']));
    expect(meta.id_token_signing_alg_values_supported).toContain('RS256');
    expect(meta.end_session_endpoint).toBeTruthy();

    const { context, page } = await newPage(browser);
    try {
      const req = await authRequest(config, { redirectUri: cb.redirectUri, scope: 'openid profile email' });
      await page.goto(req.url.href);
      expect(new URL(page.url()).origin).toBe(server.url);
      await expectLoginPage(page, app.name);

      await signIn(page, { email: alice.email, password: alice.password });
      await page.getByRole('button', { name: 'Allow', exact: true }).waitFor();
      expect(await isConsentPage(page)).toBe(true);
      const consentText = await page.locator('body').innerText();
      expect(consentText).toContain(app.name);
      expect(consentText).toMatch(/email/i);
      expect(consentText).toMatch(/name|profile/i);
      // Plain words, not protocol scope names.
      expect(consentText).not.toMatch(/\bopenid\b/);
      await consent(page, 'allow');

      const back = await waitForRedirect(page, cb.redirectUri);
      expect(back.searchParams.get('state')).toBe(req.state);
      expect(back.searchParams.get('code')).toBeTruthy();

      // openid-client checks state, iss, PKCE, the ID token signature, iss/aud/exp/nonce.
      const tokens = await exchangeCode(config, back, req);
      expect(tokens.token_type.toLowerCase()).toBe('bearer');
      expect(tokens.refresh_token).toBeUndefined();
      const claims = tokens.claims();
      expect(claims).toBeDefined();
      expect(claims!.iss).toBe(server.url);
      expect(claims!.aud).toBe(app.client_id);
      expect(claims!.nonce).toBe(req.nonce);
      expect(claims!.sub).toBeTruthy();

      const header = jose.decodeProtectedHeader(tokens.id_token!);
      expect(header.alg).toBe('RS256');
      const jwks = (await (await fetch(meta.jwks_uri!)).json()) as { keys: { kid?: string }[] };
      expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);
      await jose.jwtVerify(tokens.id_token!, jose.createRemoteJWKSet(new URL(meta.jwks_uri!)), {
        issuer: server.url,
        audience: app.client_id,
        algorithms: ['RS256'],
      });

      const info = await oidc.fetchUserInfo(config, tokens.access_token, claims!.sub);
      expect(info).toMatchObject({ sub: claims!.sub, email: alice.email, email_verified: true, name: alice.name });
    } finally {
      await context.close();
    }
  });

  it('signs in again without the login page (SSO) in the same browser', async () => {
    const config = await rpConfig(server.url, app);
    const otherConfig = await rpConfig(server.url, otherApp);
    const { context, page } = await newPage(browser);
    try {
      const first = await authRequest(config, { redirectUri: cb.redirectUri });
      await page.goto(first.url.href);
      await expectLoginPage(page, app.name);
      await signIn(page, { email: alice.email, password: alice.password, remember: true });
      await consent(page, 'allow');
      const firstTokens = await exchangeCode(config, await waitForRedirect(page, cb.redirectUri), first);
      const sub = firstTokens.claims()!.sub;

      // Same client, consent already given: straight back to the RP, no page rendered on the way.
      const rendered = recordRenderedPages(page);
      const second = await authRequest(config, { redirectUri: cb.redirectUri });
      await page.goto(second.url.href);
      const back = await waitForRedirect(page, cb.redirectUri);
      expect(rendered.filter((u) => u.startsWith(server.url))).toEqual([]);
      const secondTokens = await exchangeCode(config, back, second);
      expect(secondTokens.claims()!.sub).toBe(sub);

      // Another client: consent for that client, but still no login page.
      const third = await authRequest(otherConfig, { redirectUri: cb.redirectUri });
      await page.goto(third.url.href);
      await page.getByRole('button', { name: 'Allow', exact: true }).waitFor();
      expect(await page.getByLabel('Password', { exact: true }).count()).toBe(0);
      expect(await page.locator('body').innerText()).toContain(otherApp.name);
      await consent(page, 'allow');
      const thirdTokens = await exchangeCode(otherConfig, await waitForRedirect(page, cb.redirectUri), third);
      expect(thirdTokens.claims()!.sub).toBe(sub);
    } finally {
      await context.close();
    }
  });

  it('does not ask a first-party client for consent, unless prompt=consent', async () => {
    const config = await rpConfig(server.url, firstParty);
    const { context, page } = await newPage(browser);
    try {
      const req = await authRequest(config, { redirectUri: cb.redirectUri });
      await page.goto(req.url.href);
      await expectLoginPage(page, firstParty.name);
      const rendered = recordRenderedPages(page);
      await signIn(page, { email: alice.email, password: alice.password });
      const back = await waitForRedirect(page, cb.redirectUri);
      // The only page rendered after signing in is the RP's callback.
      expect(rendered).toEqual([back.href]);
      const tokens = await exchangeCode(config, back, req);
      expect(tokens.claims()!.sub).toBeTruthy();

      const again = await authRequest(config, { redirectUri: cb.redirectUri, prompt: 'consent' });
      await page.goto(again.url.href);
      await page.getByRole('button', { name: 'Allow', exact: true }).waitFor();
      expect(await page.locator('body').innerText()).toContain(firstParty.name);
      await consent(page, 'allow');
      await exchangeCode(config, await waitForRedirect(page, cb.redirectUri), again);
    } finally {
      await context.close();
    }
  });
});

describe('RP-initiated logout', () => {
  it('confirms, returns to the post_logout_redirect_uri with state, and ends the session', async () => {
    const config = await rpConfig(server.url, logoutApp);
    const { context, page } = await newPage(browser);
    try {
      const req = await authRequest(config, { redirectUri: cb.redirectUri });
      await page.goto(req.url.href);
      await expectLoginPage(page, logoutApp.name);
      await signIn(page, { email: alice.email, password: alice.password, remember: true });
      const tokens = await exchangeCode(config, await waitForRedirect(page, cb.redirectUri), req);

      // The session is live: prompt=none returns a code.
      const silent = await authRequest(config, { redirectUri: cb.redirectUri, prompt: 'none' });
      await page.goto(silent.url.href);
      const silentBack = await waitForRedirect(page, cb.redirectUri);
      expect(silentBack.searchParams.get('error')).toBeNull();
      expect(silentBack.searchParams.get('code')).toBeTruthy();

      const logoutState = oidc.randomState();
      const endSession = oidc.buildEndSessionUrl(config, {
        id_token_hint: tokens.id_token!,
        post_logout_redirect_uri: cb.postLogoutRedirectUri,
        state: logoutState,
      });
      const before = cb.hitsFor('/logged-out').length;
      const confirmPage = await page.goto(endSession.href);
      expect(new URL(page.url()).origin).toBe(server.url);
      expect(cspProblems(confirmPage?.headers()['content-security-policy'])).toEqual([]);
      const confirm = page.getByRole('button', { name: 'Yes, sign me out' });
      await confirm.waitFor();
      // Nothing happens before the user confirms.
      expect(cb.hitsFor('/logged-out').length).toBe(before);
      await confirm.click();
      const out = await waitForRedirect(page, cb.postLogoutRedirectUri);
      expect(out.searchParams.get('state')).toBe(logoutState);

      const after = await authRequest(config, { redirectUri: cb.redirectUri, prompt: 'none' });
      await page.goto(after.url.href);
      const afterBack = await waitForRedirect(page, cb.redirectUri);
      expect(afterBack.searchParams.get('error')).toBe('login_required');
      expect(afterBack.searchParams.get('state')).toBe(after.state);
      expect(afterBack.searchParams.get('code')).toBeNull();
    } finally {
      await context.close();
    }
  });
});
