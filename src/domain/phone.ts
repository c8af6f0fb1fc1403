// Phone numbers: stored in E.164 and confirmed with a 6-digit SMS code. The code has little
// entropy, so it is stored as a keyed MAC (useless without the server key), limited to five
// guesses and five minutes.
import crypto from 'node:crypto';
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import type { Knex } from 'knex';
import { findAccountRow, updateAccount } from '../db/accounts.ts';
import { consumeTokenById, countAttempt, insertToken, latestUsableToken, revokeTokens } from '../db/one-time-tokens.ts';
import { AppError } from '../errors.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';
import type { LifecycleServices } from './signup.ts';

const MAX_ATTEMPTS = 5;

export function normalizePhone(raw: string): string {
  const parsed = parsePhoneNumberFromString(String(raw ?? '').trim());
  if (!parsed || !parsed.isValid()) {
    throw new AppError('invalid_phone', 'Enter the number in international format, starting with + and the country code (e.g. +44 20 7946 0958).', 400, { field: 'phone' });
  }
  return parsed.number;
}

function codeMac(services: LifecycleServices, nonce: string, code: string): string {
  return services.secrets.mac(`${nonce}:${code}`, 'phone-code');
}

async function issueCode(services: LifecycleServices, trx: Knex.Transaction, accountId: string, phone: string): Promise<void> {
  const code = String(crypto.randomInt(0, 1_000_000)).padStart(6, '0');
  const nonce = crypto.randomBytes(16).toString('base64url');
  await revokeTokens(trx, accountId, 'phone_code');
  await insertToken(trx, { purpose: 'phone_code', accountId, tokenHash: codeMac(services, nonce, code), data: { nonce, phone }, ttlSeconds: services.config.lifecycle.phoneCodeTtl });
  await services.notifier.queueSms(trx, { to: phone, template: 'phone-code', data: { code, expiresInMinutes: Math.round(services.config.lifecycle.phoneCodeTtl / 60) } });
}

/** Saves the number unverified and texts it a code. */
export async function addPhone(services: LifecycleServices, accountId: string, rawPhone: string, meta: AuditMeta = {}): Promise<string> {
  const phone = normalizePhone(rawPhone);
  await services.knex.transaction(async (trx) => {
    await updateAccount(trx, accountId, { phone_number: phone, phone_number_verified: false });
    await issueCode(services, trx, accountId, phone);
    await recordAudit(trx, { type: 'user.phone_added', outcome: 'success', accountId, ...auditContext(meta) });
  });
  services.notifier.kick();
  return phone;
}

export async function resendPhoneCode(services: LifecycleServices, accountId: string): Promise<void> {
  const account = await findAccountRow(services.knex, accountId);
  if (!account?.phone_number || account.phone_number_verified) return;
  await services.knex.transaction((trx) => issueCode(services, trx, accountId, account.phone_number!));
  services.notifier.kick();
}

export async function confirmPhone(services: LifecycleServices, accountId: string, rawCode: string, meta: AuditMeta = {}): Promise<void> {
  const code = String(rawCode ?? '').replace(/\s+/g, '');
  const wrong = new AppError('invalid_code', 'That code is not correct or has expired. Check the latest text message or send a new code.', 400, { field: 'code' });
  const outcome = await services.knex.transaction(async (trx) => {
    const row = await latestUsableToken(trx, accountId, 'phone_code');
    if (!row || row.attempts >= MAX_ATTEMPTS) return 'invalid';
    const expected = Buffer.from(row.token_hash, 'hex');
    const actual = Buffer.from(codeMac(services, String(row.data.nonce), code), 'hex');
    if (!/^\d{6}$/.test(code) || !crypto.timingSafeEqual(expected, actual)) {
      await countAttempt(trx, row.id);
      await recordAudit(trx, { type: 'user.phone_verified', outcome: 'failure', accountId, ...auditContext(meta, { reason: 'wrong_code' }) });
      return 'wrong';
    }
    if (!(await consumeTokenById(trx, row.id))) return 'invalid';
    const account = await findAccountRow(trx, accountId);
    if (account?.phone_number !== row.data.phone) return 'invalid';
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
