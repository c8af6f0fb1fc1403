// Token lifecycle against a running Gatehouse: refresh token rotation and reuse detection,
// client_credentials (opaque and resource-bound JWT access tokens), introspection and revocation.
import fs from 'node:fs';
import * as jose from 'jose';
import * as oidc from 'openid-client';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consent, expectLoginPage, launchBrowser, newPage, signIn, waitForRedirect } from '../helpers/browser.ts';
import {
  authRequest,
  createClient,
  createUser,
  exchangeCode,
  gatehouse,
  oauthError,
  postForm,
  rpConfig,
  startCallbackServer,
  userinfoStatus,
  type CallbackServer,
  type CreatedClient,
  type CreatedUser,
} from '../helpers/rp.ts';
import { startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';

let dataDir: string;
let server: RunningServer;
let browser: Browser;
let cb: CallbackServer;
let bob: CreatedUser;
let offlineApp: CreatedClient;

beforeAll(async () => {
  dataDir = tempDataDir('gh-e2e-tokens-');
  cb = await startCallbackServer();
  [server, browser] = await Promise.all([startServer({ DATA_DIR: dataDir, ...testSecrets() }), launchBrowser()]);
  bob = await createUser(server.env, { email: 'bob@example.test', password: 'a long enough passphrase', name: 'Bob Example', verified: true });
  offlineApp = await createClient(server.env, {
    name: 'Mail Sync',
    redirectUris: [cb.redirectUri],
    grantTypes: ['authorization_code', 'refresh_token'],
    scope: 'openid profile email offline_access',
  });
});

afterAll(async () => {
  await browser?.close();
  const code = await server?.stop();
  if (code !== undefined && code !== 0 && code !== null) console.error(`server exited with ${code}:\n${server.logs()}`);
  await cb?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

/** Sign bob in to offlineApp in a fresh browser, consent, and exchange the code. */
async function signInOffline(config: oidc.Configuration, prompt: string | undefined) {
  const { context, page } = await newPage(browser);
  try {
    const req = await authRequest(config, { redirectUri: cb.redirectUri, scope: 'openid email offline_access', prompt });
    await page.goto(req.url.href);
    await expectLoginPage(page, offlineApp.name);
    await signIn(page, { email: bob.email, password: bob.password });
    await consent(page, 'allow');
    return await exchangeCode(config, await waitForRedirect(page, cb.redirectUri), req);
  } finally {
    await context.close();
  }
}

describe('refresh tokens', () => {
  it('are issued for offline_access only together with prompt=consent', async () => {
    const config = await rpConfig(server.url, offlineApp);
    const tokens = await signInOffline(config, undefined);
    expect(tokens.access_token).toBeTruthy();
    expect(tokens.refresh_token).toBeUndefined();
  });

  it('rotate on every use, and reuse of an old one revokes the whole grant', async () => {
    const config = await rpConfig(server.url, offlineApp);
    const first = await signInOffline(config, 'consent');
    expect(first.refresh_token).toBeTruthy();
    expect(first.scope?.split(' ')).toContain('offline_access');
    const sub = first.claims()!.sub;

    const second = await oidc.refreshTokenGrant(config, first.refresh_token!);
    expect(second.refresh_token).toBeTruthy();
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(second.access_token).not.toBe(first.access_token);
    expect(await userinfoStatus(config, second.access_token)).toBe(200);
    expect((await oidc.fetchUserInfo(config, second.access_token, sub)).email).toBe(bob.email);

    // Replaying the rotated-out token fails ...
    const reuse = await oauthError(oidc.refreshTokenGrant(config, first.refresh_token!));
    expect(reuse.error).toBe('invalid_grant');
    expect(reuse.status).toBe(400);
    // ... and takes the whole grant down with it: the newest refresh and access tokens die too.
    const newest = await oauthError(oidc.refreshTokenGrant(config, second.refresh_token!));
    expect(newest.error).toBe('invalid_grant');
    expect(await userinfoStatus(config, second.access_token)).toBe(401);
    expect(await userinfoStatus(config, first.access_token)).toBe(401);
  });
});

describe('client_credentials', () => {
  it('issues an opaque access token, and a JWT access token for a registered resource', async () => {
    const svc = await createClient(server.env, { name: 'Billing Service', grantTypes: ['client_credentials'] });
    expect(svc.client_secret).toBeTruthy();
    const config = await rpConfig(server.url, svc);
    const meta = config.serverMetadata();
    expect(meta.grant_types_supported).toContain('client_credentials');

    const plain = await oidc.clientCredentialsGrant(config);
    expect(plain.token_type.toLowerCase()).toBe('bearer');
    expect(plain.access_token).toBeTruthy();
    expect(plain.access_token.split('.')).not.toHaveLength(3); // opaque, not a JWT
    expect(plain.refresh_token).toBeUndefined();
    expect(plain.id_token).toBeUndefined();
    expect(plain.expires_in).toBeGreaterThan(0);

    const resource = 'https://api.example.test';
    await gatehouse(server.env, ['resource', 'create', '--identifier', resource, '--scope', 'read write']);
    // Without a role a client holds no permission at the API: the token carries no scope. (A
    // second client, since a client's permissions are cached for a few seconds.)
    const bare = await createClient(server.env, { name: 'Bare Service', grantTypes: ['client_credentials'] });
    const unprivileged = await oidc.clientCredentialsGrant(await rpConfig(server.url, bare), { resource, scope: 'read write' });
    expect(unprivileged.scope).toBeUndefined();
    await gatehouse(server.env, ['role', 'create', '--name', 'api-reader', '--resource', resource, '--permission', 'read']);
    await gatehouse(server.env, ['role', 'assign', 'api-reader', '--client', svc.client_id]);

    // Scope ∩ permissions: write is asked for but not held.
    const bound = await oidc.clientCredentialsGrant(config, { resource, scope: 'read write' });
    expect(bound.refresh_token).toBeUndefined();
    expect(bound.id_token).toBeUndefined();
    const header = jose.decodeProtectedHeader(bound.access_token);
    expect(header.alg).toBe('ES256');
    expect(header.typ).toBe('at+jwt');
    const jwks = (await (await fetch(meta.jwks_uri!)).json()) as { keys: { kid?: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);
    const { payload } = await jose.jwtVerify(bound.access_token, jose.createRemoteJWKSet(new URL(meta.jwks_uri!)), {
      issuer: server.url,
      audience: resource,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    expect(payload.aud).toBe(resource);
    expect(payload.client_id).toBe(svc.client_id);
    expect(payload.scope).toBe('read');
    expect(payload.exp! - payload.iat!).toBeGreaterThan(0);
  });
});

describe('introspection and revocation', () => {
  it('report token state to the authenticated client and revoke access tokens', async () => {
    const config = await rpConfig(server.url, offlineApp);
    const meta = config.serverMetadata();
    const tokens = await signInOffline(config, 'consent');
    expect(tokens.refresh_token).toBeTruthy();
    const sub = tokens.claims()!.sub;

    const access = await oidc.tokenIntrospection(config, tokens.access_token, { token_type_hint: 'access_token' });
    expect(access).toMatchObject({ active: true, client_id: offlineApp.client_id, sub });
    const refresh = await oidc.tokenIntrospection(config, tokens.refresh_token!, { token_type_hint: 'refresh_token' });
    expect(refresh).toMatchObject({ active: true, client_id: offlineApp.client_id, sub });

    const unknown = await oidc.tokenIntrospection(config, 'this-token-was-never-issued-by-gatehouse');
    expect(unknown.active).toBe(false);

    // Without client authentication the endpoints answer with an error, never a token's state.
    const anon = await postForm(meta.introspection_endpoint!, { token: tokens.access_token });
    expect([400, 401]).toContain(anon.status);
    expect(anon.body.active).toBeUndefined();
    expect(typeof anon.body.error).toBe('string');
    const anonRevoke = await postForm(meta.revocation_endpoint!, { token: tokens.access_token });
    expect([400, 401]).toContain(anonRevoke.status);
    expect(await userinfoStatus(config, tokens.access_token)).toBe(200);

    await oidc.tokenRevocation(config, tokens.access_token, { token_type_hint: 'access_token' });
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
    expect(await userinfoStatus(config, tokens.access_token)).toBe(401);
  });
});
