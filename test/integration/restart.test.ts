// The embedded default (PGlite under DATA_DIR, no Redis, no configured secrets) survives a
// restart: generated development secrets, signing keys, sessions, grants and refresh tokens are
// all on disk, and CLI commands given while the server runs are carried out by the server.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeOverHttp, CookieJar, decodeJwt, tokenRequest, type ClientCredentials } from '../helpers/http-login.ts';
import { freePort, runCli, startServer, tempDataDir, type RunningServer } from '../helpers/server.ts';

const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const SCOPE = 'openid profile email offline_access';

interface Discovery {
  token_endpoint: string;
  userinfo_endpoint: string;
  jwks_uri: string;
}

describe('restart on the embedded database', () => {
  let dataDir: string;
  let port: number;
  let env: Record<string, string>;
  let server: RunningServer | undefined;
  let discovery: Discovery;
  const client: ClientCredentials = {
    clientId: `restart-${crypto.randomBytes(4).toString('hex')}`,
    clientSecret: crypto.randomBytes(24).toString('base64url'),
    authMethod: 'client_secret_basic',
  };
  const alice = { email: `alice-${crypto.randomBytes(3).toString('hex')}@example.com`, password: 'alice password 123456' };
  const bob = { email: `bob-${crypto.randomBytes(3).toString('hex')}@example.com`, password: 'bob password 1234567' };

  // Carried from the first run of the server to the second.
  const jar = new CookieJar();
  let refreshToken = '';
  let subject = '';
  let kidsBefore: string[] = [];

  const cli = async (args: string[]): Promise<unknown> => {
    const res = await runCli(env, args);
    if (res.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
    return res.json;
  };
  const jwksKids = async (): Promise<string[]> => {
    const res = await fetch(new URL(new URL(discovery.jwks_uri).pathname, server!.url));
    expect(res.status).toBe(200);
    return ((await res.json()) as JSONWebKeySet).keys.map((k) => String(k.kid)).sort();
  };
  const tokenEndpoint = () => new URL(new URL(discovery.token_endpoint).pathname, server!.url).href;

  beforeAll(async () => {
    dataDir = tempDataDir('gh-restart-');
    port = await freePort();
    // A short reload period: without Redis, the timer is how a rotation reaches the server.
    env = { DATA_DIR: dataDir, PORT: String(port), KEYS_RELOAD_SECONDS: '2' };
    // Before the server exists, the CLI opens the embedded database itself.
    await cli([
      'client', 'create', '--name', 'Restart RP', '--redirect-uri', REDIRECT_URI,
      '--grant-type', 'authorization_code', '--grant-type', 'refresh_token',
      '--scope', SCOPE, '--auth-method', 'client_secret_basic',
      '--client-id', client.clientId, '--client-secret', client.clientSecret!,
    ]);
    await cli(['user', 'create', '--email', alice.email, '--password', alice.password, '--name', 'Alice', '--verified']);
    server = await startServer(env);
    discovery = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as Discovery;
  });

  afterAll(async () => {
    await server?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('creates a user through the running server', async () => {
    const created = await cli(['user', 'create', '--email', bob.email, '--password', bob.password, '--name', 'Bob', '--verified']);
    expect(JSON.stringify(created)).toContain(bob.email);
  });

  it('signs in with "remember me" and gets a refresh token', async () => {
    const auth = await authorizeOverHttp({
      issuer: server!.url, clientId: client.clientId, redirectUri: REDIRECT_URI,
      email: alice.email, password: alice.password, scope: SCOPE, prompt: 'consent', remember: true, jar,
    });
    expect(auth.pages).toEqual(['login', 'consent']);
    const token = await tokenRequest(tokenEndpoint(), client, {
      grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT_URI, code_verifier: auth.codeVerifier,
    });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    expect(token.body.refresh_token).toBeTruthy();
    refreshToken = token.body.refresh_token!;
    subject = String(decodeJwt(token.body.id_token!).payload.sub);
    kidsBefore = await jwksKids();
    expect(kidsBefore.length).toBeGreaterThan(0);
    // "Remember me" makes the session cookie outlive the browser session.
    const session = jar.list().find((c) => c.name === '_session');
    expect(session, `cookies: ${jar.list().map((c) => c.name).join(', ')}`).toBeDefined();
    expect(session!.expires).toBeGreaterThan(Date.now() + 60_000);
  });

  it('stops cleanly on SIGTERM and starts again on the same data directory', async () => {
    expect(refreshToken).toBeTruthy();
    const started = Date.now();
    const code = await server!.stop('SIGTERM');
    const elapsed = Date.now() - started;
    expect(code, server!.logs()).toBe(0);
    expect(elapsed).toBeLessThan(10_000); // SHUTDOWN_GRACE_SECONDS defaults to 10
    server = undefined;
    server = await startServer(env);
  });

  it('keeps refresh tokens, sessions, signing keys and users across the restart', async () => {
    expect(server).toBeDefined();
    expect(await jwksKids()).toEqual(kidsBefore);

    const refreshed = await tokenRequest(tokenEndpoint(), client, { grant_type: 'refresh_token', refresh_token: refreshToken });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    expect(refreshed.body.access_token).toBeTruthy();
    if (refreshed.body.id_token) expect(decodeJwt(refreshed.body.id_token).header.kid).toBeOneOf(kidsBefore);

    // Single sign-on from the session made before the restart: no login page, no consent page.
    const sso = await authorizeOverHttp({
      issuer: server!.url, clientId: client.clientId, redirectUri: REDIRECT_URI, scope: 'openid profile email', prompt: 'none', jar,
    });
    expect(sso.pages).toEqual([]);
    const ssoToken = await tokenRequest(tokenEndpoint(), client, {
      grant_type: 'authorization_code', code: sso.code, redirect_uri: REDIRECT_URI, code_verifier: sso.codeVerifier,
    });
    expect(ssoToken.status, JSON.stringify(ssoToken.body)).toBe(200);
    expect(decodeJwt(ssoToken.body.id_token!).payload.sub).toBe(subject);

    // The user created by a CLI command while the first server ran.
    const bobAuth = await authorizeOverHttp({
      issuer: server!.url, clientId: client.clientId, redirectUri: REDIRECT_URI,
      email: bob.email, password: bob.password, scope: 'openid email',
    });
    const bobToken = await tokenRequest(tokenEndpoint(), client, {
      grant_type: 'authorization_code', code: bobAuth.code, redirect_uri: REDIRECT_URI, code_verifier: bobAuth.codeVerifier,
    });
    expect(bobToken.status, JSON.stringify(bobToken.body)).toBe(200);
    const claims = decodeJwt(bobToken.body.id_token!).payload;
    expect(claims.sub).not.toBe(subject);
    const info = await fetch(new URL(new URL(discovery.userinfo_endpoint).pathname, server!.url), {
      headers: { authorization: `Bearer ${bobToken.body.access_token}` },
    });
    expect(info.status).toBe(200);
    expect(((await info.json()) as { email?: string }).email).toBe(bob.email);
  });

  it('picks up a key rotation made through the CLI on its reload timer', async () => {
    const rotated = (await cli(['keys', 'rotate'])) as { created: { kid: string; alg: string }[]; retired: string[] };
    const newKids = rotated.created.map((k) => k.kid);
    expect(newKids.length).toBeGreaterThan(0);
    const deadline = Date.now() + 8_000;
    let kids = await jwksKids();
    while (!newKids.every((k) => kids.includes(k)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      kids = await jwksKids();
    }
    expect(kids, 'new keys published within a few reload periods').toEqual(expect.arrayContaining(newKids));
    expect(kids, 'retired keys stay published').toEqual(expect.arrayContaining(kidsBefore));
  });
});
