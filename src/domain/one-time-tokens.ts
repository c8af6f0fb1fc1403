// Single-use links: 256 random bits in the link, only their SHA-256 in the database. A fast hash
// is right here: the token has full entropy, so there is nothing to brute-force offline.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { consumeToken, findUsableToken, insertToken, revokeTokens, type OneTimeTokenRow } from '../db/one-time-tokens.ts';

export type TokenPurpose = 'verify_email' | 'reset_password' | 'invitation' | 'phone_code' | 'mfa_sms' | 'magic_link' | 'webauthn_challenge';

export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

function looksLikeToken(token: unknown): token is string {
  return typeof token === 'string' && /^[A-Za-z0-9_-]{20,128}$/.test(token);
}

/** Issues a new token (replacing outstanding ones of the same purpose) and returns the secret. */
export async function issueToken(db: Knex | Knex.Transaction, purpose: TokenPurpose, accountId: string, ttlSeconds: number, data: Record<string, unknown> = {}): Promise<string> {
  const token = crypto.randomBytes(32).toString('base64url');
  await revokeTokens(db, accountId, purpose);
  await insertToken(db, { purpose, accountId, tokenHash: hashToken(token), data, ttlSeconds });
  return token;
}

export async function peekToken(db: Knex | Knex.Transaction, purpose: TokenPurpose, token: unknown): Promise<OneTimeTokenRow | undefined> {
  return looksLikeToken(token) ? findUsableToken(db, purpose, hashToken(token)) : undefined;
}

export async function redeemToken(db: Knex | Knex.Transaction, purpose: TokenPurpose, token: unknown): Promise<OneTimeTokenRow | undefined> {
  return looksLikeToken(token) ? consumeToken(db, purpose, hashToken(token)) : undefined;
}
