// Two Gatehouse instances behind one issuer, sharing PostgreSQL and Redis, enforce one sign-in
// rate limit together: failed passwords for one account from one address count against the same
// budget whichever instance receives them. Skipped (visibly) without TEST_DATABASE_URL and
// TEST_REDIS_URL.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareTwoInstances, type TwoInstances } from '../helpers/two-instances.ts';
import { authorizeOverHttp, CookieJar, decodeEntities, parseForms, pkcePair } from '../helpers/http-login.ts';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../helpers/postgres.ts';
import type { RunningServer } from '../helpers/server.ts';

// A Redis database of its own, flushed before and after, so no other suite sees these keys.
const REDIS_DB = 9;
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const LIMIT = 3;

interface LoginAnswer {
  status: number;
  retryAfter: string | null;
  text: string;
  /** Where a successful sign-in sent the browser next (303 Location). */
  location: string | null;
}

function textOf(html: string): string {
  const main = /<main\b[^>]*>([\s\S]*?)<\/main>/i.exec(html)?.[1] ?? html;
  return decodeEntities(main.replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ').trim();
}

describe.skipIf(!TEST_DATABASE_URL || !TEST_REDIS_URL)('sign-in rate limit shared by two instances', () => {
  let cluster: TwoInstances;
  let a: RunningServer;
  let b: RunningServer;
  let env: Record<string, string>;
  const clientId = `rl-${crypto.randomBytes(4).toString('hex')}`;
  const clientSecret = crypto.randomBytes(24).toString('base64url');
  const tag = crypto.randomBytes(4).toString('hex');
  const victim = { email: `victim-${tag}@example.com`, password: 'correct horse battery staple 7' };
  const bystander = { email: `bystander-${tag}@example.com`, password: 'another fine passphrase 8' };

  const cli = (args: string[]): Promise<unknown> => cluster.cli(args);

  /**
   * One sign-in attempt handled entirely by `instance`: the authorization request, the login
   * page and the form post. Returns the answer to the post.
   */
  const attempt = async (instance: RunningServer, creds: { email: string; password: string }): Promise<LoginAnswer> => {
    const jar = new CookieJar();
    const issuer = new URL(env.ISSUER!);
    // Every URL the provider writes is read as the issuer's and sent to `instance`, as a load
    // balancer pinned to that instance would.
    const onInstance = (u: URL) => (u.origin === issuer.origin ? new URL(u.pathname + u.search, instance.url) : u);
    const { codeChallenge } = pkcePair();
    let url = new URL('/auth', issuer);
    url.search = new URLSearchParams({
      client_id: clientId, redirect_uri: REDIRECT_URI, response_type: 'code', scope: 'openid',
      state: crypto.randomBytes(8).toString('hex'), code_challenge: codeChallenge, code_challenge_method: 'S256',
    }).toString();
    let html: string;
    for (let i = 0; ; i++) {
      if (i > 5) throw new Error('too many redirects before the login page');
      const res = await fetch(onInstance(url), { headers: { accept: 'text/html', cookie: jar.header(url, { crossSite: i === 0 }) }, redirect: 'manual' });
      jar.store(url, res.headers.getSetCookie());
      const location = res.headers.get('location');
      if (location && res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        url = new URL(location, url);
        continue;
      }
      html = await res.text();
      expect(res.status, `${url.href}: ${textOf(html)}`).toBe(200);
      break;
    }
    const form = parseForms(html).find((f) => f.fields.has('email') && f.fields.has('password'));
    if (!form) throw new Error(`no login form at ${url.href}: ${textOf(html)}`);
    const body = new URLSearchParams(form.hidden);
    body.set('email', creds.email);
    body.set('password', creds.password);
    const action = new URL(form.action, url);
    const res = await fetch(onInstance(action), {
      method: 'POST',
      redirect: 'manual',
      headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded', origin: issuer.origin, referer: url.href, cookie: jar.header(action) },
      body,
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), location: res.headers.get('location'), text: textOf(await res.text()) };
  };

  beforeAll(async () => {
    cluster = await prepareTwoInstances({ name: 'rl2', redisDb: REDIS_DB, env: { RATE_LIMIT_LOGIN_ACCOUNT_IP: `${LIMIT}/900` } });
    env = cluster.env;
    await cli([
      'client', 'create', '--name', 'Rate-limited RP', '--redirect-uri', REDIRECT_URI, '--first-party',
      '--client-id', clientId, '--client-secret', clientSecret,
    ]);
    await cli(['user', 'create', '--email', victim.email, '--password', victim.password, '--verified']);
    await cli(['user', 'create', '--email', bystander.email, '--password', bystander.password, '--verified']);

    [a, b] = await cluster.start();
  });

  afterAll(async () => {
    const codes = (await cluster?.stop()) ?? [];
    expect(codes.filter((c) => c !== undefined && c !== 0), `server logs:
${cluster?.logs()}`).toEqual([]);
  });

  it('counts failures on A and on B against one limit', async () => {
    const wrong = { email: victim.email, password: 'not the right password' };
    // LIMIT failures, split across the instances: A, B, A. Neither instance alone reaches LIMIT.
    const failures = [await attempt(a, wrong), await attempt(b, wrong), await attempt(a, wrong)];
    for (const f of failures) {
      expect(f.status, f.text).toBe(401);
      expect(f.text).toContain('Incorrect email or password.');
    }

    // Both instances now refuse the next attempt, even with the right password.
    for (const [name, instance, creds] of [['B', b, wrong], ['A', a, victim], ['B', b, victim]] as const) {
      const limited = await attempt(instance, creds);
      expect(limited.status, `instance ${name}: ${limited.text}`).toBe(429);
      expect(Number(limited.retryAfter), `instance ${name}: Retry-After`).toBeGreaterThan(0);
      expect(Number(limited.retryAfter)).toBeLessThanOrEqual(900);
      expect(limited.text).toMatch(/too many attempts/i);
    }
  });

  it('limits that account from that address only: another account still signs in on either instance', async () => {
    for (const instance of [a, b]) {
      const answer = await attempt(instance, bystander);
      expect(answer.status, answer.text).toBe(303);
      expect(answer.location).toBeTruthy();
    }
    const ok = await authorizeOverHttp({ issuer: env.ISSUER!, clientId, redirectUri: REDIRECT_URI, scope: 'openid', email: bystander.email, password: bystander.password, baseUrl: b.url });
    expect(ok.code).toBeTruthy();
  });
});
