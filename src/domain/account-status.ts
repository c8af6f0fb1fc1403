// Administrative account states. Suspending, blocking and deleting also end the account's
// sessions and refresh tokens (they fail at next use: see oidc/account.ts).
import type { Knex } from 'knex';
import { findAccountRow, findAccountRowByEmail, updateAccount, type AccountRow, type AccountStatus } from '../db/accounts.ts';
import { AppError } from '../errors.ts';
import { markSessionsRevoked } from '../db/account-sessions.ts';
import type { Services } from '../services.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { normalizeEmail } from './emails.ts';
import { toPublicAccount, type PublicAccount } from './users.ts';

export type StatusAction = 'suspend' | 'reactivate' | 'block' | 'unlock' | 'delete';

type StatusServices = Pick<Services, 'knex'>;

const EVENTS: Record<StatusAction, string> = {
  suspend: 'user.suspended',
  reactivate: 'user.reactivated',
  block: 'user.blocked',
  unlock: 'user.unlocked',
  delete: 'user.deleted',
};

function changesFor(action: StatusAction, row: AccountRow): Parameters<typeof updateAccount>[2] {
  switch (action) {
    case 'suspend':
      return { status: 'suspended', revokeTokens: true };
    case 'block':
      return { status: 'blocked', revokeTokens: true };
    case 'reactivate':
      return { status: row.email_verified || row.password_hash ? 'active' : 'pending', clearLockout: true };
    case 'unlock':
      return { clearLockout: true, ...(row.status === 'locked' ? { status: 'active' as AccountStatus } : {}) };
    case 'delete':
      // The row stays for the audit trail; what identifies the person goes, and the address
      // becomes free for a new account.
      return {
        status: 'deleted',
        revokeTokens: true,
        email: `deleted-${row.id}@deleted.invalid`,
        email_verified: false,
        name: null,
        password_hash: null,
        phone_number: null,
        phone_number_verified: false,
      };
  }
}

export async function changeAccountStatus(services: StatusServices, rawEmail: string, action: StatusAction, meta: AuditMeta = {}): Promise<PublicAccount> {
  const email = normalizeEmail(rawEmail);
  const updated = await applyStatus(services, (trx) => findAccountRowByEmail(trx, email), action, meta);
  if (!updated) throw new AppError('account_not_found', 'no account has this email', 404);
  return toPublicAccount(updated);
}

/** The same change for an account named by its id (the admin API). */
export async function changeAccountStatusById(services: StatusServices, accountId: string, action: StatusAction, meta: AuditMeta = {}): Promise<PublicAccount> {
  const updated = await applyStatus(services, (trx) => findAccountRow(trx, accountId), action, meta);
  if (!updated) throw new AppError('account_not_found', 'no account has this id', 404);
  return toPublicAccount(updated);
}

async function applyStatus(
  services: StatusServices,
  find: (trx: Knex.Transaction) => Promise<AccountRow | undefined>,
  action: StatusAction,
  meta: AuditMeta,
): Promise<AccountRow | undefined> {
  return services.knex.transaction(async (trx) => {
    const row = await find(trx);
    if (!row || row.status === 'deleted') return undefined;
    if (action === 'reactivate' && !['suspended', 'blocked', 'locked'].includes(row.status)) {
      throw new AppError('invalid_state', `the account is ${row.status}, not suspended, blocked or locked`, 409);
    }
    const changes = changesFor(action, row);
    const result = await updateAccount(trx, row.id, changes);
    if (changes.revokeTokens) await markSessionsRevoked(trx, { accountId: row.id }, `account_${action}`);
    await recordAudit(trx, { type: EVENTS[action], outcome: 'success', accountId: row.id, ...auditContext(meta, { previous_status: row.status }) });
    return result;
  });
}
