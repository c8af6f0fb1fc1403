// Phone numbers: stored in E.164 and confirmed with a 6-digit SMS code (see sms-codes.ts).
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import { findAccountRow, updateAccount } from '../db/accounts.ts';
import { revokeTokens } from '../db/one-time-tokens.ts';
import { checkSmsCode, issueSmsCode } from './sms-codes.ts';
import { AppError } from '../errors.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import type { LifecycleServices } from './signup.ts';

export function normalizePhone(raw: string): string {
  const parsed = parsePhoneNumberFromString(String(raw ?? '').trim());
  if (!parsed || !parsed.isValid()) {
    throw new AppError('invalid_phone', 'Enter the number in international format, starting with + and the country code (e.g. +44 20 7946 0958).', 400, { field: 'phone' });
  }
  return parsed.number;
}

/** Saves the number unverified and texts it a code. */
export async function addPhone(services: LifecycleServices, accountId: string, rawPhone: string, meta: AuditMeta = {}): Promise<string> {
  const phone = normalizePhone(rawPhone);
  await services.knex.transaction(async (trx) => {
    await updateAccount(trx, accountId, { phone_number: phone, phone_number_verified: false });
    await issueSmsCode(services, trx, 'phone_code', accountId, phone);
    await recordAudit(trx, { type: 'user.phone_added', outcome: 'success', accountId, ...auditContext(meta) });
  });
  services.notifier.kick();
  return phone;
}

export async function resendPhoneCode(services: LifecycleServices, accountId: string): Promise<void> {
  const account = await findAccountRow(services.knex, accountId);
  if (!account?.phone_number || account.phone_number_verified) return;
  await services.knex.transaction((trx) => issueSmsCode(services, trx, 'phone_code', accountId, account.phone_number!));
  services.notifier.kick();
}

export async function confirmPhone(services: LifecycleServices, accountId: string, rawCode: string, meta: AuditMeta = {}): Promise<void> {
  const wrong = new AppError('invalid_code', 'That code is not correct or has expired. Check the latest text message or send a new code.', 400, { field: 'code' });
  const outcome = await services.knex.transaction(async (trx) => {
    const phone = await checkSmsCode(services, trx, 'phone_code', accountId, rawCode);
    const account = phone ? await findAccountRow(trx, accountId) : undefined;
    if (!phone || account?.phone_number !== phone) {
      await recordAudit(trx, { type: 'user.phone_verified', outcome: 'failure', accountId, ...auditContext(meta, { reason: 'wrong_code' }) });
      return 'wrong';
    }
    await updateAccount(trx, accountId, { phone_number_verified: true });
    await recordAudit(trx, { type: 'user.phone_verified', outcome: 'success', accountId, ...auditContext(meta) });
    return 'ok';
  });
  if (outcome !== 'ok') throw wrong;
}

export async function removePhone(services: LifecycleServices, accountId: string, meta: AuditMeta = {}): Promise<void> {
  await services.knex.transaction(async (trx) => {
    await updateAccount(trx, accountId, { phone_number: null, phone_number_verified: false });
    await revokeTokens(trx, accountId, 'phone_code');
    await recordAudit(trx, { type: 'user.phone_removed', outcome: 'success', accountId, ...auditContext(meta) });
  });
}
