// What a signed-in person changes about their own account in /account.
import { findAccountRow, updateAccount } from '../db/accounts.ts';
import { AppError } from '../errors.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import { assertStrongPassword } from './password-policy.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import type { LifecycleServices } from './signup.ts';
import { normalizeName } from './users.ts';

export async function changeName(services: Pick<LifecycleServices, 'knex'>, accountId: string, rawName: string, meta: AuditMeta = {}): Promise<void> {
  let name: string | null;
  try {
    name = normalizeName(rawName);
  } catch (err) {
    if (err instanceof AppError) throw new AppError(err.code, err.message, 400, { field: 'name' });
    throw err;
  }
  await services.knex.transaction(async (trx) => {
    await updateAccount(trx, accountId, { name });
    await recordAudit(trx, { type: 'user.name_changed', outcome: 'success', accountId, ...auditContext(meta) });
  });
}

export async function changePassword(services: LifecycleServices, accountId: string, current: string, next: string, meta: AuditMeta = {}): Promise<void> {
  const account = await findAccountRow(services.knex, accountId);
  if (!account) throw new AppError('account_not_found', 'Your account no longer exists.', 404);
  if (!account.password_hash || !(await verifyPassword(account.password_hash, current))) {
    await recordAudit(services.knex, { type: 'user.password_changed', outcome: 'failure', accountId, ...auditContext(meta, { reason: 'bad_current_password' }) });
    throw new AppError('bad_current_password', 'Your current password is not correct.', 400, { field: 'current_password' });
  }
  try {
    assertStrongPassword(next, [account.email, account.name]);
  } catch (err) {
    if (err instanceof AppError) throw new AppError(err.code, err.message, 400, { field: 'new_password' });
    throw err;
  }
  const passwordHash = await hashPassword(next, services.config.passwordHash);
  await services.knex.transaction(async (trx) => {
    await updateAccount(trx, accountId, { password_hash: passwordHash });
    await services.notifier.queueMail(trx, { to: account.email, template: 'password-changed', data: { name: account.name, when: new Date().toUTCString(), ip: meta.ip } });
    await recordAudit(trx, { type: 'user.password_changed', outcome: 'success', accountId, ...auditContext(meta) });
  });
  services.notifier.kick();
}
