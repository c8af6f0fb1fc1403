// Signing in with an upstream identity provider, and the rules for linking its accounts to ours.
//
// - An upstream account already linked signs in to its account.
// - Otherwise, with an email the upstream vouches for (and we trust it to): no account has that
//   email -> a new account is created and linked; an account has it -> nothing is linked until
//   the person proves they own that account (its password), because an upstream that lets
//   anyone claim any address would otherwise hand accounts over.
// - Without such an email nothing is created or matched; the person can sign in another way and
//   link the provider from /account.
// - An identity can be unlinked unless it is the account's last way to sign in.
import type { Knex } from 'knex';
import type { Services } from '../services.ts';
import type { FederationProvider } from '../federation/settings.ts';
import { findAccountRow, findAccountRowByEmail, insertAccount, type AccountRow } from '../db/accounts.ts';
import { deleteIdentity, findIdentity, insertIdentity, listIdentities, signInMethodsForUpdate, touchIdentity } from '../db/federated-identities.ts';
import { AppError } from '../errors.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { emailOrUndefined } from './emails.ts';
import { lockState, recordSuccessfulLogin } from './lockout.ts';
import { authenticateWithPassword, maySignIn, normalizeName } from './users.ts';

/** What an upstream said about the person, after its token or ID token was checked. */
export interface UpstreamIdentity {
  provider: string;
  subject: string;
  email: string | null;
  /** True only when the upstream says so and the provider's word is trusted for this. */
  emailVerified: boolean;
  name: string | null;
}

export type FederatedSignIn =
  | { kind: 'signed-in'; accountId: string; created: boolean }
  /** An account has this verified email: its owner must prove it before the link is made. */
  | { kind: 'link-required'; email: string }
  | { kind: 'refused'; reason: 'no_verified_email' | 'signup_disabled' | 'account_unavailable' };

type FederationServices = Pick<Services, 'knex' | 'config' | 'notifier'>;

/** The verified, well-formed email of an upstream identity, if it has one. */
export function verifiedEmailOf(identity: UpstreamIdentity): string | undefined {
  return identity.emailVerified && identity.email ? emailOrUndefined(identity.email) : undefined;
}

function accountUsable(row: AccountRow | undefined, requireVerifiedEmail: boolean): row is AccountRow {
  return row !== undefined && maySignIn(row, requireVerifiedEmail) && !lockState(row).locked;
}

function displayName(identity: UpstreamIdentity): string | null {
  try {
    return normalizeName(identity.name);
  } catch {
    // An upstream name we would refuse from a person (too long, control characters) is dropped.
    return null;
  }
}

function seen(identity: UpstreamIdentity) {
  return { email: identity.email, emailVerified: identity.emailVerified, displayName: displayName(identity) };
}

export async function signInWithUpstream(services: FederationServices, provider: FederationProvider, identity: UpstreamIdentity, meta: AuditMeta = {}): Promise<FederatedSignIn> {
  const { config } = services;
  const details = { provider: provider.id };
  return services.knex.transaction(async (trx): Promise<FederatedSignIn> => {
    const refuse = async (reason: Extract<FederatedSignIn, { kind: 'refused' }>['reason'], accountId?: string): Promise<FederatedSignIn> => {
      await recordAudit(trx, { type: 'federation.sign_in', outcome: 'failure', accountId, ...auditContext(meta, { ...details, reason }) });
      return { kind: 'refused', reason };
    };
    const linked = await findIdentity(trx, provider.id, identity.subject);
    if (linked) {
      const account = await findAccountRow(trx, linked.account_id);
      if (!accountUsable(account, config.requireVerifiedEmail)) return refuse('account_unavailable', linked.account_id);
      await touchIdentity(trx, linked.id, seen(identity));
      await recordSuccessfulLogin(trx, account.id);
      await recordAudit(trx, { type: 'federation.sign_in', outcome: 'success', accountId: account.id, ...auditContext(meta, details) });
      return { kind: 'signed-in', accountId: account.id, created: false };
    }
    const email = verifiedEmailOf(identity);
    if (!email) return refuse('no_verified_email');
    const holder = await findAccountRowByEmail(trx, email);
    if (holder) {
      if (holder.status === 'deleted') return refuse('account_unavailable', holder.id);
      // Not a change yet; recorded so the owner's activity shows the attempt.
      await recordAudit(trx, { type: 'federation.sign_in', outcome: 'failure', accountId: holder.id, ...auditContext(meta, { ...details, reason: 'link_required' }) });
      return { kind: 'link-required', email: holder.email };
    }
    if (!(provider.allowSignup ?? config.signupEnabled)) return refuse('signup_disabled');
    const created = await insertAccount(trx, { email, passwordHash: null, name: displayName(identity), emailVerified: true, status: 'active' });
    // Someone signed up with this address a moment ago: it is now an existing account.
    if (!created) return { kind: 'link-required', email };
    const link = await insertIdentity(trx, { accountId: created.id, provider: provider.id, subject: identity.subject, ...seen(identity) });
    if (!link) throw new AppError('identity_in_use', 'This sign-in was just linked elsewhere. Try again.', 409);
    await recordSuccessfulLogin(trx, created.id);
    await recordAudit(trx, { type: 'federation.account_created', outcome: 'success', accountId: created.id, ...auditContext(meta, details) });
    await recordAudit(trx, { type: 'federation.linked', outcome: 'success', accountId: created.id, ...auditContext(meta, { ...details, proof: 'new_account' }) });
    await recordAudit(trx, { type: 'federation.sign_in', outcome: 'success', accountId: created.id, ...auditContext(meta, details) });
    return { kind: 'signed-in', accountId: created.id, created: true };
  });
}

export type PasswordLink = { ok: true; accountId: string } | { ok: false; reason: 'bad_password' | 'unverified_account' | 'no_account' };

/**
 * The owner of the account holding the upstream's verified email proves it with the account's
 * password; only then is the upstream identity linked. Wrong passwords count toward lockout like
 * any other sign-in.
 */
export async function linkWithPassword(services: FederationServices, provider: FederationProvider, identity: UpstreamIdentity, password: string, meta: AuditMeta = {}): Promise<PasswordLink> {
  const details = { provider: provider.id, proof: 'password' };
  const email = verifiedEmailOf(identity);
  const holder = email ? await findAccountRowByEmail(services.knex, email) : undefined;
  if (!email || !holder) return { ok: false, reason: 'no_account' };
  const outcome = await authenticateWithPassword(services, { email: holder.email, password }, meta);
  if (!outcome.ok) {
    await recordAudit(services.knex, { type: 'federation.linked', outcome: 'failure', accountId: holder.id, ...auditContext(meta, { ...details, reason: outcome.unverifiedEmail ? 'unverified_account' : 'bad_password' }) });
    return { ok: false, reason: outcome.unverifiedEmail ? 'unverified_account' : 'bad_password' };
  }
  const accountId = outcome.account.id;
  await services.knex.transaction(async (trx) => {
    const link = await insertIdentity(trx, { accountId, provider: provider.id, subject: identity.subject, ...seen(identity) });
    if (!link) {
      const other = await findIdentity(trx, provider.id, identity.subject);
      // Both tabs of one person finishing the same link: already done.
      if (other?.account_id === accountId) return;
      throw new AppError('identity_in_use', `This ${provider.name} account is already linked to another account.`, 409);
    }
    await recordAudit(trx, { type: 'federation.linked', outcome: 'success', accountId, ...auditContext(meta, details) });
    await recordAudit(trx, { type: 'federation.sign_in', outcome: 'success', accountId, ...auditContext(meta, { provider: provider.id }) });
  });
  return { ok: true, accountId };
}

/** Links an upstream identity to the account signed in to /account. */
export async function linkToAccount(services: Pick<Services, 'knex'>, accountId: string, provider: FederationProvider, identity: UpstreamIdentity, meta: AuditMeta = {}): Promise<'linked' | 'already-linked'> {
  const details = { provider: provider.id, proof: 'session' };
  return services.knex.transaction(async (trx) => {
    const link = await insertIdentity(trx, { accountId, provider: provider.id, subject: identity.subject, ...seen(identity) });
    if (link) {
      await recordAudit(trx, { type: 'federation.linked', outcome: 'success', accountId, ...auditContext(meta, details) });
      return 'linked' as const;
    }
    const existing = await findIdentity(trx, provider.id, identity.subject);
    if (existing?.account_id === accountId) {
      await touchIdentity(trx, existing.id, seen(identity));
      return 'already-linked' as const;
    }
    await recordAudit(trx, { type: 'federation.linked', outcome: 'failure', accountId, ...auditContext(meta, { ...details, reason: 'linked_elsewhere' }) });
    // The person controls this upstream account, so saying it is in use tells them nothing new.
    throw new AppError('identity_in_use', `This ${provider.name} account is already linked to another account. Sign in with it and unlink it there first.`, 409);
  });
}

export interface LinkedIdentity {
  id: string;
  provider: string;
  email: string | null;
  displayName: string | null;
  createdAt: Date;
  lastUsedAt: Date | null;
}

export async function linkedIdentities(services: Pick<Services, 'knex'>, accountId: string): Promise<LinkedIdentity[]> {
  return (await listIdentities(services.knex, accountId)).map((row) => ({
    id: row.id,
    provider: row.provider,
    email: row.email,
    displayName: row.display_name,
    createdAt: new Date(row.created_at),
    lastUsedAt: row.last_used_at ? new Date(row.last_used_at) : null,
  }));
}

/** Whether the account could still sign in with one linked identity fewer. */
async function hasOtherMethod(trx: Knex.Transaction, accountId: string): Promise<boolean> {
  const methods = await signInMethodsForUpdate(trx, accountId);
  if (!methods) throw new AppError('account_not_found', 'Your account no longer exists.', 404);
  return methods.hasPassword || methods.passkeys > 0 || methods.identities > 1;
}

export async function unlinkIdentity(services: Pick<Services, 'knex'>, accountId: string, identityId: string, meta: AuditMeta = {}): Promise<void> {
  const outcome = await services.knex.transaction(async (trx) => {
    if (!(await hasOtherMethod(trx, accountId))) return 'last_sign_in_method' as const;
    const removed = await deleteIdentity(trx, accountId, identityId);
    if (!removed) return 'not_linked' as const;
    await recordAudit(trx, { type: 'federation.unlinked', outcome: 'success', accountId, ...auditContext(meta, { provider: removed.provider }) });
    return 'unlinked' as const;
  });
  if (outcome === 'unlinked') return;
  // Recorded outside the transaction, which made no change.
  await recordAudit(services.knex, { type: 'federation.unlinked', outcome: 'failure', accountId, ...auditContext(meta, { reason: outcome }) });
  if (outcome === 'not_linked') throw new AppError('identity_not_found', 'That sign-in method is not linked to your account.', 404);
  throw new AppError('last_sign_in_method', 'This is the only way you can sign in. Add a passkey or link another service first, or set a password with "Forgot password?" on the sign-in page.', 400);
}
