// Guest accounts in the accounts table: creating one, saving it (email + password), and finding
// the ones nobody has used for longer than the configured lifetime.
import type { Knex } from 'knex';
import type { AccountRow } from './accounts.ts';

type Db = Knex | Knex.Transaction;

export async function insertGuestAccount(db: Db, account: { id: string; placeholderEmail: string }): Promise<AccountRow> {
  const [row] = await db('accounts')
    .insert({ id: account.id, email: account.placeholderEmail, password_hash: null, name: null, email_verified: false, status: 'active', is_guest: true })
    .returning<AccountRow[]>('*');
  if (!row) throw new Error('inserting a guest account returned no row');
  return row;
}

/** The guest account, locked for the rest of the transaction; undefined when it is not a guest. */
export async function lockGuestAccount(trx: Knex.Transaction, id: string): Promise<AccountRow | undefined> {
  return trx('accounts').where({ id, is_guest: true }).whereNot('status', 'deleted').forUpdate().first<AccountRow | undefined>();
}

/** Turns the guest into an ordinary account with an unverified address; undefined when it is not a guest. */
export async function saveGuestAccount(trx: Knex.Transaction, id: string, changes: { email: string; passwordHash: string }): Promise<AccountRow | undefined> {
  const [row] = await trx('accounts')
    .where({ id, is_guest: true })
    .update({
      email: changes.email,
      email_verified: false,
      password_hash: changes.passwordHash,
      is_guest: false,
      guest_upgraded_at: trx.fn.now(),
      updated_at: trx.fn.now(),
    })
    .returning<AccountRow[]>('*');
  return row;
}

/**
 * Guests with no activity since `days` ago: not created, signed in, seen in a session or using a
 * grant (token refreshes) since then. A bound parameter `?` below is always that cutoff.
 */
function whereStale(q: Knex.QueryBuilder, days: number): Knex.QueryBuilder {
  const cutoff = "now() - (?::int * interval '1 day')";
  return q
    .where('a.is_guest', true)
    .whereRaw(`a.created_at < ${cutoff}`, [days])
    .whereRaw(`coalesce(a.last_login_at, a.created_at) < ${cutoff}`, [days])
    .whereRaw(`NOT EXISTS (SELECT 1 FROM account_sessions s WHERE s.account_id = a.id AND s.last_active_at >= ${cutoff})`, [days])
    .whereRaw(`NOT EXISTS (SELECT 1 FROM account_grants g WHERE g.account_id = a.id AND g.last_used_at >= ${cutoff})`, [days]);
}

/** Up to `limit` stale guests, oldest first. */
export async function staleGuestIds(db: Db, days: number, limit: number): Promise<string[]> {
  const rows = await whereStale(db('accounts as a').select('a.id'), days).orderBy('a.created_at').limit(limit) as { id: string }[];
  return rows.map((r) => r.id);
}

/**
 * The guest, locked, if it is still stale; undefined when it was used or saved meanwhile, is
 * gone, or another instance is removing it right now (SKIP LOCKED: that instance finishes it).
 */
export async function lockStaleGuest(trx: Knex.Transaction, id: string, days: number): Promise<AccountRow | undefined> {
  return whereStale(trx('accounts as a').select('a.*').where('a.id', id), days).forUpdate().skipLocked().first() as Promise<AccountRow | undefined>;
}
