// CSRF protection for our forms: a per-browser secret in a signed HttpOnly cookie and a token
// derived from it in every form (the `csrf` package's synchronizer tokens). A cross-site page
// can submit a form but cannot read the token.
import Tokens from 'csrf';
import type { Context } from 'koa';
import { AppError } from '../errors.ts';

const tokens = new Tokens();
const COOKIE = 'gatehouse.csrf';

export function csrfToken(ctx: Context, secure: boolean): string {
  let secret = ctx.cookies.get(COOKIE, { signed: true });
  if (!secret) {
    secret = tokens.secretSync();
    ctx.cookies.set(COOKIE, secret, { httpOnly: true, sameSite: 'lax', secure, signed: true, overwrite: true });
  }
  return tokens.create(secret);
}

export function verifyCsrf(ctx: Context, submitted: unknown): void {
  const secret = ctx.cookies.get(COOKIE, { signed: true });
  if (!secret || typeof submitted !== 'string' || !tokens.verify(secret, submitted)) {
    throw new AppError('csrf_failed', 'This form has expired or was not sent from this site. Go back, reload the page and try again.', 403);
  }
}
