// Two Gatehouse instances behind one issuer, sharing PostgreSQL and Redis: protocol state
// created on one instance is usable on the other, refresh-token reuse detected on one revokes
// the grant everywhere, and a key rotation reaches every instance through Redis pub/sub.
import crypto from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareTwoInstances, type TwoInstances } from '../helpers/two-instances.ts';
import { authorizeOverHttp, decodeJwt, tokenRequest, type ClientCredentials, type TokenResponse } from '../helpers/http-login.ts';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../helpers/postgres.ts';
import type { RunningServer } from '../helpers/server.ts';

// A Redis database of its own, flushed before and after, so no other suite sees these keys.
const REDIS_DB = 11;
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const SCOPE = 'openid profile email offline_access';

interface Discovery {
  issuer: string;
  token_endpoint: string;
  userinfo_endpoint: string;
  jwks_uri: string;
}

/** The same path on a given instance (endpoints are advertised with the issuer's origin). */
function on(server: RunningServer, endpoint: string): string {
  const u = new URL(endpoint);
  return new URL(u.pathname + u.search, server.url).href;
}

async function getJson<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: T;
  try {
    body = JSON.parse(text) as T;
  } catch {
    throw new Error(`${url} answered ${res.status} with non-JSON: ${text.slice(0, 300)}`);
  }
  return { status: res.status, body };
}

async function kidsOf(server: RunningServer, jwksUri: string): Promise<string[]> {
  const { status, body } = await getJson<JSONWebKeySet>(on(server, jwksUri), { headers: { 'cache-control': 'no-cache' } });
  expect(status).toBe(200);
  return body.keys.map((k) => String(k.kid));
}

interface KeyInfo {
  kid: string;
  alg: string;
  status: 'active' | 'retired';
  created_at: string;
  retired_at: string | null;
}

/** `keys list` prints `{ "keys": [...] }`, like every other list command of the CLI. */
function keyList(printed: unknown): KeyInfo[] {
  const keys = (printed as { keys?: unknown } | undefined)?.keys;
  if (!Array.isArray(keys)) throw new Error(`\`keys list\` printed no list of keys: ${JSON.stringify(printed)}`);
  return keys as KeyInfo[];
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not true after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!TEST_DATABASE_URL || !TEST_REDIS_URL)('two instances sharing PostgreSQL and Redis', () => {
  let cluster: TwoInstances;
  let a: RunningServer;
  let b: RunningServer;
  let env: Record<string, string>;
  let discovery: Discovery;
  const client: ClientCredentials = {
    clientId: `multi-${crypto.randomBytes(4).toString('hex')}`,
    clientSecret: crypto.randomBytes(24).toString('base64url'),
    authMethod: 'client_secret_basic',
  };
  const user = { email: `multi-${crypto.randomBytes(4).toString('hex')}@example.com`, password: 'correct horse battery staple 1' };

  const cli = (args: string[]): Promise<unknown> => cluster.cli(args);

  beforeAll(async () => {
      // Far longer than the test: a rotation seen within seconds can only have come over pub/sub.
    cluster = await prepareTwoInstances({ name: 'multi', redisDb: REDIS_DB, env: { KEYS_RELOAD_SECONDS: '600' } });
    env = cluster.env;
    await cli([
      'client', 'create', '--name', 'Multi-instance RP', '--redirect-uri', REDIRECT_URI,
      '--grant-type', 'authorization_code', '--grant-type', 'refresh_token',
      '--scope', SCOPE, '--auth-method', 'client_secret_basic',
      '--client-id', client.clientId, '--client-secret', client.clientSecret!,
    ]);
    await cli(['user', 'create', '--email', user.email, '--password', user.password, '--name', 'Multi Instance', '--verified']);

    [a, b] = await cluster.start();
    discovery = (await getJson<Discovery>(`${b.url}/.well-known/openid-configuration`)).body;
  });

  afterAll(async () => {
    const codes = (await cluster?.stop()) ?? [];
    expect(codes.filter((c) => c !== undefined && c !== 0), `server logs:
${cluster?.logs()}`).toEqual([]);
  });

  it('is ready on both instances and both advertise the one issuer', async () => {
    for (const s of [a, b]) {
      const res = await fetch(`${s.url}/readyz`);
      expect(res.status, `${s.url}/readyz`).toBe(200);
      await res.body?.cancel();
      const d = await getJson<Discovery>(`${s.url}/.well-known/openid-configuration`);
      expect(d.body.issuer).toBe(env.ISSUER);
    }
  });

  let refreshTokens: string[] = [];
  let latestAccessToken = '';

  it('signs in on A, redeems the code on B, serves userinfo on B', async () => {
    const auth = await authorizeOverHttp({
      issuer: env.ISSUER!, clientId: client.clientId, redirectUri: REDIRECT_URI,
      email: user.email, password: user.password, scope: SCOPE, prompt: 'consent', baseUrl: a.url,
    });
    expect(auth.pages).toEqual(['login', 'consent']);

    const token = await tokenRequest(on(b, discovery.token_endpoint), client, {
      grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT_URI, code_verifier: auth.codeVerifier,
    });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    expect(token.body.access_token).toBeTruthy();
    expect(token.body.refresh_token, 'offline_access with prompt=consent yields a refresh token').toBeTruthy();

    const jwks = createLocalJWKSet((await getJson<JSONWebKeySet>(on(b, discovery.jwks_uri))).body);
    const { payload } = await jwtVerify(token.body.id_token!, jwks, { issuer: env.ISSUER, audience: client.clientId });
    expect(payload.nonce).toBe(auth.nonce);

    const info = await getJson<Record<string, unknown>>(on(b, discovery.userinfo_endpoint), {
      headers: { authorization: `Bearer ${token.body.access_token}` },
    });
    expect(info.status, JSON.stringify(info.body)).toBe(200);
    expect(info.body.sub).toBe(payload.sub);
    expect(info.body.email).toBe(user.email);


    refreshTokens = [token.body.refresh_token!];
    latestAccessToken = token.body.access_token!;
  });

  it('refreshes on A, then on B, and reuse of a rotated refresh token on A revokes the grant on B', async () => {
    expect(refreshTokens).toHaveLength(1);
    const refresh = (server: RunningServer, rt: string): Promise<{ status: number; body: TokenResponse }> =>
      tokenRequest(on(server, discovery.token_endpoint), client, { grant_type: 'refresh_token', refresh_token: rt });

    const r1 = await refresh(a, refreshTokens[0]!);
    expect(r1.status, JSON.stringify(r1.body)).toBe(200);
    expect(r1.body.refresh_token, 'refresh tokens are rotated').toBeTruthy();
    expect(r1.body.refresh_token, 'refresh tokens are rotated').not.toBe(refreshTokens[0]);
    refreshTokens.push(r1.body.refresh_token!);

    const r2 = await refresh(b, refreshTokens[1]!);
    expect(r2.status, JSON.stringify(r2.body)).toBe(200);
    expect(r2.body.refresh_token).toBeTruthy();
    expect(r2.body.refresh_token).not.toBe(refreshTokens[1]);
    refreshTokens.push(r2.body.refresh_token!);
    latestAccessToken = r2.body.access_token!;

    const userinfo = (server: RunningServer) => fetch(on(server, discovery.userinfo_endpoint), { headers: { authorization: `Bearer ${latestAccessToken}` } });
    const before = await userinfo(b);
    expect(before.status).toBe(200);
    await before.body?.cancel();

    // Replaying the first (already rotated) refresh token is treated as theft: the whole grant goes.
    const reuse = await refresh(a, refreshTokens[0]!);
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe('invalid_grant');

    const current = await refresh(b, refreshTokens[2]!);
    expect(current.status, `the newest refresh token must be revoked too: ${JSON.stringify(current.body)}`).toBe(400);
    expect(current.body.error).toBe('invalid_grant');
    const after = await userinfo(b);
    expect(after.status, 'access tokens of the revoked grant stop working on the other instance').toBe(401);
    await after.body?.cancel();
  });

  it('publishes a rotated key on both instances within seconds and signs new ID tokens with it', async () => {
    const before = await kidsOf(a, discovery.jwks_uri);
    expect(await kidsOf(b, discovery.jwks_uri)).toEqual(before);
    const listed = keyList(await cli(['keys', 'list']));
    const activeBefore = listed.filter((k) => k.status === 'active');
    expect(activeBefore.some((k) => k.alg === 'RS256')).toBe(true);
    expect(listed.map((k) => k.kid).sort()).toEqual([...before].sort());

    const rotated = (await cli(['keys', 'rotate'])) as { created: { kid: string; alg: string }[]; retired: string[] };
    expect(rotated.created.length).toBeGreaterThan(0);
    expect(rotated.retired.sort()).toEqual(activeBefore.map((k) => k.kid).sort());
    const newKids = rotated.created.map((k) => k.kid);
    const newRsa = rotated.created.find((k) => k.alg === 'RS256');
    expect(newRsa, 'rotation creates a new RS256 key').toBeDefined();

    for (const s of [a, b]) {
      await waitFor(`${s.url} publishes the new keys`, async () => {
        const kids = await kidsOf(s, discovery.jwks_uri);
        return newKids.every((k) => kids.includes(k));
      }, 5_000);
      const kids = await kidsOf(s, discovery.jwks_uri);
      for (const old of rotated.retired) expect(kids, `retired key ${old} stays published on ${s.url}`).toContain(old);
    }

    const after = keyList(await cli(['keys', 'list']));
    for (const k of after) {
      if (newKids.includes(k.kid)) expect(k.status).toBe('active');
      if (rotated.retired.includes(k.kid)) {
        expect(k.status).toBe('retired');
        expect(k.retired_at).toBeTruthy();
      }
    }

    // A fresh sign-in, started on B and finished on A, redeemed on B.
    const auth = await authorizeOverHttp({
      issuer: env.ISSUER!, clientId: client.clientId, redirectUri: REDIRECT_URI,
      email: user.email, password: user.password, scope: 'openid email', baseUrl: b.url, continueBaseUrl: a.url,
    });
    const token = await tokenRequest(on(b, discovery.token_endpoint), client, {
      grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT_URI, code_verifier: auth.codeVerifier,
    });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    const { header } = decodeJwt(token.body.id_token!);
    expect(header.alg).toBe('RS256');
    expect(header.kid).toBe(newRsa!.kid);
    // ...and it verifies against the other instance's JWKS.
    const jwksA = createLocalJWKSet((await getJson<JSONWebKeySet>(on(a, discovery.jwks_uri))).body);
    await jwtVerify(token.body.id_token!, jwksA, { issuer: env.ISSUER, audience: client.clientId });

    // The code is single use across instances, and replaying it revokes what it issued.
    const replay = await tokenRequest(on(a, discovery.token_endpoint), client, {
      grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT_URI, code_verifier: auth.codeVerifier,
    });
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
    const info = await fetch(on(b, discovery.userinfo_endpoint), { headers: { authorization: `Bearer ${token.body.access_token}` } });
    expect(info.status, 'the access token issued for a replayed code is revoked').toBe(401);
    await info.body?.cancel();
  });
});
