// Sessions and the token lifecycle against a running Gatehouse, driven over HTTP like two
// browsers and a few apps would: revoking a session in /account ends its refresh token and tells
// the app by back-channel logout (as RP-initiated logout does), "Remember me" sets cookie and
// token lifetimes, refresh-token reuse ends the grant and the session and mails the user, the
// grace window replays a lost answer, device fingerprints are enforced by policy, and DPoP
// clients must prove their key.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import * as jose from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeOverHttp, CookieJar, parseForms, type AuthorizeResult } from '../helpers/http-login.ts';
import { startMailSink, type MailSink } from '../helpers/mail.ts';
import { createUser, gatehouse, type CreatedUser } from '../helpers/rp.ts';
import { runCli, startServer, tempDataDir, testSecrets, type RunningServer } from '../helpers/server.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';

const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const POST_LOGOUT_URI = 'http://127.0.0.1:9/logged-out';
const SCOPE = 'openid email offline_access';
const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36';
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
const MOBILE = 'GatehouseMobile/1.0 (iPhone; iOS 17.2)';
const OTHER_LIBRARY = 'okhttp/4.12.0';
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const REUSE_SUBJECT = 'We signed you out of an app';
const NEW_DEVICE_SUBJECT = 'was used from another device';

interface RegisteredClient {
  clientId: string;
  secret?: string;
}

interface TokenAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** The app side of back-channel logout: records every logout token POSTed to it. */
interface LogoutReceiver {
  uri: string;
  tokens: string[];
  waitForToken(match: (payload: jose.JWTPayload) => boolean, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

async function startLogoutReceiver(): Promise<LogoutReceiver> {
  const tokens: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => { body += chunk.toString(); });
    req.on('end', () => {
      const token = new URLSearchParams(body).get('logout_token');
      if (req.method === 'POST' && token) tokens.push(token);
      res.writeHead(200, { 'cache-control': 'no-store' });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  return {
    uri: `http://127.0.0.1:${port}/backchannel-logout`,
    tokens,
    async waitForToken(match, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = tokens.find((t) => match(jose.decodeJwt(t)));
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no matching logout token within ${timeoutMs} ms (received ${tokens.length})`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** POST a form to the token endpoint family as an app would, with its own headers. */
async function postForm(url: string, form: Record<string, string>, opts: { client: RegisteredClient; userAgent?: string; headers?: Record<string, string> }): Promise<TokenAnswer & { headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'user-agent': opts.userAgent ?? 'node', ...opts.headers };
  const body = new URLSearchParams(form);
  if (opts.client.secret !== undefined) {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(opts.client.clientId)}:${encodeURIComponent(opts.client.secret)}`).toString('base64')}`;
  } else {
    body.set('client_id', opts.client.clientId);
  }
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** A DPoP key pair and proofs made with it (RFC 9449). */
async function dpopKey(): Promise<{ proof(htu: string, nonce?: string): Promise<string> }> {
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
  const jwk = await jose.exportJWK(publicKey);
  return {
    proof: (htu, nonce) => new jose.SignJWT({ htm: 'POST', htu, jti: crypto.randomUUID(), ...(nonce ? { nonce } : {}) })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .setIssuedAt()
      .sign(privateKey),
  };
}

function secondsUntil(epochMs: number | undefined): number {
  if (epochMs === undefined) throw new Error('cookie has no expiry');
  return (epochMs - Date.now()) / 1000;
}

/** One running Gatehouse with the apps every scenario uses. */
interface Deployment {
  server: RunningServer;
  dataDir: string;
  tokenEndpoint: string;
  web: RegisteredClient;
  mobile: RegisteredClient;
  spa: RegisteredClient;
  dpop: RegisteredClient;
}

const GRACE_SECONDS = 3;
let userCounter = 0;

async function deploy(mail: MailSink, receiver: LogoutReceiver, env: Record<string, string> = {}): Promise<Deployment> {
  const dataDir = tempDataDir('gh-e2e-sessions-');
  const server = await startServer({
    DATA_DIR: dataDir,
    SMTP_URL: mail.url,
    MAIL_FROM: 'Gatehouse <no-reply@example.test>',
    BACKCHANNEL_LOGOUT_ALLOW_PRIVATE: 'true',
    ...testSecrets(),
    ...env,
  });
  const create = async (args: string[]): Promise<RegisteredClient> => {
    const out = await gatehouse<{ client_id: string; client_secret?: string }>(server.env, [
      'client', 'create', '--redirect-uri', REDIRECT_URI, '--post-logout-redirect-uri', POST_LOGOUT_URI, '--scope', SCOPE, ...args,
    ]);
    return { clientId: out.client_id, secret: out.client_secret };
  };
  const [web, mobile, spa, dpop] = await Promise.all([
    create(['--name', 'Web Mail', '--backchannel-logout-uri', receiver.uri]),
    create(['--name', 'Mobile Mail', '--auth-method', 'none', '--refresh-grace-seconds', String(GRACE_SECONDS)]),
    create(['--name', 'Browser Mail', '--auth-method', 'none']),
    create(['--name', 'Bound Mail', '--auth-method', 'none', '--dpop']),
  ]);
  return { server, dataDir, tokenEndpoint: `${server.url}/token`, web, mobile, spa, dpop };
}

async function newUser(d: Deployment, label: string): Promise<CreatedUser> {
  userCounter += 1;
  return createUser(d.server.env, { email: `${label}-${userCounter}-${crypto.randomBytes(3).toString('hex')}@example.test`, password: 'a long enough passphrase', name: `${label} person`, verified: true });
}

/** Signs the user in to an app in a browser (a cookie jar) and returns the authorization code. */
function signIn(d: Deployment, client: RegisteredClient, user: CreatedUser, opts: { remember?: boolean; jar?: CookieJar } = {}): Promise<AuthorizeResult> {
  return authorizeOverHttp({
    issuer: d.server.url, clientId: client.clientId, redirectUri: REDIRECT_URI, email: user.email, password: user.password,
    scope: SCOPE, prompt: 'consent', remember: opts.remember, jar: opts.jar,
  });
}

function exchange(d: Deployment, client: RegisteredClient, auth: AuthorizeResult, opts: { userAgent?: string; headers?: Record<string, string> } = {}) {
  return postForm(d.tokenEndpoint, { grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT_URI, code_verifier: auth.codeVerifier }, { client, ...opts });
}

function refresh(d: Deployment, client: RegisteredClient, refreshToken: string, opts: { userAgent?: string; headers?: Record<string, string> } = {}) {
  return postForm(d.tokenEndpoint, { grant_type: 'refresh_token', refresh_token: refreshToken }, { client, ...opts });
}

/** A signed-in app: its code exchanged, tokens in hand. */
async function signedInApp(d: Deployment, client: RegisteredClient, user: CreatedUser, opts: { remember?: boolean; userAgent?: string } = {}) {
  const auth = await signIn(d, client, user, opts);
  const tokens = await exchange(d, client, auth, { userAgent: opts.userAgent });
  expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
  expect(typeof tokens.body.refresh_token, 'offline_access with prompt=consent yields a refresh token').toBe('string');
  return { auth, tokens: tokens.body };
}

async function userinfoStatus(d: Deployment, accessToken: unknown): Promise<number> {
  const res = await fetch(`${d.server.url}/me`, { headers: { authorization: `Bearer ${String(accessToken)}` } });
  await res.arrayBuffer();
  return res.status;
}

async function getPage(d: Deployment, jar: CookieJar, path: string): Promise<{ status: number; html: string; location: string | null }> {
  const url = new URL(path, d.server.url);
  const res = await fetch(url, { headers: { cookie: jar.header(url), accept: 'text/html' }, redirect: 'manual' });
  jar.store(url, res.headers.getSetCookie());
  return { status: res.status, html: await res.text(), location: res.headers.get('location') };
}

async function submitForm(d: Deployment, jar: CookieJar, action: string, fields: [string, string][]): Promise<{ status: number; location: string | null; html: string }> {
  const url = new URL(action, d.server.url);
  const res = await fetch(url, {
    method: 'POST',
    headers: { cookie: jar.header(url), 'content-type': 'application/x-www-form-urlencoded', origin: d.server.url, accept: 'text/html' },
    body: new URLSearchParams(fields),
    redirect: 'manual',
  });
  jar.store(url, res.headers.getSetCookie());
  return { status: res.status, location: res.headers.get('location'), html: await res.text() };
}

/** Signs a browser in to /account (the built-in first-party client) and returns its jar. */
async function signInToAccount(d: Deployment, user: CreatedUser, jar = new CookieJar()): Promise<CookieJar> {
  await authorizeOverHttp({ issuer: d.server.url, clientId: 'gatehouse-account', redirectUri: `${d.server.url}/account/callback`, email: user.email, password: user.password, scope: 'openid', jar });
  const page = await getPage(d, jar, '/account');
  expect(page.status).toBe(200);
  expect(page.html).toContain('Where you are signed in');
  return jar;
}

/** The session ids /account offers a "Revoke" button for. */
function revocableSessions(html: string): { id: string; action: string; hidden: [string, string][] }[] {
  return parseForms(html)
    .filter((f) => /^\/account\/sessions\/[^/]+\/revoke$/.test(f.action))
    .map((f) => ({ id: decodeURIComponent(f.action.split('/')[3]!), action: f.action, hidden: f.hidden }));
}

async function introspect(d: Deployment, client: RegisteredClient, token: string): Promise<Record<string, unknown>> {
  const res = await postForm(`${d.server.url}/token/introspection`, { token }, { client });
  expect(res.status).toBe(200);
  return res.body;
}

async function sessionIds(d: Deployment, user: CreatedUser): Promise<string[]> {
  const out = await gatehouse<{ sessions: { id: string }[] }>(d.server.env, ['session', 'list', '--user', user.email]);
  return out.sessions.map((s) => s.id);
}

async function auditRows(d: Deployment): Promise<{ event_type: string; outcome: string; account_id: string | null; client_id: string | null; details: Record<string, unknown> }[]> {
  // The embedded database admits one process: read it once the server has stopped.
  await d.server.stop();
  const db = await openDatabase(loadConfig({ DATA_DIR: d.dataDir }));
  try {
    return await db.knex('audit_events').select('event_type', 'outcome', 'account_id', 'client_id', 'details').orderBy('id');
  } finally {
    await db.close();
  }
}

let mail: MailSink;
let receiver: LogoutReceiver;
let main: Deployment;
const deployments: Deployment[] = [];

beforeAll(async () => {
  [mail, receiver] = await Promise.all([startMailSink(), startLogoutReceiver()]);
  main = await deploy(mail, receiver);
  deployments.push(main);
});

afterAll(async () => {
  for (const d of deployments) {
    const code = await d.server.stop();
    if (code !== undefined && code !== 0 && code !== null) console.error(`server exited with ${code}:\n${d.server.logs()}`);
    fs.rmSync(d.dataDir, { recursive: true, force: true });
  }
  await mail?.close();
  await receiver?.close();
});

describe('revoking a session', () => {
  it('in /account from another browser ends its refresh token and sends the app a logout token', async () => {
    const user = await newUser(main, 'revoke');
    // Browser A signs in to the web app; browser B to the account page.
    const app = await signedInApp(main, main.web, user);
    const sid = jose.decodeJwt(String(app.tokens.id_token)).sid;
    expect(typeof sid).toBe('string');
    const accountJar = await signInToAccount(main, user);

    const page = await getPage(main, accountJar, '/account');
    const others = revocableSessions(page.html);
    expect(others, 'B sees A\'s session with a Revoke button, and none for itself').toHaveLength(1);
    expect((await sessionIds(main, user)).sort()).toHaveLength(2);

    const revoked = await submitForm(main, accountJar, others[0]!.action, others[0]!.hidden);
    expect(revoked.status).toBe(303);
    expect(revoked.location).toContain('done=session-revoked');

    const after = await refresh(main, main.web, String(app.tokens.refresh_token));
    expect(after.status).toBe(400);
    expect(after.body.error).toBe('invalid_grant');
    expect(await userinfoStatus(main, app.tokens.access_token)).toBe(401);
    expect(await sessionIds(main, user)).not.toContain(others[0]!.id);

    const logoutToken = await receiver.waitForToken((p) => p.sid === sid);
    const { payload, protectedHeader } = await jose.jwtVerify(logoutToken, jose.createRemoteJWKSet(new URL(`${main.server.url}/jwks`)), {
      issuer: main.server.url,
      audience: main.web.clientId,
      typ: 'logout+jwt',
    });
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload.events).toEqual({ [BACKCHANNEL_EVENT]: {} });
    expect(payload.sid).toBe(sid);
    expect(payload.sub).toBe(jose.decodeJwt(String(app.tokens.id_token)).sub);
    expect(payload.nonce).toBeUndefined();
    expect(typeof payload.jti).toBe('string');

    // B is untouched.
    expect((await getPage(main, accountJar, '/account')).status).toBe(200);
  });

  it('by RP-initiated logout sends the app a logout token too', async () => {
    const user = await newUser(main, 'rplogout');
    const app = await signedInApp(main, main.web, user, { remember: false });
    const sid = jose.decodeJwt(String(app.tokens.id_token)).sid;
    const url = new URL('/session/end', main.server.url);
    url.search = new URLSearchParams({ client_id: main.web.clientId, id_token_hint: String(app.tokens.id_token), post_logout_redirect_uri: POST_LOGOUT_URI }).toString();
    const prompt = await getPage(main, app.auth.jar, url.pathname + url.search);
    expect(prompt.status).toBe(200);
    const form = parseForms(prompt.html).find((f) => f.hidden.some(([name]) => name === 'xsrf'));
    expect(form, 'the sign-out confirmation form').toBeDefined();
    const done = await submitForm(main, app.auth.jar, form!.action, [...form!.hidden, ['logout', 'yes']]);
    expect(done.status).toBe(303);
    expect(done.location).toContain(POST_LOGOUT_URI);

    const logoutToken = await receiver.waitForToken((p) => p.sid === sid);
    const { payload } = await jose.jwtVerify(logoutToken, jose.createRemoteJWKSet(new URL(`${main.server.url}/jwks`)), { issuer: main.server.url, audience: main.web.clientId });
    expect(payload.events).toEqual({ [BACKCHANNEL_EVENT]: {} });
  });
});

describe('"Remember me"', () => {
  it('unchecked: a browser-session cookie, 15-minute access tokens and 1-hour refresh tokens', async () => {
    const user = await newUser(main, 'short');
    const app = await signedInApp(main, main.web, user, { remember: false });
    const session = app.auth.jar.list().find((c) => c.name === '_session');
    expect(session, 'the provider session cookie').toBeDefined();
    expect(session!.expires, 'no Expires: the cookie ends with the browser').toBeUndefined();

    expect(app.tokens.expires_in).toBe(900);
    const rt = await introspect(main, main.web, String(app.tokens.refresh_token));
    expect(rt.active).toBe(true);
    expect(Number(rt.exp) - Number(rt.iat)).toBe(3600);

    const next = await refresh(main, main.web, String(app.tokens.refresh_token));
    expect(next.status).toBe(200);
    expect(next.body.expires_in).toBe(900);
    const rotated = await introspect(main, main.web, String(next.body.refresh_token));
    expect(Number(rotated.exp) - Number(rotated.iat)).toBe(3600);
  });

  it('checked: a 14-day cookie, 1-day opaque access tokens and 14-day refresh tokens', async () => {
    const user = await newUser(main, 'long');
    const app = await signedInApp(main, main.web, user, { remember: true });
    const session = app.auth.jar.list().find((c) => c.name === '_session');
    expect(session).toBeDefined();
    expect(secondsUntil(session!.expires)).toBeGreaterThan(14 * 86400 - 120);
    expect(secondsUntil(session!.expires)).toBeLessThanOrEqual(14 * 86400);

    expect(app.tokens.expires_in).toBe(86400);
    const rt = await introspect(main, main.web, String(app.tokens.refresh_token));
    expect(Number(rt.exp) - Number(rt.iat)).toBe(14 * 86400);

    const next = await refresh(main, main.web, String(app.tokens.refresh_token));
    expect(next.status).toBe(200);
    expect(next.body.expires_in).toBe(86400);
    const rotated = await introspect(main, main.web, String(next.body.refresh_token));
    expect(Number(rotated.exp) - Number(rotated.iat)).toBe(14 * 86400);
  });
});

describe('refresh token reuse', () => {
  it('revokes the newest token, ends the session, tells the app and mails the user', async () => {
    const user = await newUser(main, 'reuse');
    const app = await signedInApp(main, main.web, user);
    const sid = jose.decodeJwt(String(app.tokens.id_token)).sid;
    const [sessionId] = await sessionIds(main, user);
    expect(sessionId).toBeDefined();

    const second = await refresh(main, main.web, String(app.tokens.refresh_token));
    expect(second.status).toBe(200);
    expect(second.body.refresh_token).not.toBe(app.tokens.refresh_token);

    const reuse = await refresh(main, main.web, String(app.tokens.refresh_token));
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe('invalid_grant');

    const newest = await refresh(main, main.web, String(second.body.refresh_token));
    expect(newest.status, 'the newest refresh token is revoked with the grant').toBe(400);
    expect(newest.body.error).toBe('invalid_grant');
    expect(await userinfoStatus(main, second.body.access_token)).toBe(401);

    // The browser session the chain came from is over, and the app was told.
    expect(await sessionIds(main, user)).not.toContain(sessionId);
    const login = await getPage(main, app.auth.jar, '/account');
    expect(login.status, 'the browser must sign in again').toBe(302);
    expect(login.location).toContain('/auth?');
    await receiver.waitForToken((p) => p.sid === sid);

    const message = await mail.waitForMail({ to: user.email, subject: REUSE_SUBJECT });
    expect(message.text).toContain('Web Mail');
    expect(message.text).toContain(`${main.server.url}/account`);
  });
});

describe('the grace window', () => {
  it('gives the device that lost an answer the same successor again, inside the window only', async () => {
    const user = await newUser(main, 'grace');
    const app = await signedInApp(main, main.mobile, user, { userAgent: MOBILE });
    const old = String(app.tokens.refresh_token);

    const first = await refresh(main, main.mobile, old, { userAgent: MOBILE });
    expect(first.status).toBe(200);
    // The answer is "lost"; the app tries again with the token it still has.
    const again = await refresh(main, main.mobile, old, { userAgent: MOBILE });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.refresh_token).toBe(first.body.refresh_token);
    expect(again.body.access_token).toBe(first.body.access_token);
    expect(again.body.id_token).toBe(first.body.id_token);
    expect(Number(again.body.expires_in)).toBeLessThanOrEqual(Number(first.body.expires_in));
    expect(again.headers.get('cache-control')).toBe('no-store');

    // After the window the same presentation is reuse: everything goes.
    await new Promise((r) => setTimeout(r, (GRACE_SECONDS + 1) * 1000));
    const late = await refresh(main, main.mobile, old, { userAgent: MOBILE });
    expect(late.status).toBe(400);
    expect(late.body.error).toBe('invalid_grant');
    expect((await refresh(main, main.mobile, String(first.body.refresh_token), { userAgent: MOBILE })).status).toBe(400);
    await mail.waitForMail({ to: user.email, subject: REUSE_SUBJECT });
  });

  it('treats a presentation from another device inside the window as reuse', async () => {
    const user = await newUser(main, 'grace-other');
    const app = await signedInApp(main, main.mobile, user, { userAgent: MOBILE });
    const old = String(app.tokens.refresh_token);
    const first = await refresh(main, main.mobile, old, { userAgent: MOBILE });
    expect(first.status).toBe(200);

    const stolen = await refresh(main, main.mobile, old, { userAgent: OTHER_LIBRARY });
    expect(stolen.status).toBe(400);
    expect(stolen.body.error).toBe('invalid_grant');
    expect((await refresh(main, main.mobile, String(first.body.refresh_token), { userAgent: MOBILE })).status).toBe(400);
    await mail.waitForMail({ to: user.email, subject: REUSE_SUBJECT });
  });

  it('is off by default: a repeated refresh is reuse', async () => {
    const user = await newUser(main, 'nograce');
    const app = await signedInApp(main, main.spa, user, { userAgent: CHROME });
    const first = await refresh(main, main.spa, String(app.tokens.refresh_token), { userAgent: CHROME });
    expect(first.status).toBe(200);
    const again = await refresh(main, main.spa, String(app.tokens.refresh_token), { userAgent: CHROME });
    expect(again.status).toBe(400);
    expect((await refresh(main, main.spa, String(first.body.refresh_token), { userAgent: CHROME })).status).toBe(400);
  });
});

describe('device fingerprints', () => {
  it('alert (default): a refresh from another browser family works, and the user is told once', async () => {
    const user = await newUser(main, 'alert');
    const app = await signedInApp(main, main.spa, user, { userAgent: CHROME });
    // A browser update is not a new device.
    const updated = await refresh(main, main.spa, String(app.tokens.refresh_token), { userAgent: CHROME.replace('142.0.0.0', '143.0.0.0') });
    expect(updated.status).toBe(200);

    const moved = await refresh(main, main.spa, String(updated.body.refresh_token), { userAgent: FIREFOX });
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    const message = await mail.waitForMail({ to: user.email, subject: NEW_DEVICE_SUBJECT });
    expect(message.text).toContain('Firefox');
    expect(message.text).toContain('Browser Mail');
    expect(message.text).toContain('The request was allowed.');

    // The chain keeps its original binding; the same new device is not reported again.
    const again = await refresh(main, main.spa, String(moved.body.refresh_token), { userAgent: FIREFOX });
    expect(again.status).toBe(200);
    await new Promise((r) => setTimeout(r, 2500));
    expect(mail.mailsTo(user.email, NEW_DEVICE_SUBJECT)).toHaveLength(1);
  });

  describe('under the other policies', () => {
    let allow: Deployment;
    let deny: Deployment;

    beforeAll(async () => {
      [allow, deny] = await Promise.all([
        deploy(mail, receiver, { REFRESH_FINGERPRINT_POLICY: 'allow' }),
        deploy(mail, receiver, { REFRESH_FINGERPRINT_POLICY: 'deny' }),
      ]);
      deployments.push(allow, deny);
    });

    it('allow: the refresh works and nobody is mailed', async () => {
      const user = await newUser(allow, 'allow');
      const app = await signedInApp(allow, allow.spa, user, { userAgent: CHROME });
      const moved = await refresh(allow, allow.spa, String(app.tokens.refresh_token), { userAgent: FIREFOX });
      expect(moved.status).toBe(200);
      await new Promise((r) => setTimeout(r, 2500));
      expect(mail.mailsTo(user.email)).toHaveLength(0);
    });

    it('deny: the refresh is refused with invalid_grant, the user is told, the original device carries on', async () => {
      const user = await newUser(deny, 'deny');
      const app = await signedInApp(deny, deny.spa, user, { userAgent: CHROME });
      const moved = await refresh(deny, deny.spa, String(app.tokens.refresh_token), { userAgent: FIREFOX });
      expect(moved.status).toBe(400);
      expect(moved.body.error).toBe('invalid_grant');
      const message = await mail.waitForMail({ to: user.email, subject: NEW_DEVICE_SUBJECT });
      expect(message.text).toContain('We refused the request');

      // The refused request did not rotate the token: the device it was issued to still refreshes.
      const home = await refresh(deny, deny.spa, String(app.tokens.refresh_token), { userAgent: CHROME });
      expect(home.status, JSON.stringify(home.body)).toBe(200);
    });
  });
});

describe('DPoP', () => {
  it('a client registered with --dpop must prove its key, and gets DPoP-bound tokens', async () => {
    const user = await newUser(main, 'dpop');
    const auth = await signIn(main, main.dpop, user);

    const bare = await exchange(main, main.dpop, auth);
    expect(bare.status).toBe(400);
    expect(bare.body.error).toBe('invalid_grant');

    const key = await dpopKey();
    const tokens = await exchange(main, main.dpop, auth, { headers: { dpop: await key.proof(main.tokenEndpoint) } });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body.token_type).toBe('DPoP');
    // A public client's refresh token is bound to the key as well.
    const withoutProof = await refresh(main, main.dpop, String(tokens.body.refresh_token));
    expect(withoutProof.status).toBe(400);
    const otherKey = await dpopKey();
    const wrongKey = await refresh(main, main.dpop, String(tokens.body.refresh_token), { headers: { dpop: await otherKey.proof(main.tokenEndpoint) } });
    expect(wrongKey.status).toBe(400);
    expect(wrongKey.body.error).toBe('invalid_grant');

    const refreshed = await refresh(main, main.dpop, String(tokens.body.refresh_token), { headers: { dpop: await key.proof(main.tokenEndpoint) } });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    expect(refreshed.body.token_type).toBe('DPoP');

    const discovery = (await (await fetch(`${main.server.url}/.well-known/openid-configuration`)).json()) as { dpop_signing_alg_values_supported?: string[] };
    expect(discovery.dpop_signing_alg_values_supported).toContain('ES256');
  });
});

describe('client registration', () => {
  it('stores the DPoP, back-channel logout and grace window settings, and refuses bad ones', async () => {
    const listed = await gatehouse<{ clients: Record<string, unknown>[] }>(main.server.env, ['client', 'list']);
    const byId = (id: string) => listed.clients.find((c) => c.client_id === id);
    expect(byId(main.web.clientId)).toMatchObject({ backchannel_logout_uri: receiver.uri, backchannel_logout_session_required: true });
    expect(byId(main.mobile.clientId)).toMatchObject({ refresh_token_grace_seconds: GRACE_SECONDS });
    expect(byId(main.dpop.clientId)).toMatchObject({ dpop_bound_access_tokens: true });
    expect(byId(main.spa.clientId)).not.toHaveProperty('refresh_token_grace_seconds');

    const refused = async (args: string[], message: RegExp) => {
      const res = await runCli(main.server.env, ['client', 'create', '--name', 'Refused', '--redirect-uri', REDIRECT_URI, ...args]);
      expect(res.code, res.stdout).not.toBe(0);
      expect(res.stderr + res.stdout).toMatch(message);
    };
    await refused(['--refresh-grace-seconds', '301'], /at most 300 seconds/);
    await refused(['--refresh-grace-seconds', 'soon'], /whole number/);
    await refused(['--refresh-grace-seconds', '5', '--auth-method', 'private_key_jwt', '--jwks-uri', 'https://rp.example.test/jwks'], /grace window/);
    await refused(['--backchannel-logout-uri', 'http://rp.example.test/logout'], /back-channel logout URI/);
  });
});

describe('the audit trail', () => {
  it('records reuse, fingerprint reports, grace replays and back-channel logouts', async () => {
    const rows = await auditRows(main);
    const types = rows.map((r) => r.event_type);
    expect(types).toContain('token.reuse_detected');
    expect(types).toContain('token.fingerprint_mismatch');
    expect(types).toContain('token.refresh_replayed');
    const reuse = rows.find((r) => r.event_type === 'token.reuse_detected')!;
    expect(reuse.outcome).toBe('failure');
    expect(reuse.account_id).toBeTruthy();
    expect(reuse.client_id).toBeTruthy();
    const mismatch = rows.find((r) => r.event_type === 'token.fingerprint_mismatch')!;
    expect(mismatch.details).toMatchObject({ policy: 'alert', refused: false, seen: 'Firefox', issued_to: 'Chrome' });
    const logouts = rows.filter((r) => r.event_type === 'session.backchannel_logout');
    expect(logouts.length).toBeGreaterThanOrEqual(3);
    expect(logouts.every((r) => r.outcome === 'success')).toBe(true);
  });
});
