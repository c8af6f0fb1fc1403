// Refresh-token bindings: one row per issued refresh token, keyed by a SHA-256 of its value.
import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export interface TokenBindingRow {
  token_hash: string;
  account_id: string;
  client_id: string;
  session_uid: string | null;
  grant_id: string | null;
  fingerprint: string;
  ua_family: string | null;
  dpop_jkt: string | null;
  remember: boolean;
  alerted_fingerprint: string | null;
  created_at: Date;
  rotated_at: Date | null;
  rotation_fingerprint: string | null;
  successor_hash: string | null;
  successor_ciphertext: string | null;
  grace_until: Date | null;
  expires_at: Date;
}

export interface NewBinding {
  tokenHash: string;
  accountId: string;
  clientId: string;
  sessionUid: string | undefined;
  grantId: string | undefined;
  fingerprint: string;
  uaFamily: string | undefined;
  dpopJkt: string | undefined;
  remember: boolean;
  alertedFingerprint: string | undefined;
  expiresAt: Date;
}

export interface Rotation {
  rotatedAt: Date;
  rotationFingerprint: string;
  successorHash: string;
  /** Only while the client's grace window is open; null otherwise. */
  successorCiphertext: string | null;
  graceUntil: Date | null;
}

export async function findBinding(db: Db, tokenHash: string): Promise<TokenBindingRow | undefined> {
  return db<TokenBindingRow>('token_bindings').where({ token_hash: tokenHash }).first();
}

/** Stores a newly issued token's binding (a token value is never issued twice; a repeat is ignored). */
export async function insertBinding(db: Db, binding: NewBinding): Promise<void> {
  await db('token_bindings')
    .insert({
      token_hash: binding.tokenHash,
      account_id: binding.accountId,
      client_id: binding.clientId,
      session_uid: binding.sessionUid ?? null,
      grant_id: binding.grantId ?? null,
      fingerprint: binding.fingerprint,
      ua_family: binding.uaFamily ?? null,
      dpop_jkt: binding.dpopJkt ?? null,
      remember: binding.remember,
      alerted_fingerprint: binding.alertedFingerprint ?? null,
      expires_at: binding.expiresAt,
    })
    .onConflict('token_hash')
    .ignore();
}

/** Records that the token was rotated and what it was rotated into. */
export async function markRotated(db: Db, tokenHash: string, rotation: Rotation): Promise<void> {
  await db('token_bindings').where({ token_hash: tokenHash }).update({
    rotated_at: rotation.rotatedAt,
    rotation_fingerprint: rotation.rotationFingerprint,
    successor_hash: rotation.successorHash,
    successor_ciphertext: rotation.successorCiphertext,
    grace_until: rotation.graceUntil,
  });
}

export async function setAlertedFingerprint(db: Db, tokenHash: string, fingerprint: string): Promise<void> {
  await db('token_bindings').where({ token_hash: tokenHash }).update({ alerted_fingerprint: fingerprint });
}

/**
 * Housekeeping: forgets tokens past their expiry and wipes successor responses whose grace window
 * has closed (they are never served again, so they are not kept). Bounded per call.
 */
export async function sweepBindings(db: Db, now: Date, limit = 500): Promise<void> {
  await db('token_bindings')
    .whereIn('token_hash', db('token_bindings').select('token_hash').where('expires_at', '<', now).limit(limit))
    .delete();
  await db('token_bindings')
    .whereIn('token_hash', db('token_bindings').select('token_hash').whereNotNull('successor_ciphertext').andWhere('grace_until', '<', now).limit(limit))
    .update({ successor_ciphertext: null });
}
