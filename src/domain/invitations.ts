// Invitations: an administrator creates the account, the invitee chooses a password through a
// 7-day link and lands active with a verified email (the link proves the mailbox).
import { findAccountRow, insertAccount, updateAccount } from '../db/accounts.ts';
import { AppError } from '../errors.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { normalizeEmail } from './emails.ts';
import { pageLink } from './links.ts';
import { issueToken, peekToken, redeemToken } from './one-time-tokens.ts';
import { INVALID_LINK } from './password-reset.ts';
import { assertStrongPassword } from './password-policy.ts';
import { hashPassword } from './passwords.ts';
import type { LifecycleServices } from './signup.ts';
import { normalizeName } from './users.ts';
import { wholeUnits } from './durations.ts';

export async function inviteUser(services: LifecycleServices, input: { email: string; name?: string }, meta: AuditMeta = {}): Promise<{ id: string; email: string; name: string | null; status: string; invitation_expires_at: string }> {
  const email = normalizeEmail(input.email);
  const name = normalizeName(input.name);
  const { config } = services;
  const account = await services.knex.transaction(async (trx) => {
    const created = await insertAccount(trx, { email, passwordHash: null, name, emailVerified: false, status: 'pending' });
    if (!created) return undefined;
    const token = await issueToken(trx, 'invitation', created.id, config.lifecycle.invitationTtl);
    await services.notifier.queueMail(trx, {
      to: created.email,
      template: 'invitation',
      data: { name: created.name, link: pageLink(config, 'invitation', token), expiresInDays: wholeUnits(config.lifecycle.invitationTtl, 86400) },
    });
    await recordAudit(trx, { type: 'user.invited', outcome: 'success', accountId: created.id, ...auditContext(meta) });
    return created;
  });
  if (!account) throw new AppError('email_taken', 'an account with this email already exists', 409);
  services.notifier.kick();
  return {
    id: account.id,
    email: account.email,
    name: account.name,
    status: account.status,
    invitation_expires_at: new Date(Date.now() + config.lifecycle.invitationTtl * 1000).toISOString(),
  };
}

/** The invited account's email and name, or undefined when the link cannot be used. */
export async function invitationDetails(services: LifecycleServices, token: unknown): Promise<{ email: string; name: string | null } | undefined> {
  const row = await peekToken(services.knex, 'invitation', token);
  const account = row?.account_id ? await findAccountRow(services.knex, row.account_id) : undefined;
  return account && account.status === 'pending' ? { email: account.email, name: account.name } : undefined;
}

export async function acceptInvitation(services: LifecycleServices, token: unknown, input: { password: string; name?: string }, meta: AuditMeta = {}): Promise<void> {
  const peeked = await peekToken(services.knex, 'invitation', token);
  const account = peeked?.account_id ? await findAccountRow(services.knex, peeked.account_id) : undefined;
  if (!account || account.status !== 'pending') throw new AppError('invalid_link', INVALID_LINK, 400);
  const name = input.name === undefined || input.name.trim() === '' ? account.name : normalizeName(input.name);
  assertStrongPassword(input.password, [account.email, name]);
  const passwordHash = await hashPassword(input.password, services.config.passwordHash);
  const done = await services.knex.transaction(async (trx) => {
    const redeemed = await redeemToken(trx, 'invitation', token);
    if (!redeemed || redeemed.account_id !== account.id) return false;
    await updateAccount(trx, account.id, { password_hash: passwordHash, email_verified: true, status: 'active', name });
    await recordAudit(trx, { type: 'user.invitation_accepted', outcome: 'success', accountId: account.id, ...auditContext(meta) });
    return true;
  });
  if (!done) throw new AppError('invalid_link', INVALID_LINK, 400);
}
