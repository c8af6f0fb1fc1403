// Refresh-token rotation on PostgreSQL and Redis, with two instances behind one issuer: every
// token handed out is recorded with its binding, the token it replaced is recorded as rotated into
// it, and a rotated token presented again ends the grant, also when several requests present the
// same token at once. Within a minute of being marked used, the app's grant is not written again by
// either instance. Skipped (visibly) without TEST_DATABASE_URL and TEST_REDIS_URL.
import crypto from 'node:crypto';
import knexFactory, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareTwoInstances, type TwoInstances } from '../helpers/two-instances.ts';
import { authorizeOverHttp, tokenRequest, type ClientCredentials, type TokenResponse } from '../helpers/http-login.ts';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../helpers/postgres.ts';
import type { RunningServer } from '../helpers/server.ts';

// A Redis database of its own, flushed before and after, so no other suite sees these keys.
const REDIS_DB = 7;
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const SCOPE = 'openid email offline_access';

const sha256 = (value: string) => crypto.createHash('sha256').update(value).digest('hex');

interface BindingRow {
  token_hash: string;
  grant_id: string | null;
  rotated_at: Date | null;
  successor_hash: string | null;
}

describe.skipIf(!TEST_DATABASE_URL || !TEST_REDIS_URL)('refresh token rotation on PostgreSQL and Redis', () => {
  let cluster: TwoInstances;
  let a: RunningServer;
  let b: RunningServer;
  let db: Knex;
  const client: ClientCredentials = {
    clientId: `rotation-${crypto.randomBytes(4).toString('hex')}`,
    clientSecret: crypto.randomBytes(24).toString('base64url'),
    authMethod: 'client_secret_basic',
  };
  const user = { email: `rotation-${crypto.randomBytes(4).toString('hex')}@example.com`, password: 'correct horse battery staple 1' };

  const refresh = (server: RunningServer, refreshToken: string): Promise<{ status: number; body: TokenResponse }> =>
    tokenRequest(`${server.url}/token`, client, { grant_type: 'refresh_token', refresh_token: refreshToken });

  /** Signs in on A, redeems the code on B; returns the first refresh token and its grant. */
  const signIn = async (): Promise<{ refreshToken: string; grantId: string }> => {
    const auth = await authorizeOverHttp({
      issuer: cluster.env.ISSUER!, clientId: client.clientId, redirectUri: REDIRECT_URI,
      email: user.email, password: user.password, scope: SCOPE, prompt: 'consent', baseUrl: a.url,
    });
    const token = await tokenRequest(`${b.url}/token`, client, {
      grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT_URI, code_verifier: auth.codeVerifier,
    });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    const refreshToken = token.body.refresh_token!;
    expect(refreshToken, 'offline_access with prompt=consent yields a refresh token').toBeTruthy();
    const row = await binding(refreshToken);
    expect(row, 'the issued refresh token is recorded').toBeDefined();
    return { refreshToken, grantId: row!.grant_id! };
  };

  const introspect = async (token: string): Promise<{ active: boolean; exp: number }> => {
    const res = await tokenRequest(`${a.url}/token/introspection`, client, { token, token_type_hint: 'refresh_token' });
    expect(res.status).toBe(200);
    const body = res.body as unknown as { active: boolean; exp: number };
    expect(body.active).toBe(true);
    return body;
  };

  const binding = (refreshToken: string): Promise<BindingRow | undefined> =>
    db<BindingRow>('token_bindings').where({ token_hash: sha256(refreshToken) }).first();

  const lastUsed = async (grantId: string): Promise<Date | null> =>
    ((await db('account_grants').where({ grant_id: grantId }).first()) as { last_used_at: Date | null } | undefined)?.last_used_at ?? null;

  beforeAll(async () => {
    cluster = await prepareTwoInstances({ name: 'rotation', redisDb: REDIS_DB });
    db = knexFactory({ client: 'pg', connection: cluster.env.DATABASE_URL, pool: { min: 0, max: 2 } });
    await cluster.cli([
      'client', 'create', '--name', 'Rotation RP', '--redirect-uri', REDIRECT_URI,
      '--grant-type', 'authorization_code', '--grant-type', 'refresh_token',
      '--scope', SCOPE, '--auth-method', 'client_secret_basic',
      '--client-id', client.clientId, '--client-secret', client.clientSecret!,
    ]);
    await cluster.cli(['user', 'create', '--email', user.email, '--password', user.password, '--name', 'Rotation Person', '--verified']);
    [a, b] = await cluster.start();
  });

  afterAll(async () => {
    await db?.destroy();
    const codes = (await cluster?.stop()) ?? [];
    expect(codes.filter((c) => c !== undefined && c !== 0), `server logs:\n${cluster?.logs()}`).toEqual([]);
  });

  it('records each rotation: the old token points at its successor, which is bound like it', async () => {
    const { refreshToken } = await signIn();
    const firstExp = (await introspect(refreshToken)).exp;
    const rotated = await refresh(a, refreshToken);
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    const successor = rotated.body.refresh_token!;

    const old = await db('token_bindings').where({ token_hash: sha256(refreshToken) }).first();
    expect(old.rotated_at).not.toBeNull();
    expect(old.successor_hash).toBe(sha256(successor));
    // No grace window for this client: the answer is not kept.
    expect(old.successor_ciphertext).toBeNull();
    expect(old.grace_until).toBeNull();
    const next = await db('token_bindings').where({ token_hash: sha256(successor) }).first();
    expect(next).toMatchObject({
      account_id: old.account_id, client_id: client.clientId, session_uid: old.session_uid, grant_id: old.grant_id,
      fingerprint: old.fingerprint, ua_family: old.ua_family, remember: old.remember, rotated_at: null, successor_hash: null,
    });
    // Bindings are swept at the token's expiry, so they carry it: the first token's and the successor's.
    expect(Math.abs(new Date(old.expires_at).getTime() - firstExp * 1000)).toBeLessThanOrEqual(1000);
    expect(Math.abs(new Date(next.expires_at).getTime() - (await introspect(successor)).exp * 1000)).toBeLessThanOrEqual(1000);

    // The successor works on the other instance; the rotated token is reuse and ends the grant.
    const again = await refresh(b, successor);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    const reuse = await refresh(a, refreshToken);
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe('invalid_grant');
    expect((await refresh(b, again.body.refresh_token!)).status, 'the newest token went with the grant').toBe(400);
  });

  it('one token presented several times at once: each token handed out is bound, and the token is rotated afterwards', async () => {
    const { refreshToken } = await signIn();
    const answers = await Promise.all([refresh(a, refreshToken), refresh(b, refreshToken), refresh(a, refreshToken), refresh(b, refreshToken)]);
    const succeeded = answers.filter((r) => r.status === 200);
    expect(succeeded.length, JSON.stringify(answers.map((r) => r.body))).toBeGreaterThanOrEqual(1);
    for (const refused of answers.filter((r) => r.status !== 200)) expect(refused.body.error).toBe('invalid_grant');

    const old = await binding(refreshToken);
    expect(old?.rotated_at, 'the presented token is recorded as rotated').not.toBeNull();
    const issued = succeeded.map((r) => r.body.refresh_token!);
    expect(new Set(issued).size).toBe(issued.length);
    expect(issued.map(sha256)).toContain(old?.successor_hash);
    for (const token of issued) expect(await binding(token), 'every refresh token handed out has its binding').toBeDefined();

    // Presented once more, it is reuse: the grant and every token issued under it end.
    const reuse = await refresh(a, refreshToken);
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe('invalid_grant');
    for (const token of issued) expect((await refresh(b, token)).status).toBe(400);
  });

  it('does not mark the grant used again within the minute, on any instance', async () => {
    const { refreshToken, grantId } = await signIn();
    const signedIn = await lastUsed(grantId);
    expect(signedIn, 'a new grant is marked used when it is recorded').not.toBeNull();

    // Within the minute neither instance writes again.
    let token = refreshToken;
    for (const server of [a, b, a, b]) {
      const r = await refresh(server, token);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      token = r.body.refresh_token!;
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(await lastUsed(grantId)).toEqual(signedIn);
  });
});
