// Six-digit codes sent by SMS (phone confirmation, SMS second factor). A code has little
// entropy, so it is stored as a keyed MAC (useless without the server key), accepts at most five
// guesses and lives only PHONE_CODE_TTL.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { consumeTokenById, countAttempt, insertToken, latestUsableToken, revokeTokens } from '../db/one-time-tokens.ts';
import type { LifecycleServices } from './signup.ts';
import { wholeUnits } from './durations.ts';

export type SmsCodePurpose = 'phone_code' | 'mfa_sms';

const MAX_ATTEMPTS = 5;

function codeMac(services: Pick<LifecycleServices, 'secrets'>, nonce: string, code: string): string {
  return services.secrets.mac(`${nonce}:${code}`, 'sms-code');
}

/** Replaces any outstanding code of this purpose and queues the text in `trx`. */
export async function issueSmsCode(services: LifecycleServices, trx: Knex.Transaction, purpose: SmsCodePurpose, accountId: string, phone: string): Promise<void> {
  const code = String(crypto.randomInt(0, 1_000_000)).padStart(6, '0');
  const nonce = crypto.randomBytes(16).toString('base64url');
  await revokeTokens(trx, accountId, purpose);
  await insertToken(trx, { purpose, accountId, tokenHash: codeMac(services, nonce, code), data: { nonce, phone }, ttlSeconds: services.config.lifecycle.phoneCodeTtl });
  await services.notifier.queueSms(trx, { to: phone, template: 'phone-code', data: { code, expiresInMinutes: wholeUnits(services.config.lifecycle.phoneCodeTtl, 60) } });
}

/**
 * Checks a code against the newest outstanding one; returns the phone it was sent to when right
 * (and uses it up), or undefined. Wrong guesses are counted.
 */
export async function checkSmsCode(services: LifecycleServices, trx: Knex.Transaction, purpose: SmsCodePurpose, accountId: string, rawCode: string): Promise<string | undefined> {
  const code = String(rawCode ?? '').replace(/\s+/g, '');
  const row = await latestUsableToken(trx, accountId, purpose);
  if (!row || row.attempts >= MAX_ATTEMPTS) return undefined;
  const expected = Buffer.from(row.token_hash, 'hex');
  const actual = Buffer.from(codeMac(services, String(row.data.nonce), code), 'hex');
  if (!/^\d{6}$/.test(code) || !crypto.timingSafeEqual(expected, actual)) {
    await countAttempt(trx, row.id);
    return undefined;
  }
  return (await consumeTokenById(trx, row.id)) ? String(row.data.phone) : undefined;
}
