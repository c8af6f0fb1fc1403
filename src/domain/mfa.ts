// Second factors of an account: which exist, which a sign-in may use, adding and removing them
// (each change audited and mailed to the owner), and the policy that decides when one is asked.
import type { Knex } from 'knex';
import { findAccountRow } from '../db/accounts.ts';
import { deleteFactor, deleteRecoveryCodes, insertFactor, listFactors, type FactorRow, type FactorType } from '../db/mfa-factors.ts';
import { AppError } from '../errors.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { pageLink } from './links.ts';
import { regenerateRecoveryCodes, unusedRecoveryCodes } from './recovery-codes.ts';
import type { LifecycleServices } from './signup.ts';

/** Ways to pass the second step of a sign-in, strongest first (SMS last: NIST "restricted"). */
export type SecondFactorMethod = 'webauthn' | 'totp' | 'sms' | 'recovery';

export interface FactorView {
  id: string;
  type: FactorType;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  backedUp: boolean | null;
}

export interface MfaSummary {
  factors: FactorView[];
  methods: SecondFactorMethod[];
  recoveryCodesLeft: number;
}

function view(row: FactorRow): FactorView {
  return { id: row.id, type: row.type, name: row.name, createdAt: new Date(row.created_at), lastUsedAt: row.last_used_at ? new Date(row.last_used_at) : null, backedUp: row.backup_state };
}

function methodsOf(factors: FactorRow[], recoveryCodesLeft: number): SecondFactorMethod[] {
  const types = new Set(factors.map((f) => f.type));
  const methods: SecondFactorMethod[] = (['webauthn', 'totp', 'sms'] as const).filter((t) => types.has(t));
  // Recovery codes stand in for a lost factor; without a factor there is no second step to pass.
  if (methods.length && recoveryCodesLeft > 0) methods.push('recovery');
  return methods;
}

/** Everything about an account's second factors, for the pages and the API that show them. */
export async function mfaSummary(services: Pick<LifecycleServices, 'knex'>, accountId: string): Promise<MfaSummary> {
  const factors = await listFactors(services.knex, accountId, { confirmedOnly: true });
  const recoveryCodesLeft = await unusedRecoveryCodes(services.knex, accountId);
  return { factors: factors.map(view), methods: methodsOf(factors, recoveryCodesLeft), recoveryCodesLeft };
}

/**
 * The ways to pass the second step of a sign-in (none: the account has no second factor). The
 * same methods as mfaSummary's; recovery codes are only counted when there is a factor, since
 * they count for nothing without one, so a sign-in without MFA costs one query here.
 */
export async function secondFactorMethods(services: Pick<LifecycleServices, 'knex'>, accountId: string): Promise<SecondFactorMethod[]> {
  const factors = await listFactors(services.knex, accountId, { confirmedOnly: true });
  if (factors.length === 0) return [];
  return methodsOf(factors, await unusedRecoveryCodes(services.knex, accountId));
}

const LABELS: Record<FactorType, string> = { totp: 'An authenticator app', webauthn: 'A passkey', sms: 'Text message codes' };

/**
 * Finishes adding a factor inside `trx`: mails the owner and audits. The first factor of an
 * account also gets recovery codes, returned so the page can show them once.
 */
export async function factorAdded(services: LifecycleServices, trx: Knex.Transaction, accountId: string, factor: { type: FactorType; name: string }, meta: AuditMeta = {}, opts: { recoveryCodes?: boolean } = {}): Promise<string[] | undefined> {
  const account = await findAccountRow(trx, accountId);
  if (!account) throw new AppError('account_not_found', 'Your account no longer exists.', 404);
  const wantCodes = opts.recoveryCodes ?? true;
  const codes = wantCodes && (await unusedRecoveryCodes(trx, accountId)) === 0 ? await regenerateRecoveryCodes(services, trx, accountId) : undefined;
  await recordAudit(trx, { type: 'mfa.factor_added', outcome: 'success', accountId, ...auditContext(meta, { factor: factor.type, name: factor.name }) });
  await services.notifier.queueMail(trx, {
    to: account.email,
    template: 'mfa-factor-added',
    data: { name: account.name, factor: factor.type === 'webauthn' ? `The passkey "${factor.name}"` : LABELS[factor.type], when: new Date(), accountLink: pageLink(services.config, 'account') },
  });
  return codes;
}

export async function removeFactor(services: LifecycleServices, accountId: string, factorId: string, meta: AuditMeta = {}): Promise<void> {
  await services.knex.transaction(async (trx) => {
    const removed = await deleteFactor(trx, accountId, factorId);
    if (!removed) throw new AppError('factor_not_found', 'That sign-in method no longer exists.', 404);
    const remaining = await listFactors(trx, accountId, { confirmedOnly: true });
    // Recovery codes only make sense next to a second factor.
    if (remaining.length === 0) await deleteRecoveryCodes(trx, accountId);
    const account = await findAccountRow(trx, accountId);
    await recordAudit(trx, { type: 'mfa.factor_removed', outcome: 'success', accountId, ...auditContext(meta, { factor: removed.type, name: removed.name }) });
    if (account) {
      await services.notifier.queueMail(trx, {
        to: account.email,
        template: 'mfa-factor-removed',
        data: { name: account.name, factor: removed.type === 'webauthn' ? `The passkey "${removed.name}"` : LABELS[removed.type], when: new Date(), accountLink: pageLink(services.config, 'account') },
      });
    }
  });
  services.notifier.kick();
}

/** Turns on SMS codes as a second factor for a verified phone number. */
export async function enableSmsFactor(services: LifecycleServices, accountId: string, meta: AuditMeta = {}): Promise<void> {
  const account = await findAccountRow(services.knex, accountId);
  if (!account?.phone_number || !account.phone_number_verified) throw new AppError('phone_not_verified', 'Confirm a phone number first.', 400);
  await services.knex.transaction(async (trx) => {
    const existing = (await listFactors(trx, accountId)).find((f) => f.type === 'sms');
    if (existing) return;
    await insertFactor(trx, { account_id: accountId, type: 'sms', name: 'Text message', confirmed_at: new Date() });
    // Codes are shown only where a page can display them (authenticator-app set-up, or on request).
    await factorAdded(services, trx, accountId, { type: 'sms', name: 'Text message' }, meta, { recoveryCodes: false });
  });
  services.notifier.kick();
}

export async function newRecoveryCodes(services: LifecycleServices, accountId: string, meta: AuditMeta = {}): Promise<string[]> {
  return services.knex.transaction(async (trx) => {
    if ((await listFactors(trx, accountId, { confirmedOnly: true })).length === 0) throw new AppError('no_second_factor', 'Set up a second factor first.', 400);
    const codes = await regenerateRecoveryCodes(services, trx, accountId);
    await recordAudit(trx, { type: 'mfa.recovery_codes_regenerated', outcome: 'success', accountId, ...auditContext(meta) });
    return codes;
  });
}
