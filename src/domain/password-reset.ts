// Password recovery. Requesting a link answers the same for every email; links are single use,
// hashed at rest and short lived; completing a reset ends every session and refresh token of the
// account and tells the owner by mail.
import { findAccountRow, findAccountRowByEmail, updateAccount } from '../db/accounts.ts';
import { recentTokens } from '../db/one-time-tokens.ts';
import { markSessionsRevoked } from '../db/account-sessions.ts';
import { AppError } from '../errors.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { emailOrUndefined } from './emails.ts';
import { pageLink } from './links.ts';
import { issueToken, peekToken, redeemToken } from './one-time-tokens.ts';
import { assertStrongPassword } from './password-policy.ts';
import { hashPassword } from './passwords.ts';
import type { LifecycleServices } from './signup.ts';
import { wholeUnits } from './durations.ts';

const RECOVERABLE = new Set(['active', 'pending', 'locked']);

export const INVALID_LINK = 'This link is invalid, has expired or was already used. Ask for a new one.';

export async function requestPasswordReset(services: LifecycleServices, rawEmail: string, meta: AuditMeta = {}): Promise<void> {
  const email = emailOrUndefined(rawEmail);
  const { config } = services;
  const sent = await services.knex.transaction(async (trx) => {
    const account = email ? await findAccountRowByEmail(trx, email) : undefined;
    if (!account || !RECOVERABLE.has(account.status)) {
      await recordAudit(trx, { type: 'password_reset.requested', outcome: 'failure', accountId: account?.id, ...auditContext(meta, { reason: account ? `status:${account.status}` : 'unknown_email' }) });
      return false;
    }
    const recent = await recentTokens(trx, account.id, 'reset_password', 24 * 3600);
    const cooling = recent.latestAt && Date.now() - recent.latestAt.getTime() < config.lifecycle.passwordResetCooldown * 1000;
    if (cooling || recent.count >= config.lifecycle.passwordResetDailyCap) {
      await recordAudit(trx, { type: 'password_reset.requested', outcome: 'failure', accountId: account.id, ...auditContext(meta, { reason: cooling ? 'cooldown' : 'daily_cap' }) });
      return false;
    }
    const token = await issueToken(trx, 'reset_password', account.id, config.lifecycle.passwordResetTtl);
    await services.notifier.queueMail(trx, {
      to: account.email,
      template: 'reset-password',
      data: { name: account.name, link: pageLink(config, 'reset-password', token), expiresInMinutes: wholeUnits(config.lifecycle.passwordResetTtl, 60) },
    });
    await recordAudit(trx, { type: 'password_reset.requested', outcome: 'success', accountId: account.id, ...auditContext(meta) });
    return true;
  });
  if (sent) services.notifier.kick();
}

/** Whether a reset link can still be used (shown before the form; does not use it up). */
export async function resetLinkIsUsable(services: LifecycleServices, token: unknown): Promise<boolean> {
  return (await peekToken(services.knex, 'reset_password', token)) !== undefined;
}

export async function completePasswordReset(services: LifecycleServices, token: unknown, newPassword: string, meta: AuditMeta = {}): Promise<void> {
  const peeked = await peekToken(services.knex, 'reset_password', token);
  const account = peeked?.account_id ? await findAccountRow(services.knex, peeked.account_id) : undefined;
  if (!account) throw new AppError('invalid_link', INVALID_LINK, 400);
  assertStrongPassword(newPassword, [account.email, account.name]);
  const passwordHash = await hashPassword(newPassword, services.config.passwordHash);
  const done = await services.knex.transaction(async (trx) => {
    // Redeemed inside the transaction that changes the password: of two submissions of one link
    // only one changes anything.
    const redeemed = await redeemToken(trx, 'reset_password', token);
    if (!redeemed || redeemed.account_id !== account.id) return false;
    await updateAccount(trx, account.id, {
      password_hash: passwordHash,
      revokeTokens: true,
      clearLockout: true,
      // Following the link proves control of the mailbox, like a verification link.
      email_verified: true,
      ...(account.status === 'pending' || account.status === 'locked' ? { status: 'active' } : {}),
    });
    await markSessionsRevoked(trx, { accountId: account.id }, 'password_reset');
    await services.notifier.queueMail(trx, {
      to: account.email,
      template: 'password-changed',
      data: { name: account.name, when: new Date().toUTCString(), ip: meta.ip },
    });
    await recordAudit(trx, { type: 'user.password_reset', outcome: 'success', accountId: account.id, ...auditContext(meta) });
    return true;
  });
  if (!done) throw new AppError('invalid_link', INVALID_LINK, 400);
  services.notifier.kick();
}
