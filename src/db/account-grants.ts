// The queryable record of each grant (migration 20261121000009): which account allowed which
// app what, and when. The grants themselves live in the protocol store.
import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export interface AccountGrantRow {
  grant_id: string;
  account_id: string;
  client_id: string;
  scopes: string[];
  resource_scopes: Record<string, string[]>;
  created_at: Date;
  updated_at: Date;
  last_used_at: Date | null;
  expires_at: Date | null;
}

export interface GrantSeen {
  grantId: string;
  accountId: string;
  clientId: string;
  scopes: string[];
  resourceScopes: Record<string, string[]>;
  expiresAt: Date | undefined;
}

/** Records a saved grant; a grant saved again (more scopes consented) keeps its creation date. */
export async function upsertGrantRecord(db: Db, seen: GrantSeen): Promise<void> {
  await db('account_grants')
    .insert({
      grant_id: seen.grantId,
      account_id: seen.accountId,
      client_id: seen.clientId,
      // Serialised here because the pg driver would turn a top-level array into a Postgres array.
      scopes: JSON.stringify(seen.scopes),
      resource_scopes: JSON.stringify(seen.resourceScopes),
      last_used_at: db.fn.now(),
      expires_at: seen.expiresAt ?? null,
    })
    .onConflict('grant_id')
    .merge({
      scopes: JSON.stringify(seen.scopes),
      resource_scopes: JSON.stringify(seen.resourceScopes),
      updated_at: db.fn.now(),
      last_used_at: db.fn.now(),
      expires_at: seen.expiresAt ?? null,
    });
}

/**
 * Marks the grant used now, unless it was marked less than `precisionSeconds` ago: several
 * instances each remembering their own last write would otherwise all write once a minute, and
 * an unchanged row is not rewritten (in PostgreSQL every UPDATE writes a new row version).
 */
export async function touchGrantRecord(db: Db, grantId: string, precisionSeconds: number): Promise<void> {
  await db('account_grants')
    .where({ grant_id: grantId })
    .andWhere((q) => q.whereNull('last_used_at').orWhereRaw('last_used_at < now() - make_interval(secs => ?)', [precisionSeconds]))
    .update({ last_used_at: db.fn.now() });
}

export async function deleteGrantRecords(db: Db, grantIds: string[]): Promise<void> {
  if (grantIds.length === 0) return;
  await db('account_grants').whereIn('grant_id', grantIds).delete();
}

/** A grant with the app's registered name; `client_registered` is false for built-in or removed apps. */
export type AccountGrantListing = AccountGrantRow & { client_name: string | null; client_registered: boolean };

/** The account's grants the provider still keeps (unexpired), newest first. */
export async function listGrantRecords(db: Db, accountId: string): Promise<AccountGrantListing[]> {
  return db('account_grants as g')
    .leftJoin('clients as c', 'c.client_id', 'g.client_id')
    .where('g.account_id', accountId)
    .andWhere((q) => q.whereNull('g.expires_at').orWhere('g.expires_at', '>', db.fn.now()))
    .select<AccountGrantListing[]>('g.*', db.raw("c.metadata->>'client_name' as client_name"), db.raw('(c.client_id is not null) as client_registered'))
    .orderBy('g.created_at', 'desc');
}

/** Every recorded grant id of the account, for one app or all of them, expired ones included. */
export async function grantIdsOf(db: Db, accountId: string, clientId?: string): Promise<string[]> {
  const q = db('account_grants').where({ account_id: accountId });
  if (clientId !== undefined) q.andWhere({ client_id: clientId });
  return q.pluck('grant_id');
}

export async function deleteExpiredGrantRecords(db: Db, accountId: string): Promise<void> {
  await db('account_grants').where({ account_id: accountId }).andWhere('expires_at', '<=', db.fn.now()).delete();
}
