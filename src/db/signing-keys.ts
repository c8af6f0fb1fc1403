import type { Knex } from 'knex';

export interface SigningKeyRow {
  kid: string;
  alg: string;
  private_jwk_ciphertext: string;
  public_jwk: Record<string, unknown>;
  status: 'active' | 'retired';
  created_at: Date;
  retired_at: Date | null;
}

/** Serialises key creation/rotation across processes (two instances starting at once). */
export async function lockSigningKeys(trx: Knex.Transaction): Promise<void> {
  await trx.raw("SELECT pg_advisory_xact_lock(hashtext('gatehouse.signing_keys'))");
}

export async function listKeys(db: Knex | Knex.Transaction): Promise<SigningKeyRow[]> {
  return db<SigningKeyRow>('signing_keys').select('*').orderBy([{ column: 'status', order: 'asc' }, { column: 'created_at', order: 'desc' }]);
}

/** Active keys and retired keys still inside their publication window, newest first. */
export async function publishedKeys(db: Knex, retiredSince: Date): Promise<SigningKeyRow[]> {
  return db<SigningKeyRow>('signing_keys')
    .where({ status: 'active' })
    .orWhere((q) => q.where({ status: 'retired' }).andWhere('retired_at', '>', retiredSince))
    .orderBy([{ column: 'status', order: 'asc' }, { column: 'created_at', order: 'desc' }]);
}

export async function insertKey(db: Knex | Knex.Transaction, row: Pick<SigningKeyRow, 'kid' | 'alg' | 'private_jwk_ciphertext' | 'public_jwk'>): Promise<void> {
  await db('signing_keys').insert({ ...row, public_jwk: JSON.stringify(row.public_jwk), status: 'active' });
}

export async function retireActiveKeys(db: Knex | Knex.Transaction): Promise<string[]> {
  const rows = await db('signing_keys').where({ status: 'active' }).update({ status: 'retired', retired_at: db.fn.now() }, ['kid']);
  return rows.map((r: { kid: string }) => r.kid);
}
