// Authenticator-app codes (RFC 6238): enrollment shows the secret as a QR code, as text and as
// an otpauth URI, and counts only once a valid code confirms it. Codes are accepted one step
// either side of now; a step once used is refused afterwards (no replay, even within 30 s).
import { generateSecret, generateURI, verify } from 'otplib';
import QRCode from 'qrcode';
import type { Knex } from 'knex';
import { advanceTotpStep, confirmFactor, deleteUnconfirmed, findFactor, insertFactor, listFactors, type FactorRow } from '../db/mfa-factors.ts';
import { AppError } from '../errors.ts';
import type { LifecycleServices } from './signup.ts';
import { auditContext, recordAudit, type AuditMeta } from './audit.ts';

const PERIOD = 30;

function secretAad(accountId: string): string {
  return `totp_secret:${accountId}`;
}

export interface TotpEnrollment {
  factorId: string;
  secret: string;
  uri: string;
  qrSvg: string;
}

/** Starts (or restarts) enrollment: a new secret, stored encrypted, not yet usable. */
export async function beginTotpEnrollment(services: LifecycleServices, account: { id: string; email: string }): Promise<TotpEnrollment> {
  const secret = generateSecret({ length: 20 });
  const row = await services.knex.transaction(async (trx) => {
    await deleteUnconfirmed(trx, account.id, 'totp');
    return insertFactor(trx, {
      account_id: account.id,
      type: 'totp',
      name: 'Authenticator app',
      totp_secret_ciphertext: services.secrets.encrypt(secret, secretAad(account.id)),
    });
  });
  const uri = generateURI({ issuer: services.config.productName, label: account.email, secret, period: PERIOD, digits: 6, algorithm: 'sha1' });
  const qrSvg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 1 });
  return { factorId: row.id, secret, uri, qrSvg };
}

/** The enrollment in progress, for showing the same secret again (e.g. after a wrong code). */
export async function pendingTotpEnrollment(services: LifecycleServices, account: { id: string; email: string }, factorId: string): Promise<TotpEnrollment | undefined> {
  const row = await findFactor(services.knex, account.id, factorId);
  if (!row || row.type !== 'totp' || row.confirmed_at || !row.totp_secret_ciphertext) return undefined;
  const secret = services.secrets.decryptText(row.totp_secret_ciphertext, secretAad(account.id));
  const uri = generateURI({ issuer: services.config.productName, label: account.email, secret, period: PERIOD, digits: 6, algorithm: 'sha1' });
  return { factorId: row.id, secret, uri, qrSvg: await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 1 }) };
}

async function matchingStep(services: LifecycleServices, row: FactorRow, code: string): Promise<number | undefined> {
  if (!row.totp_secret_ciphertext || !/^\d{6}$/.test(code)) return undefined;
  const secret = services.secrets.decryptText(row.totp_secret_ciphertext, secretAad(row.account_id));
  const lastStep = row.totp_last_step === null ? undefined : Number(row.totp_last_step);
  const result = await verify({ secret, token: code, period: PERIOD, epochTolerance: PERIOD, ...(lastStep !== undefined ? { afterTimeStep: lastStep } : {}) });
  return result.valid && 'timeStep' in result ? result.timeStep : undefined;
}

/** Confirms an enrollment with a code from the app; returns false for a wrong code. */
export async function confirmTotpEnrollment(services: LifecycleServices, trx: Knex.Transaction, accountId: string, factorId: string, rawCode: string, meta: AuditMeta = {}): Promise<boolean> {
  const row = await findFactor(trx, accountId, factorId);
  if (!row || row.type !== 'totp' || row.confirmed_at) throw new AppError('enrollment_expired', 'This set-up was replaced or finished. Start again.', 400);
  const step = await matchingStep(services, row, rawCode.replace(/\s+/g, ''));
  if (step === undefined || !(await advanceTotpStep(trx, row.id, step))) {
    await recordAudit(trx, { type: 'mfa.factor_added', outcome: 'failure', accountId, ...auditContext(meta, { factor: 'totp', reason: 'wrong_code' }) });
    return false;
  }
  await confirmFactor(trx, row.id);
  return true;
}

/** Checks a sign-in code against the account's authenticator apps; true once per time step. */
export async function verifyTotpCode(services: LifecycleServices, trx: Knex.Transaction, accountId: string, rawCode: string): Promise<boolean> {
  const code = rawCode.replace(/\s+/g, '');
  for (const row of (await listFactors(trx, accountId, { confirmedOnly: true })).filter((f) => f.type === 'totp')) {
    const step = await matchingStep(services, row, code);
    if (step !== undefined && (await advanceTotpStep(trx, row.id, step))) return true;
  }
  return false;
}
