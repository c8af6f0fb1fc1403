// Recovery codes: ten single-use codes shown once when the first second factor is set up (and
// whenever regenerated), for when the factor is lost. Stored as keyed MACs.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { countUnusedRecoveryCodes, replaceRecoveryCodes, useRecoveryCode } from '../db/mfa-factors.ts';
import type { Services } from '../services.ts';

const COUNT = 10;
// Unambiguous characters (no 0/o, 1/l/i), 10 of them: about 50 bits per code.
const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

type CodeServices = Pick<Services, 'secrets'>;

function normalize(code: string): string {
  return code.toLowerCase().replace(/[\s-]+/g, '');
}

function mac(services: CodeServices, accountId: string, code: string): string {
  return services.secrets.mac(`${accountId}:${normalize(code)}`, 'recovery-code');
}

function newCode(): string {
  const chars = Array.from({ length: 10 }, () => ALPHABET[crypto.randomInt(ALPHABET.length)]).join('');
  return `${chars.slice(0, 5)}-${chars.slice(5)}`;
}

/** Replaces the account's codes; returns the new ones (shown once, never stored in clear). */
export async function regenerateRecoveryCodes(services: CodeServices, trx: Knex.Transaction, accountId: string): Promise<string[]> {
  const codes = Array.from({ length: COUNT }, newCode);
  await replaceRecoveryCodes(trx, accountId, codes.map((c) => mac(services, accountId, c)));
  return codes;
}

export async function redeemRecoveryCode(services: CodeServices, trx: Knex.Transaction, accountId: string, code: string): Promise<boolean> {
  if (!/^[a-z0-9\s-]{8,20}$/i.test(code)) return false;
  return useRecoveryCode(trx, accountId, mac(services, accountId, code));
}

export function unusedRecoveryCodes(knex: Knex | Knex.Transaction, accountId: string): Promise<number> {
  return countUnusedRecoveryCodes(knex, accountId);
}
