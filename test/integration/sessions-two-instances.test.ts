// Sign-in sessions seen and revoked through two Gatehouse instances sharing PostgreSQL and Redis:
// the CLI and /account on either instance list the same sessions, and revoking one on one
// instance ends it (and its refresh token) on the other. Skipped (visibly) without
// TEST_DATABASE_URL and TEST_REDIS_URL.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareTwoInstances, type TwoInstances } from '../helpers/two-instances.ts';
import { authorizeOverHttp, CookieJar, parseForms, tokenRequest, type ClientCredentials } from '../helpers/http-login.ts';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../helpers/postgres.ts';
import type { RunningServer } from '../helpers/server.ts';

// A Redis database of its own, flushed before and after, so no other suite sees these keys.
const REDIS_DB = 10;
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const SCOPE = 'openid email offline_access';

interface AccountPage {
  status: number;
  location: string | null;
  /** Sessions offered a "Revoke" button (every one but the browser's own). */
  revocable: string[];
  /** How many sessions the page lists. */
  listed: number;
  /** The device labels of the listed sessions, in page order. */
  devices: string[];
}

describe.skipIf(!TEST_DATABASE_URL || !TEST_REDIS_URL)('sessions through two instances sharing PostgreSQL and Redis', () => {
  let cluster: TwoInstances;
  let a: RunningServer;
  let b: RunningServer;
  let env: Record<string, string>;
  const client: ClientCredentials = {
    clientId: `sessions-${crypto.randomBytes(4).toString('hex')}`,
    clientSecret: crypto.randomBytes(24).toString('base64url'),
    authMethod: 'client_secret_basic',
  };
  const user = { email: `sessions-${crypto.randomBytes(4).toString('hex')}@example.com`, password: 'correct horse battery staple 5' };

  const cli = (args: string[]): Promise<unknown> => cluster.cli(args);

  const listedByCli = async (): Promise<string[]> => {
    const out = (await cli(['session', 'list', '--user', user.email])) as { sessions: { id: string }[] };
    return out.sessions.map((s) => s.id).sort();
  };

  /** GET /account on one instance with a browser's cookies. */
  const accountPage = async (instance: RunningServer, jar: CookieJar): Promise<AccountPage> => {
    const url = new URL('/account', env.ISSUER);
    const res = await fetch(new URL(url.pathname, instance.url), { headers: { cookie: jar.header(url), accept: 'text/html' }, redirect: 'manual' });
    jar.store(url, res.headers.getSetCookie());
    const html = await res.text();
    const section = /<ul class="factor-list sessions">([\s\S]*?)<\/ul>/.exec(html)?.[1] ?? '';
    return {
      status: res.status,
      location: res.headers.get('location'),
      revocable: parseForms(html)
        .filter((f) => /^\/account\/sessions\/[^/]+\/revoke$/.test(f.action))
        .map((f) => decodeURIComponent(f.action.split('/')[3]!))
        .sort(),
      listed: (section.match(/<li>/g) ?? []).length,
      devices: [...section.matchAll(/<strong>([\s\S]*?)<\/strong>/g)].map((m) => m[1]!.trim()),
    };
  };

  const revokeOn = async (instance: RunningServer, jar: CookieJar, sessionId: string): Promise<{ status: number; location: string | null }> => {
    const url = new URL('/account', env.ISSUER);
    const page = await fetch(new URL(url.pathname, instance.url), { headers: { cookie: jar.header(url), accept: 'text/html' } });
    jar.store(url, page.headers.getSetCookie());
    const action = `/account/sessions/${encodeURIComponent(sessionId)}/revoke`;
    const form = parseForms(await page.text()).find((f) => f.action === action);
    if (!form) throw new Error(`no Revoke button for session ${sessionId} on ${instance.url}`);
    const target = new URL(action, env.ISSUER);
    const res = await fetch(new URL(action, instance.url), {
      method: 'POST',
      headers: { cookie: jar.header(target), 'content-type': 'application/x-www-form-urlencoded', origin: env.ISSUER!, accept: 'text/html' },
      body: new URLSearchParams(form.hidden),
      redirect: 'manual',
    });
    await res.arrayBuffer();
    return { status: res.status, location: res.headers.get('location') };
  };

  beforeAll(async () => {
    cluster = await prepareTwoInstances({ name: 'sessions', redisDb: REDIS_DB });
    env = cluster.env;
    await cli([
      'client', 'create', '--name', 'Two-instance RP', '--redirect-uri', REDIRECT_URI, '--scope', SCOPE,
      '--client-id', client.clientId, '--client-secret', client.clientSecret!,
    ]);
    await cli(['user', 'create', '--email', user.email, '--password', user.password, '--name', 'Two Instances', '--verified']);
    [a, b] = await cluster.start();
  });

  afterAll(async () => {
    const codes = (await cluster?.stop()) ?? [];
    expect(codes.filter((c) => c !== undefined && c !== 0), `server logs:
${cluster?.logs()}`).toEqual([]);
  });

  // Browser X signs in to an app on A; browser Y to its account page on B.
  const appBrowser = new CookieJar();
  const accountBrowser = new CookieJar();
  let refreshToken = '';
  let appSession = '';
  let accountSession = '';

  it('lists the same sessions through the CLI and /account on both instances', async () => {
    const auth = await authorizeOverHttp({
      issuer: env.ISSUER!, clientId: client.clientId, redirectUri: REDIRECT_URI, email: user.email, password: user.password,
      scope: SCOPE, prompt: 'consent', baseUrl: a.url, jar: appBrowser,
    });
    const token = await tokenRequest(`${a.url}/token`, client, { grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT_URI, code_verifier: auth.codeVerifier });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    refreshToken = token.body.refresh_token!;
    expect(refreshToken).toBeTruthy();

    await authorizeOverHttp({
      issuer: env.ISSUER!, clientId: 'gatehouse-account', redirectUri: `${env.ISSUER}/account/callback`, email: user.email, password: user.password,
      scope: 'openid', baseUrl: b.url, jar: accountBrowser,
    });

    const all = await listedByCli();
    expect(all).toHaveLength(2);

    const pages = {
      appOnA: await accountPage(a, appBrowser),
      appOnB: await accountPage(b, appBrowser),
      accountOnA: await accountPage(a, accountBrowser),
      accountOnB: await accountPage(b, accountBrowser),
    };
    for (const [name, page] of Object.entries(pages)) {
      expect(page.status, name).toBe(200);
      expect(page.listed, name).toBe(2);
      expect(page.revocable, name).toHaveLength(1);
    }
    // Either instance shows a browser the same list.
    expect(pages.appOnB.revocable).toEqual(pages.appOnA.revocable);
    expect(pages.appOnB.devices).toEqual(pages.appOnA.devices);
    expect(pages.accountOnB.revocable).toEqual(pages.accountOnA.revocable);
    expect(pages.accountOnB.devices).toEqual(pages.accountOnA.devices);
    // Each browser is offered the other's session; together they are the CLI's list.
    accountSession = pages.appOnA.revocable[0]!;
    appSession = pages.accountOnA.revocable[0]!;
    expect(appSession).not.toBe(accountSession);
    expect([appSession, accountSession].sort()).toEqual(all);
  });

  it('a revoke on B ends the session, its refresh token and its sign-in on A', async () => {
    expect(appSession).toBeTruthy();
    const revoked = await revokeOn(b, accountBrowser, appSession);
    expect(revoked.status).toBe(303);
    expect(revoked.location).toContain('done=session-revoked');

    const refreshed = await tokenRequest(`${a.url}/token`, client, { grant_type: 'refresh_token', refresh_token: refreshToken });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(400);
    expect(refreshed.body.error).toBe('invalid_grant');

    const signedOut = await accountPage(a, appBrowser);
    expect(signedOut.status, 'the revoked browser is asked to sign in again on A').toBe(302);
    expect(signedOut.location).toContain('/auth?');

    expect(await listedByCli()).toEqual([accountSession]);
    for (const instance of [a, b]) {
      const page = await accountPage(instance, accountBrowser);
      expect(page.status).toBe(200);
      expect(page.listed).toBe(1);
      expect(page.revocable).toEqual([]);
    }
  });
});
