// Who is signed in, for /account: the same oidc-provider session cookie that gives single
// sign-on to applications. Signing in to /account is an ordinary authorization request from a
// built-in first-party client, so it goes through the same login, MFA and lockout rules.
import crypto from 'node:crypto';
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import type { ProviderHost } from '../oidc/provider-host.ts';
import { findAccount } from '../oidc/account.ts';
import { findAccountById, type Account } from '../domain/users.ts';

export const ACCOUNT_CLIENT_ID = 'gatehouse-account';
const LOGIN_COOKIE = 'gatehouse.account_login';
const RETURN_COOKIE = 'gatehouse.account_return';
// Where a sign-in may lead back to: an /account page, nothing else (no open redirect).
const RETURN_PATH = /^\/account(\/[a-z-]+)*$/;

export function accountClientMetadata(services: Pick<Services, 'config'>): Record<string, unknown> {
  const { issuer, productName } = services.config;
  return {
    client_id: ACCOUNT_CLIENT_ID,
    client_name: `${productName} account`,
    redirect_uris: [`${issuer}/account/callback`],
    post_logout_redirect_uris: [`${issuer}/account/signed-out`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    scope: 'openid',
    first_party: true,
  };
}

export interface SignedIn {
  account: Account;
  sessionUid: string;
  /** When this browser last proved who it is (epoch seconds). */
  authTime: number | undefined;
}

/** The signed-in account, or undefined when the browser has no valid session. */
export async function currentAccount(services: Services, host: ProviderHost, ctx: Context): Promise<SignedIn | undefined> {
  const session = await host.provider.Session.get(ctx as never);
  if (!session.accountId) return undefined;
  // The same checks as for applications: status and revoked sessions.
  const valid = await findAccount(services, undefined, session.accountId, { iat: session.loginTs });
  if (!valid) return undefined;
  const account = await findAccountById(services.knex, session.accountId);
  return account ? { account, sessionUid: session.uid, authTime: session.loginTs } : undefined;
}

/**
 * Sends the browser through the hosted login, back to /account (or the /account page `returnTo`)
 * afterwards. `forceLogin` asks for the credentials again even when the session is signed in.
 */
export function startAccountLogin(services: Services, ctx: Context, options: { returnTo?: string; forceLogin?: boolean } = {}): void {
  const state = crypto.randomBytes(16).toString('base64url');
  const cookie = { httpOnly: true, sameSite: 'lax' as const, signed: true, secure: services.config.issuer.startsWith('https:'), maxAge: 30 * 60 * 1000, path: '/account' };
  ctx.cookies.set(LOGIN_COOKIE, state, cookie);
  ctx.cookies.set(RETURN_COOKIE, options.returnTo && RETURN_PATH.test(options.returnTo) ? options.returnTo : null, cookie);
  const url = new URL(`${services.config.issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: ACCOUNT_CLIENT_ID,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: `${services.config.issuer}/account/callback`,
    state,
    // PKCE is required of every client; /account never redeems its code, so any challenge will do.
    code_challenge: crypto.randomBytes(32).toString('base64url'),
    code_challenge_method: 'S256',
    ...(options.forceLogin ? { prompt: 'login', max_age: '0' } : {}),
  }).toString();
  ctx.redirect(url.toString());
}

/**
 * The return from the hosted login. The provider session now exists, which is all /account needs;
 * the code is left to expire unused (a minute), so the PKCE verifier is never kept.
 */
export function finishAccountLogin(ctx: Context): 'ok' | 'denied' | 'bad_state' {
  const state = ctx.cookies.get(LOGIN_COOKIE, { signed: true });
  ctx.cookies.set(LOGIN_COOKIE, null, { path: '/account' });
  if (!state || ctx.query.state !== state) return 'bad_state';
  return typeof ctx.query.error === 'string' ? 'denied' : 'ok';
}

/** The /account page the finished sign-in was started from (once; /account by default). */
export function takeAccountReturnPath(ctx: Context): string {
  const path = ctx.cookies.get(RETURN_COOKIE, { signed: true });
  ctx.cookies.set(RETURN_COOKIE, null, { path: '/account' });
  return path && RETURN_PATH.test(path) ? path : '/account';
}
