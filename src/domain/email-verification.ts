// Email verification: the link proves the person controls the mailbox. A pending account becomes
// active; resends are throttled per account and answer the same whether or not the email exists.
import { findAccountRow, findAccountRowByEmail, updateAccount } from '../db/accounts.ts';
import { recentTokens } from '../db/one-time-tokens.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { emailOrUndefined } from './emails.ts';
import { pageLink } from './links.ts';
import { issueToken, redeemToken } from './one-time-tokens.ts';
import type { LifecycleServices } from './signup.ts';
import { wholeUnits } from './durations.ts';

const RESENDS_PER_DAY = 10;

/** Marks the email verified; returns the account's email, or undefined for an unusable link. */
export async function verifyEmail(services: LifecycleServices, token: unknown, meta: AuditMeta = {}): Promise<{ accountId: string; email: string } | undefined> {
  return services.knex.transaction(async (trx) => {
    const redeemed = await redeemToken(trx, 'verify_email', token);
    if (!redeemed?.account_id) return undefined;
    const account = await findAccountRow(trx, redeemed.account_id);
    if (!account || account.status === 'deleted') return undefined;
    await updateAccount(trx, account.id, { email_verified: true, ...(account.status === 'pending' ? { status: 'active' } : {}) });
    await recordAudit(trx, { type: 'user.email_verified', outcome: 'success', accountId: account.id, ...auditContext(meta) });
    return { accountId: account.id, email: account.email };
  });
}

/** Sends a fresh link to a pending address, at most once per cooldown; silent otherwise. */
export async function resendVerification(services: LifecycleServices, rawEmail: string, meta: AuditMeta = {}): Promise<void> {
  const email = emailOrUndefined(rawEmail);
  if (!email) return;
  const { config } = services;
  const sent = await services.knex.transaction(async (trx) => {
    const account = await findAccountRowByEmail(trx, email);
    // Pending signups, and saved guest accounts whose new address is still unverified.
    if (!account || account.email_verified || (account.status !== 'pending' && account.guest_upgraded_at === null)) return false;
    const recent = await recentTokens(trx, account.id, 'verify_email', 24 * 3600);
    const cooling = recent.latestAt && Date.now() - recent.latestAt.getTime() < config.lifecycle.emailVerificationResendCooldown * 1000;
    if (cooling || recent.count >= RESENDS_PER_DAY) {
      await recordAudit(trx, { type: 'user.verification_resent', outcome: 'failure', accountId: account.id, ...auditContext(meta, { reason: cooling ? 'cooldown' : 'daily_cap' }) });
      return false;
    }
    const token = await issueToken(trx, 'verify_email', account.id, config.lifecycle.emailVerificationTtl);
    await services.notifier.queueMail(trx, {
      to: account.email,
      template: 'verify-email',
      data: { name: account.name, link: pageLink(config, 'verify-email', token), expiresInHours: wholeUnits(config.lifecycle.emailVerificationTtl, 3600) },
    });
    await recordAudit(trx, { type: 'user.verification_resent', outcome: 'success', accountId: account.id, ...auditContext(meta) });
    return true;
  });
  if (sent) services.notifier.kick();
}
