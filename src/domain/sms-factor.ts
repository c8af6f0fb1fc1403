// SMS codes as a second factor: sent to the account's verified phone when the person asks for
// one on the sign-in page (never automatically, so nobody can make us text a stranger).
import type { Knex } from 'knex';
import { findAccountRow } from '../db/accounts.ts';
import { listFactors } from '../db/mfa-factors.ts';
import { recentTokens } from '../db/one-time-tokens.ts';
import { AppError } from '../errors.ts';
import { checkSmsCode, issueSmsCode } from './sms-codes.ts';
import type { LifecycleServices } from './signup.ts';

const RESEND_COOLDOWN_SECONDS = 30;

async function smsPhone(db: Knex | Knex.Transaction, accountId: string): Promise<string | undefined> {
  const account = await findAccountRow(db, accountId);
  const enabled = (await listFactors(db, accountId, { confirmedOnly: true })).some((f) => f.type === 'sms');
  return enabled && account?.phone_number && account.phone_number_verified ? account.phone_number : undefined;
}

export async function sendSmsChallenge(services: LifecycleServices, accountId: string): Promise<void> {
  const sent = await services.knex.transaction(async (trx) => {
    const phone = await smsPhone(trx, accountId);
    if (!phone) throw new AppError('sms_unavailable', 'Text message codes are not set up for this account.', 400);
    const recent = await recentTokens(trx, accountId, 'mfa_sms', RESEND_COOLDOWN_SECONDS);
    if (recent.count > 0) return false;
    await issueSmsCode(services, trx, 'mfa_sms', accountId, phone);
    return true;
  });
  if (sent) services.notifier.kick();
}

export async function checkSmsChallenge(services: LifecycleServices, trx: Knex.Transaction, accountId: string, code: string): Promise<boolean> {
  const phone = await smsPhone(trx, accountId);
  if (!phone) return false;
  return (await checkSmsCode(services, trx, 'mfa_sms', accountId, code)) === phone;
}
