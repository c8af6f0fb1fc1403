// "Remember this device for N days": after a second factor, the browser may keep a signed,
// HttpOnly cookie whose random token (stored hashed, per account) lets later sign-ins on this
// browser skip the second step. The owner sees and revokes remembered devices in /account.
import crypto from 'node:crypto';
import type { Context } from 'koa';
import type { Services } from '../services.ts';
import { deviceIsRemembered, rememberNewDevice } from '../domain/remembered-devices.ts';

const COOKIE = 'gatehouse.device';

function cookieName(accountId: string): string {
  // One cookie per account, so people sharing a browser do not overwrite each other's.
  return `${COOKIE}.${crypto.createHash('sha256').update(accountId).digest('base64url').slice(0, 12)}`;
}

export async function rememberDevice(services: Services, ctx: Context, accountId: string): Promise<void> {
  const days = services.config.mfa.rememberDeviceDays;
  if (days <= 0) return;
  const token = await rememberNewDevice(services.knex, accountId, days, { userAgent: ctx.get('user-agent') || undefined, ip: ctx.ip });
  ctx.cookies.set(cookieName(accountId), token, {
    httpOnly: true,
    sameSite: 'lax',
    signed: true,
    secure: services.config.issuer.startsWith('https:'),
    maxAge: days * 24 * 3600 * 1000,
    path: '/interaction',
    overwrite: true,
  });
}

export async function isRememberedDevice(services: Services, ctx: Context, accountId: string): Promise<boolean> {
  if (services.config.mfa.rememberDeviceDays <= 0) return false;
  const token = ctx.cookies.get(cookieName(accountId), { signed: true });
  return token ? deviceIsRemembered(services.knex, accountId, token) : false;
}
