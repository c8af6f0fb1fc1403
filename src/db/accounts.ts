import type { Knex } from 'knex';
import { isUuid } from '../uuid.ts';

export type AccountStatus = 'pending' | 'active' | 'suspended' | 'blocked' | 'locked' | 'deleted';

export interface AccountRow {
  id: string;
  email: string;
  email_verified: boolean;
  name: string | null;
  password_hash: string | null;
  status: AccountStatus;
  phone_number: string | null;
  phone_number_verified: boolean;
  failed_login_count: number;
  lockout_count: number;
  locked_until: Date | null;
  last_login_at: Date | null;
  tokens_valid_after: Date | null;
  /** A guest (anonymous) account: its email is a placeholder (domain/guest-accounts.ts). */
  is_guest: boolean;
  guest_upgraded_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

type Db = Knex | Knex.Transaction;


/** Returns undefined when the email is taken (compared case-insensitively by the unique index). */
export async function insertAccount(
  db: Db,
  account: { email: string; passwordHash: string | null; name: string | null; emailVerified: boolean; status?: AccountStatus },
): Promise<AccountRow | undefined> {
  // ON CONFLICT DO NOTHING instead of catching 23505: concurrent sign-ups race safely and the
  // surrounding transaction is not aborted by the violation.
  const [row] = await db('accounts')
    .insert({ email: account.email, password_hash: account.passwordHash, name: account.name, email_verified: account.emailVerified, status: account.status ?? 'active' })
    .onConflict()
    .ignore()
    .returning<AccountRow[]>('*');
  return row;
}

export async function findAccountRowByEmail(db: Db, email: string): Promise<AccountRow | undefined> {
  // A guest's placeholder address names no one: sign-in, signup, recovery and links never find it.
  return db('accounts').whereRaw('lower(email) = lower(?)', [email]).andWhere('is_guest', false).first<AccountRow | undefined>();
}

export async function findAccountRow(db: Db, id: string): Promise<AccountRow | undefined> {
  // A malformed id would make Postgres raise on the uuid cast; it cannot name an account anyway.
  if (!isUuid(id)) return undefined;
  return db('accounts').where({ id }).first<AccountRow | undefined>();
}

export async function listAccountRows(db: Db): Promise<AccountRow[]> {
  return db('accounts').select('*').orderBy([{ column: 'created_at' }, { column: 'id' }]);
}

/** Returns the updated row, or undefined when no account has this email. */
export async function updatePasswordHashByEmail(db: Db, email: string, passwordHash: string): Promise<AccountRow | undefined> {
  const [row] = await db('accounts')
    .whereRaw('lower(email) = lower(?)', [email])
    .update({ password_hash: passwordHash, updated_at: db.fn.now() })
    .returning<AccountRow[]>('*');
  return row;
}

/** Partial update of profile/status columns; returns the updated row. */
export async function updateAccount(
  db: Db,
  id: string,
  changes: Partial<Pick<AccountRow, 'email' | 'email_verified' | 'name' | 'password_hash' | 'status' | 'phone_number' | 'phone_number_verified'>> & { revokeTokens?: boolean; clearLockout?: boolean },
): Promise<AccountRow | undefined> {
  const { revokeTokens, clearLockout, ...columns } = changes;
  const [row] = await db('accounts')
    .where({ id })
    .update({
      ...columns,
      ...(revokeTokens ? { tokens_valid_after: db.fn.now() } : {}),
      ...(clearLockout ? { failed_login_count: 0, lockout_count: 0, locked_until: null } : {}),
      updated_at: db.fn.now(),
    })
    .returning<AccountRow[]>('*');
  return row;
}

export interface AccountSearch {
  /** Case-insensitive substring of the email address. */
  email?: string;
  /** Case-insensitive substring of the name. */
  name?: string;
  status?: AccountStatus;
}

/** An account row with its position in the newest-first order, to resume a listing after it. */
export type AccountRowWithSortKey = AccountRow & { sort_key: string };

function likePattern(fragment: string): string {
  return `%${fragment.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Newest first. `after` is the sort key and id of the last row of a previous page; the key
 * is created_at as text with full microsecond precision, which a JavaScript Date would lose.
 */
export async function searchAccountRows(db: Db, search: AccountSearch, page: { after?: { sortKey: string; id: string }; limit: number }): Promise<AccountRowWithSortKey[]> {
  const q = db('accounts').select('*', db.raw(`to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS sort_key`));
  if (search.email !== undefined) q.whereRaw('email ILIKE ?', [likePattern(search.email)]);
  if (search.name !== undefined) q.whereRaw('name ILIKE ?', [likePattern(search.name)]);
  if (search.status !== undefined) q.where('status', search.status);
  if (page.after !== undefined && isUuid(page.after.id)) {
    q.whereRaw('(created_at, id) < (?::timestamptz, ?::uuid)', [page.after.sortKey, page.after.id]);
  }
  return q.orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(page.limit);
}
