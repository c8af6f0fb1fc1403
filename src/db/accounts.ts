import type { Knex } from 'knex';

export type AccountStatus = 'pending' | 'active' | 'suspended' | 'blocked' | 'locked' | 'deleted';

export interface AccountRow {
  id: string;
  email: string;
  email_verified: boolean;
  name: string | null;
  password_hash: string | null;
  status: AccountStatus;
  created_at: Date;
  updated_at: Date;
}

type Db = Knex | Knex.Transaction;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Returns undefined when the email is taken (compared case-insensitively by the unique index). */
export async function insertAccount(
  db: Db,
  account: { email: string; passwordHash: string | null; name: string | null; emailVerified: boolean },
): Promise<AccountRow | undefined> {
  // ON CONFLICT DO NOTHING instead of catching 23505: concurrent sign-ups race safely and the
  // surrounding transaction is not aborted by the violation.
  const [row] = await db('accounts')
    .insert({ email: account.email, password_hash: account.passwordHash, name: account.name, email_verified: account.emailVerified })
    .onConflict()
    .ignore()
    .returning<AccountRow[]>('*');
  return row;
}

export async function findAccountRowByEmail(db: Db, email: string): Promise<AccountRow | undefined> {
  return db('accounts').whereRaw('lower(email) = lower(?)', [email]).first<AccountRow | undefined>();
}

export async function findAccountRow(db: Db, id: string): Promise<AccountRow | undefined> {
  // A malformed id would make Postgres raise on the uuid cast; it cannot name an account anyway.
  if (!UUID.test(id)) return undefined;
  return db('accounts').where({ id }).first<AccountRow | undefined>();
}

export async function listAccountRows(db: Db): Promise<AccountRow[]> {
  return db('accounts').select('*').orderBy([{ column: 'created_at' }, { column: 'id' }]);
}

export async function updatePasswordHash(db: Db, id: string, passwordHash: string): Promise<void> {
  await db('accounts').where({ id }).update({ password_hash: passwordHash, updated_at: db.fn.now() });
}

/** Returns the updated row, or undefined when no account has this email. */
export async function updatePasswordHashByEmail(db: Db, email: string, passwordHash: string): Promise<AccountRow | undefined> {
  const [row] = await db('accounts')
    .whereRaw('lower(email) = lower(?)', [email])
    .update({ password_hash: passwordHash, updated_at: db.fn.now() })
    .returning<AccountRow[]>('*');
  return row;
}
