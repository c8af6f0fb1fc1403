// Upstream providers without a browser: the configuration (file, env shortcuts, env: secret
// references, refusals), and the plain OAuth 2.0 kinds (GitHub, Facebook, X) against a local
// fake of their token endpoint and profile APIs, reached through the endpoint overrides a GitHub
// Enterprise Server installation uses. The OpenID Connect kinds are covered end to end by
// test/e2e/federation.test.ts against a second Gatehouse.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { exportPKCS8, generateKeyPair, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { parseFederation, type FederationProvider } from '../../src/federation/settings.ts';
import { appleClientSecret, Upstreams, UpstreamError } from '../../src/federation/upstream.ts';
import { ROOT } from '../helpers/server.ts';

interface Seen {
  method: string;
  path: string;
  authorization: string | undefined;
  form: URLSearchParams;
}

let server: http.Server;
let base: string;
let seen: Seen[];
let tokenStatus: number;
let githubEmails: unknown;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString(); });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', base);
      seen.push({ method: req.method ?? '', path: url.pathname, authorization: req.headers.authorization, form: new URLSearchParams(body) });
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (url.pathname === '/token') {
        if (tokenStatus !== 200) return json(tokenStatus, { error: 'invalid_grant', error_description: 'bad code' });
        return json(200, { access_token: 'upstream-access-token', token_type: 'bearer', scope: 'read:user' });
      }
      if (req.headers.authorization !== 'Bearer upstream-access-token') return json(401, { message: 'Bad credentials' });
      if (url.pathname === '/api/user') return json(200, { id: 4242, login: 'octo', name: 'Octo Cat', email: 'public@example.test' });
      if (url.pathname === '/api/user/emails') return json(200, githubEmails);
      if (url.pathname === '/api/me') return json(200, { id: '10001', name: 'Face Person', email: 'face@example.test' });
      if (url.pathname === '/api/2/users/me') return json(200, { data: { id: '777', name: 'X Person', username: 'xperson' } });
      return json(404, {});
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  seen = [];
  tokenStatus = 200;
  githubEmails = [
    { email: 'old@example.test', primary: false, verified: true },
    { email: 'octo@example.test', primary: true, verified: true },
  ];
});

function plainProvider(kind: 'github' | 'facebook' | 'x', overrides: Partial<FederationProvider> = {}): FederationProvider {
  const { config, problems } = parseFederation({ [`${kind.toUpperCase()}_CLIENT_ID`]: 'client-1', [`${kind.toUpperCase()}_CLIENT_SECRET`]: 'secret-1' });
  expect(problems).toEqual([]);
  return { ...config.providers[0]!, endpoints: { authorization: `${base}/authorize`, token: `${base}/token`, api: `${base}/api` }, ...overrides };
}

/** Runs the round trip the browser would: authorization URL out, callback URL with a code back. */
async function roundTrip(provider: FederationProvider, response: Record<string, string> = {}) {
  const upstreams = new Upstreams(createLogger('silent'));
  const checks = { state: oidc.randomState(), nonce: oidc.randomNonce(), codeVerifier: oidc.randomPKCECodeVerifier() };
  const redirectUri = `https://id.example.test/federation/callback/${provider.id}`;
  const authorizationUrl = await upstreams.authorizationUrl(provider, { redirectUri, ...checks });
  const callback = new URL(redirectUri);
  callback.search = new URLSearchParams({ code: 'the-code', state: checks.state, ...response }).toString();
  return { authorizationUrl, checks, identify: () => upstreams.identify(provider, callback, checks) };
}

describe('GitHub, Facebook and X (plain OAuth 2.0)', () => {
  it('GitHub: PKCE and state on the request, the verifier on the code exchange, the verified primary email', async () => {
    const provider = plainProvider('github');
    const trip = await roundTrip(provider);
    const params = trip.authorizationUrl.searchParams;
    expect(trip.authorizationUrl.origin + trip.authorizationUrl.pathname).toBe(`${base}/authorize`);
    expect(params.get('state')).toBe(trip.checks.state);
    expect(params.get('code_challenge')).toBe(await oidc.calculatePKCECodeChallenge(trip.checks.codeVerifier));
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('scope')).toBe('read:user user:email');
    // No ID token comes back, so no nonce is asked for.
    expect(params.has('nonce')).toBe(false);

    const identity = await trip.identify();
    expect(identity).toEqual({ provider: 'github', subject: '4242', email: 'octo@example.test', emailVerified: true, name: 'Octo Cat' });
    const token = seen.find((s) => s.path === '/token')!;
    expect(token.form.get('code_verifier')).toBe(trip.checks.codeVerifier);
    expect(token.form.get('client_secret')).toBe('secret-1');
    expect(token.form.get('redirect_uri')).toBe('https://id.example.test/federation/callback/github');
  });

  it('GitHub: an unverified primary email is passed on as unverified', async () => {
    githubEmails = [{ email: 'octo@example.test', primary: true, verified: false }];
    const identity = await (await roundTrip(plainProvider('github'))).identify();
    expect(identity.email).toBe('octo@example.test');
    expect(identity.emailVerified).toBe(false);
  });

  it('GitHub: a trust_email_verified of false never vouches for the email', async () => {
    const identity = await (await roundTrip(plainProvider('github', { trustEmailVerified: false }))).identify();
    expect(identity.emailVerified).toBe(false);
  });

  it('Facebook: the confirmed email of /me', async () => {
    const identity = await (await roundTrip(plainProvider('facebook'))).identify();
    expect(identity).toEqual({ provider: 'facebook', subject: '10001', email: 'face@example.test', emailVerified: true, name: 'Face Person' });
  });

  it('X: HTTP Basic client authentication (credentials not form-encoded, as X expects), no email', async () => {
    const identity = await (await roundTrip(plainProvider('x'))).identify();
    expect(identity).toEqual({ provider: 'x', subject: '777', email: null, emailVerified: false, name: 'X Person' });
    const token = seen.find((s) => s.path === '/token')!;
    expect(token.authorization).toBe(`Basic ${Buffer.from('client-1:secret-1').toString('base64')}`);
    expect(token.form.get('client_secret')).toBeNull();
  });

  it('a refused code exchange and a state from another flow are failures, not identities', async () => {
    tokenStatus = 400;
    await expect((await roundTrip(plainProvider('github'))).identify()).rejects.toMatchObject({ reason: 'token_exchange' });
    tokenStatus = 200;
    seen = [];
    const trip = await roundTrip(plainProvider('github'), { state: 'someone-elses-state' });
    const failure = await trip.identify().catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(UpstreamError);
    expect(seen.some((s) => s.path === '/token')).toBe(false);
  });

  it('an error in the callback (the person said no) is access_denied', async () => {
    const trip = await roundTrip(plainProvider('github'), { error: 'access_denied' });
    await expect(trip.identify()).rejects.toMatchObject({ reason: 'access_denied' });
  });
});

describe('Apple', () => {
  it('authenticates with an ES256 JWT from the team key: iss team, sub client, aud appleid.apple.com, kid key id', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const { config } = parseFederation({ APPLE_CLIENT_ID: 'com.example.web', APPLE_TEAM_ID: 'TEAM123456', APPLE_KEY_ID: 'KEY1234567', APPLE_PRIVATE_KEY: await exportPKCS8(privateKey) });
    const secret = await appleClientSecret(config.providers[0]!);
    const { payload, protectedHeader } = await jwtVerify(secret, publicKey, { issuer: 'TEAM123456', audience: 'https://appleid.apple.com', subject: 'com.example.web' });
    expect(protectedHeader).toMatchObject({ alg: 'ES256', kid: 'KEY1234567' });
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(3600);
  });
});

describe('configuration', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  function file(content: unknown): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-fed-config-'));
    dirs.push(dir);
    const name = path.join(dir, 'federation.json');
    fs.writeFileSync(name, typeof content === 'string' ? content : JSON.stringify(content));
    return name;
  }

  it('reads providers from the file, resolving env: references, with per-kind defaults', () => {
    const config = loadConfig({
      FEDERATION_CONFIG: file({ providers: [{ id: 'corp', kind: 'oidc', name: 'Corp SSO', issuer: 'https://sso.corp.example', client_id: 'gatehouse', client_secret: 'env:CORP_SECRET' }] }),
      CORP_SECRET: 's3cret',
      GOOGLE_CLIENT_ID: 'g-id',
      GOOGLE_CLIENT_SECRET: 'g-secret',
      MICROSOFT_CLIENT_ID: 'm-id',
      MICROSOFT_CLIENT_SECRET: 'm-secret',
    });
    const [corp, google, microsoft] = config.federation.providers;
    expect(corp).toMatchObject({ id: 'corp', kind: 'oidc', name: 'Corp SSO', clientSecret: 's3cret', scopes: ['openid', 'email', 'profile'], trustEmailVerified: true, pkce: true, tokenEndpointAuthMethod: 'client_secret_basic' });
    expect(google).toMatchObject({ id: 'google', name: 'Google', issuer: 'https://accounts.google.com' });
    // Microsoft's email claim is not verified by anyone: matching on it is opt-in.
    expect(microsoft).toMatchObject({ id: 'microsoft', issuer: 'https://login.microsoftonline.com/common/v2.0', trustEmailVerified: false });
  });

  it('names every problem: a missing env reference, http issuers, Apple without its key, duplicates, unknown fields', () => {
    let message = '';
    try {
      loadConfig({
        FEDERATION_CONFIG: file({
          providers: [
            { id: 'corp', kind: 'oidc', issuer: 'http://sso.corp.example', client_id: 'a', client_secret: 'env:MISSING_SECRET' },
            { id: 'apple', kind: 'apple', client_id: 'com.example.web' },
            { id: 'github', kind: 'github', client_id: 'a', client_secret: 'b' },
          ],
        }),
        GITHUB_CLIENT_ID: 'x',
      });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('MISSING_SECRET is not set');
    expect(message).toContain('issuer must be https://');
    expect(message).toContain('Apple needs "team_id", "key_id" and "private_key"');
    // GITHUB_CLIENT_ID names the id "github" the file already uses.
    expect(message).toContain('provider id "github" is configured twice');
  });

  it('refuses unknown fields, so a misspelt setting is not silently ignored', () => {
    expect(() => loadConfig({ FEDERATION_CONFIG: file({ providers: [{ id: 'gh', kind: 'github', client_id: 'a', client_secret: 'b', trust_email_verifed: false }] }) })).toThrow(/trust_email_verifed/);
    expect(() => loadConfig({ GITHUB_CLIENT_ID: 'a' })).toThrow(/GITHUB_CLIENT_ID \(github\): "client_secret" is required/);
  });

  it('refuses a file that is not JSON, and reserved ids', () => {
    expect(() => loadConfig({ FEDERATION_CONFIG: file('{ providers: [') })).toThrow(/cannot read .* as JSON/);
    expect(() => loadConfig({ FEDERATION_CONFIG: file({ providers: [{ id: 'link', kind: 'github', client_id: 'a', client_secret: 'b' }] }) })).toThrow(/reserved/);
  });

  it('accepts the example file in config/', () => {
    const keyFile = file('-----BEGIN PRIVATE KEY-----\nnot checked at start-up\n-----END PRIVATE KEY-----\n');
    const example = fs.readFileSync(path.join(ROOT, 'config', 'federation.example.json'), 'utf8').replace('/run/secrets/apple-signin-key.p8', keyFile);
    const secrets = Object.fromEntries(['CORP_SSO', 'GOOGLE', 'MICROSOFT', 'GITHUB', 'FACEBOOK', 'X'].map((p) => [`${p}_CLIENT_SECRET`, 'secret']));
    const { providers } = loadConfig({ FEDERATION_CONFIG: file(example), ...secrets }).federation;
    expect(providers.map((p) => p.kind)).toEqual(['oidc', 'google', 'microsoft', 'apple', 'github', 'facebook', 'x']);
  });

  it('has no providers when nothing is configured', () => {
    expect(loadConfig({}).federation.providers).toEqual([]);
  });
});
