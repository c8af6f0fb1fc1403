import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export type FactorType = 'totp' | 'webauthn' | 'sms';

export interface FactorRow {
  id: string;
  account_id: string;
  type: FactorType;
  name: string;
  totp_secret_ciphertext: string | null;
  totp_last_step: string | number | null;
  credential_id: string | null;
  public_key: string | null;
  sign_count: string | number | null;
  transports: string[] | null;
  backup_eligible: boolean | null;
  backup_state: boolean | null;
  aaguid: string | null;
  confirmed_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
}

export async function insertFactor(db: Db, row: Partial<FactorRow> & { account_id: string; type: FactorType; name: string }): Promise<FactorRow> {
  const values = { ...row, ...(row.transports ? { transports: JSON.stringify(row.transports) } : {}) };
  const [inserted] = await db('mfa_factors').insert(values).returning<FactorRow[]>('*');
  return inserted!;
}

export async function listFactors(db: Db, accountId: string, opts: { confirmedOnly?: boolean } = {}): Promise<FactorRow[]> {
  const q = db<FactorRow>('mfa_factors').where({ account_id: accountId }).orderBy('created_at', 'asc');
  if (opts.confirmedOnly) q.whereNotNull('confirmed_at');
  return q;
}

export async function findFactor(db: Db, accountId: string, id: string): Promise<FactorRow | undefined> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
  return db<FactorRow>('mfa_factors').where({ account_id: accountId, id }).first();
}

export async function findFactorByCredentialId(db: Db, credentialId: string): Promise<FactorRow | undefined> {
  return db<FactorRow>('mfa_factors').where({ credential_id: credentialId, type: 'webauthn' }).whereNotNull('confirmed_at').first();
}

export async function confirmFactor(db: Db, id: string, changes: Partial<FactorRow> = {}): Promise<void> {
  await db('mfa_factors').where({ id }).update({ ...changes, confirmed_at: db.fn.now() });
}

export async function deleteFactor(db: Db, accountId: string, id: string): Promise<FactorRow | undefined> {
  const [row] = await db('mfa_factors').where({ account_id: accountId, id }).delete().returning<FactorRow[]>('*');
  return row;
}

/** Removes enrollments that were started and never confirmed. */
export async function deleteUnconfirmed(db: Db, accountId: string, type: FactorType): Promise<void> {
  await db('mfa_factors').where({ account_id: accountId, type }).whereNull('confirmed_at').delete();
}

/**
 * Records a TOTP code's time step as used, only if it is newer than the last one: of two
 * concurrent uses of one code, one wins.
 */
export async function advanceTotpStep(db: Db, id: string, step: number): Promise<boolean> {
  const rows = await db('mfa_factors')
    .where({ id })
    .andWhere((q) => q.whereNull('totp_last_step').orWhere('totp_last_step', '<', step))
    .update({ totp_last_step: step, last_used_at: db.fn.now() })
    .returning<{ id: string }[]>('id');
  return rows.length === 1;
}

export async function touchFactor(db: Db, id: string, changes: Partial<Pick<FactorRow, 'sign_count' | 'backup_state'>> = {}): Promise<void> {
  await db('mfa_factors').where({ id }).update({ ...changes, last_used_at: db.fn.now() });
}

export async function replaceRecoveryCodes(db: Db, accountId: string, macs: string[]): Promise<void> {
  await db('recovery_codes').where({ account_id: accountId }).delete();
  if (macs.length) await db('recovery_codes').insert(macs.map((code_mac) => ({ account_id: accountId, code_mac })));
}

/** Uses a recovery code atomically; false when unknown or already used. */
export async function useRecoveryCode(db: Db, accountId: string, mac: string): Promise<boolean> {
  const rows = await db('recovery_codes').where({ account_id: accountId, code_mac: mac }).whereNull('used_at').update({ used_at: db.fn.now() }).returning<{ id: string }[]>('id');
  return rows.length === 1;
}

export async function countUnusedRecoveryCodes(db: Db, accountId: string): Promise<number> {
  const row = await db('recovery_codes').where({ account_id: accountId }).whereNull('used_at').count<{ count: string | number }[]>('* as count').first();
  return Number(row?.count ?? 0);
}

export async function deleteRecoveryCodes(db: Db, accountId: string): Promise<void> {
  await db('recovery_codes').where({ account_id: accountId }).delete();
}
