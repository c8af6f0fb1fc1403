// What goes wrong must go wrong safely: bad redirect URIs, PKCE mistakes, code replay, bad client
// secrets, denied consent, wrong passwords, missing CSRF tokens; plus the security headers and
// cookie attributes of the hosted pages.
import fs from 'node:fs';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consent, cspProblems, expectLoginPage, launchBrowser, newPage, signIn, waitForRedirect } from '../helpers/browser.ts';
import {
  authRequest,
  createClient,
  createUser,
  exchangeCode,
  oauthError,
  postForm,
  rpConfig,
  startCallbackServer,
  userinfoStatus,
  type AuthRequest,
  type CallbackServer,
  type CreatedClient,
  type CreatedUser,
} from '../helpers/rp.ts';
import { startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let cb: CallbackServer;
let carol: CreatedUser;
let firstParty: CreatedClient;
let thirdParty: CreatedClient;
let config: oidc.Configuration;
// A browser profile signed in to `firstParty`, so codes can be minted without the login page.
let sso: { context: BrowserContext; page: Page };

beforeAll(async () => {
  dataDir = tempDataDir('gh-e2e-failures-');
  cb = await startCallbackServer();
  [server, browser] = await Promise.all([startServer({ DATA_DIR: dataDir, ...testSecrets() }), launchBrowser()]);
  carol = await createUser(server.env, { email: 'carol@example.test', password: 'the right password 42', name: 'Carol Example', verified: true });
  firstParty = await createClient(server.env, { name: 'Support Desk', redirectUris: [cb.redirectUri], firstParty: true });
  thirdParty = await createClient(server.env, { name: 'Weather Widget', redirectUris: [cb.redirectUri] });
  config = await rpConfig(server.url, firstParty);

  sso = await newPage(browser);
  const req = await authRequest(config, { redirectUri: cb.redirectUri });
  await sso.page.goto(req.url.href);
  await expectLoginPage(sso.page, firstParty.name);
  await signIn(sso.page, { email: carol.email, password: carol.password, remember: true });
  await waitForRedirect(sso.page, cb.redirectUri);
});

afterAll(async () => {
  await sso?.context.close();
  await browser?.close();
  const code = await server?.stop();
  if (code !== undefined && code !== 0 && code !== null) console.error(`server exited with ${code}:\n${server.logs()}`);
  await cb?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

/** A fresh authorization code for `firstParty`, minted through the signed-in browser. */
async function freshCode(): Promise<{ req: AuthRequest; back: URL; code: string }> {
  const req = await authRequest(config, { redirectUri: cb.redirectUri });
  await sso.page.goto(req.url.href);
  const back = await waitForRedirect(sso.page, cb.redirectUri);
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`no code in ${back.href}`);
  return { req, back, code };
}

function basic(c: CreatedClient): { id: string; secret: string } {
  return { id: c.client_id, secret: c.client_secret ?? '' };
}

describe('authorization request errors', () => {
  it('renders an error page for an unregistered redirect_uri and never goes there', async () => {
    const bad = `${cb.origin}/not-registered`;
    const req = await authRequest(config, { redirectUri: bad });
    const { context, page } = await newPage(browser);
    try {
      const res = await page.goto(req.url.href);
      expect(res?.status()).toBe(400);
      expect(new URL(page.url()).origin).toBe(server.url);
      expect(await page.locator('body').innerText()).toContain('invalid_redirect_uri');
      expect(cspProblems(res?.headers()['content-security-policy'])).toEqual([]);
      // No script, refresh or link-follow takes the browser to the unregistered URI afterwards.
      await page.waitForTimeout(500);
      expect(new URL(page.url()).origin).toBe(server.url);
      expect(cb.hitsFor('/not-registered')).toHaveLength(0);
    } finally {
      await context.close();
    }
  });

  it('refuses code_challenge_method=plain and requests without PKCE', async () => {
    const verifier = oidc.randomPKCECodeVerifier();
    const plainState = oidc.randomState();
    const plain = oidc.buildAuthorizationUrl(config, {
      redirect_uri: cb.redirectUri,
      response_type: 'code',
      scope: 'openid',
      code_challenge: verifier,
      code_challenge_method: 'plain',
      state: plainState,
    });
    await sso.page.goto(plain.href);
    const plainBack = await waitForRedirect(sso.page, cb.redirectUri);
    expect(plainBack.searchParams.get('code')).toBeNull();
    expect(plainBack.searchParams.get('error')).toBe('invalid_request');
    expect(plainBack.searchParams.get('state')).toBe(plainState);

    const noPkceState = oidc.randomState();
    const noPkce = oidc.buildAuthorizationUrl(config, { redirect_uri: cb.redirectUri, response_type: 'code', scope: 'openid', state: noPkceState });
    await sso.page.goto(noPkce.href);
    const noPkceBack = await waitForRedirect(sso.page, cb.redirectUri);
    expect(noPkceBack.searchParams.get('code')).toBeNull();
    expect(noPkceBack.searchParams.get('error')).toBe('invalid_request');
    expect(noPkceBack.searchParams.get('state')).toBe(noPkceState);
  });

  it('returns access_denied with state when the user denies consent', async () => {
    const thirdConfig = await rpConfig(server.url, thirdParty);
    const { context, page } = await newPage(browser);
    try {
      const req = await authRequest(thirdConfig, { redirectUri: cb.redirectUri });
      await page.goto(req.url.href);
      await expectLoginPage(page, thirdParty.name);
      await signIn(page, { email: carol.email, password: carol.password });
      await consent(page, 'deny');
      const back = await waitForRedirect(page, cb.redirectUri);
      expect(back.searchParams.get('error')).toBe('access_denied');
      expect(back.searchParams.get('state')).toBe(req.state);
      expect(back.searchParams.get('code')).toBeNull();
    } finally {
      await context.close();
    }
  });
});

describe('token endpoint errors', () => {
  it('rejects a missing code_verifier with invalid_grant', async () => {
    const { code } = await freshCode();
    const res = await postForm(
      config.serverMetadata().token_endpoint!,
      { grant_type: 'authorization_code', code, redirect_uri: cb.redirectUri },
      basic(firstParty),
    );
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
    expect(res.body.access_token).toBeUndefined();
  });

  it('rejects a wrong code_verifier with invalid_grant', async () => {
    const { req, back } = await freshCode();
    const err = await oauthError(
      oidc.authorizationCodeGrant(config, back, {
        pkceCodeVerifier: oidc.randomPKCECodeVerifier(),
        expectedState: req.state,
        expectedNonce: req.nonce,
      }),
    );
    expect(err.error).toBe('invalid_grant');
    expect(err.status).toBe(400);
  });

  it('rejects a reused code and revokes the tokens issued for it', async () => {
    const { req, back } = await freshCode();
    const tokens = await exchangeCode(config, back, req);
    expect(await userinfoStatus(config, tokens.access_token)).toBe(200);
    const err = await oauthError(exchangeCode(config, back, req));
    expect(err.error).toBe('invalid_grant');
    expect(await userinfoStatus(config, tokens.access_token)).toBe(401);
  });

  it('rejects a wrong client secret with invalid_client (401)', async () => {
    const { req, back } = await freshCode();
    const wrong = await rpConfig(server.url, firstParty, 'not-the-secret');
    const err = await oauthError(exchangeCode(wrong, back, req));
    expect(err.error).toBe('invalid_client');
    expect(err.status).toBe(401);
  });
});

describe('login page', () => {
  it('shows one generic message for a wrong password and for an unknown email', async () => {
    const { context, page } = await newPage(browser);
    try {
      const req = await authRequest(config, { redirectUri: cb.redirectUri });
      await page.goto(req.url.href);
      await expectLoginPage(page, firstParty.name);

      await signIn(page, { email: carol.email, password: 'not the right password' });
      const alert = page.getByRole('alert');
      await alert.waitFor();
      const wrongPassword = (await alert.innerText()).trim();
      expect(wrongPassword).not.toBe('');
      expect(new URL(page.url()).origin).toBe(server.url);
      await expectLoginPage(page, firstParty.name);

      await signIn(page, { email: 'nobody@example.test', password: 'not the right password' });
      await page.getByRole('alert').waitFor();
      const unknownEmail = (await page.getByRole('alert').innerText()).trim();
      expect(unknownEmail).toBe(wrongPassword);
      await expectLoginPage(page, firstParty.name);
      expect(cb.hits.some((u) => u.searchParams.get('state') === req.state)).toBe(false);

      // The page still works: the right password gets through.
      await signIn(page, { email: carol.email, password: carol.password });
      const back = await waitForRedirect(page, cb.redirectUri);
      expect(back.searchParams.get('state')).toBe(req.state);
      expect(back.searchParams.get('code')).toBeTruthy();
    } finally {
      await context.close();
    }
  });

  it('refuses a login form POST without its CSRF token (403)', async () => {
    const { context, page } = await newPage(browser);
    try {
      const req = await authRequest(config, { redirectUri: cb.redirectUri });
      await page.goto(req.url.href);
      await expectLoginPage(page, firstParty.name);
      const form = page.locator('form', { has: page.getByLabel('Password', { exact: true }) });
      expect((await form.getAttribute('method'))?.toLowerCase()).toBe('post');
      const csrf = form.locator('input[type="hidden"][name*="csrf" i]');
      expect(await csrf.count()).toBeGreaterThan(0);
      expect(await csrf.first().inputValue()).not.toBe('');
      await csrf.evaluateAll((inputs) => inputs.forEach((input) => input.remove()));

      const response = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(server.url));
      await signIn(page, { email: carol.email, password: carol.password });
      expect((await response).status()).toBe(403);
      await page.waitForLoadState();
      expect(new URL(page.url()).origin).toBe(server.url);
      expect(cb.hits.some((u) => u.searchParams.get('state') === req.state)).toBe(false);
    } finally {
      await context.close();
    }
  });
});

describe('security headers', () => {
  it('sends a strict CSP on the login and consent pages', async () => {
    const thirdConfig = await rpConfig(server.url, thirdParty);
    const { context, page } = await newPage(browser);
    try {
      const req = await authRequest(thirdConfig, { redirectUri: cb.redirectUri });
      const login = await page.goto(req.url.href);
      expect(login?.status()).toBe(200);
      expect(new URL(login!.url()).pathname).toMatch(/^\/interaction\//);
      await expectLoginPage(page, thirdParty.name);
      expect(cspProblems(login?.headers()['content-security-policy'])).toEqual([]);

      const consentPage = page.waitForResponse(
        (r) => r.request().resourceType() === 'document' && r.status() === 200 && r.url().startsWith(`${server.url}/interaction/`),
      );
      await signIn(page, { email: carol.email, password: carol.password });
      const res = await consentPage;
      await page.getByRole('button', { name: 'Allow', exact: true }).waitFor();
      expect(cspProblems(res.headers()['content-security-policy'])).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('sets the interaction cookies HttpOnly and SameSite', async () => {
    const req = await authRequest(config, { redirectUri: cb.redirectUri });
    const res = await fetch(req.url, { redirect: 'manual' });
    expect([302, 303]).toContain(res.status);
    const cookies = res.headers.getSetCookie().filter((c) => /^[^=]*interaction/i.test(c));
    expect(cookies.length, `Set-Cookie: ${res.headers.getSetCookie().join(' | ')}`).toBeGreaterThan(0);
    for (const cookie of cookies) {
      expect(cookie, cookie).toMatch(/;\s*httponly/i);
      expect(cookie, cookie).toMatch(/;\s*samesite=(lax|strict)/i);
    }

    // The same holds for the cookies the browser actually keeps.
    const { context, page } = await newPage(browser);
    try {
      await page.goto((await authRequest(config, { redirectUri: cb.redirectUri })).url.href);
      await expectLoginPage(page, firstParty.name);
      // No URL filter: the interaction cookies are scoped to the interaction's own path.
      const kept = (await context.cookies()).filter((c) => /interaction/i.test(c.name));
      expect(kept.length).toBeGreaterThan(0);
      for (const c of kept) {
        expect(c.httpOnly, c.name).toBe(true);
        expect(['Lax', 'Strict'], c.name).toContain(c.sameSite);
      }
    } finally {
      await context.close();
    }
  });
});
