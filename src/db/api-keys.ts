import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export interface ApiKeyRow {
  id: string;
  name: string;
  key_hash: string;
  key_hint: string;
  owner_account_id: string | null;
  owner_client_id: string | null;
  resource_id: string;
  scopes: string[];
  expires_at: Date | null;
  last_used_at: Date | null;
  /** bigint: the pg driver returns it as a string. */
  usage_count: string | number;
  revoked_at: Date | null;
  replaced_by: string | null;
  created_at: Date;
}

/** A key with the identifier of the API it is for. */
export type ApiKeyWithResource = ApiKeyRow & { resource_identifier: string };

/** The stored row as last read, with the database's verdict on why it cannot be used now. */
export type ApiKeyState = ApiKeyWithResource & { expired: boolean; owner_status: string | null };

export interface ApiKeyFilter {
  ownerAccountId?: string;
  ownerClientId?: string;
  resourceId?: string;
}

function withResource(db: Db): Knex.QueryBuilder {
  return db('api_keys as k').join('resource_servers as r', 'r.id', 'k.resource_id').select('k.*', 'r.identifier as resource_identifier');
}

export async function insertApiKey(
  db: Db,
  key: {
    name: string;
    keyHash: string;
    keyHint: string;
    ownerAccountId: string | null;
    ownerClientId: string | null;
    resourceId: string;
    scopes: string[];
    expiresAt: Date | null;
  },
): Promise<ApiKeyRow> {
  const [row] = await db('api_keys')
    .insert({
      name: key.name,
      key_hash: key.keyHash,
      key_hint: key.keyHint,
      owner_account_id: key.ownerAccountId,
      owner_client_id: key.ownerClientId,
      resource_id: key.resourceId,
      // Serialised here because the pg driver would turn the array into a Postgres array.
      scopes: JSON.stringify(key.scopes),
      expires_at: key.expiresAt,
    })
    .returning<ApiKeyRow[]>('*');
  return row!;
}

export async function findApiKeyRow(db: Db, id: string): Promise<ApiKeyWithResource | undefined> {
  return withResource(db).where('k.id', id).first<ApiKeyWithResource | undefined>();
}

/** The row locked for the rest of the transaction, so two rotations of one key cannot both win. */
export async function lockApiKeyRow(trx: Knex.Transaction, id: string): Promise<(ApiKeyWithResource & { expired: boolean }) | undefined> {
  return withResource(trx)
    .select(trx.raw('coalesce(k.expires_at <= now(), false) AS expired'))
    .where('k.id', id)
    .forUpdate('k')
    .first<(ApiKeyWithResource & { expired: boolean }) | undefined>();
}

export async function listApiKeyRows(db: Db, filter: ApiKeyFilter = {}): Promise<ApiKeyWithResource[]> {
  const query = withResource(db).orderBy([{ column: 'k.created_at', order: 'desc' }, { column: 'k.id' }]);
  if (filter.ownerAccountId !== undefined) query.where('k.owner_account_id', filter.ownerAccountId);
  if (filter.ownerClientId !== undefined) query.where('k.owner_client_id', filter.ownerClientId);
  if (filter.resourceId !== undefined) query.where('k.resource_id', filter.resourceId);
  return query;
}

/**
 * Ends the old key of a rotation: it names its successor and stops working `overlapSeconds` from
 * now, or at its own expiry when that comes first.
 */
export async function markReplaced(db: Db, id: string, successorId: string, overlapSeconds: number): Promise<void> {
  await db('api_keys')
    .where({ id })
    .update({
      replaced_by: successorId,
      expires_at: db.raw("least(expires_at, now() + (? * interval '1 second'))", [overlapSeconds]),
    });
}

/** Revokes the key now; undefined when it was already revoked (or does not exist). */
export async function markRevoked(db: Db, id: string): Promise<{ id: string } | undefined> {
  const [row] = await db('api_keys').where({ id }).whereNull('revoked_at').update({ revoked_at: db.fn.now() }).returning<{ id: string }[]>('id');
  return row;
}

/**
 * Counts one use of the key with this hash and returns it, in one statement, when it is usable
 * now: not revoked, not expired, and its owner account (if any) active. Undefined otherwise.
 */
export async function useApiKey(db: Db, keyHash: string): Promise<ApiKeyWithResource | undefined> {
  const result = await db.raw<{ rows: ApiKeyWithResource[] }>(
    `UPDATE api_keys k
        SET usage_count = k.usage_count + 1, last_used_at = now()
       FROM resource_servers r
      WHERE r.id = k.resource_id
        AND k.key_hash = ?
        AND k.revoked_at IS NULL
        AND (k.expires_at IS NULL OR k.expires_at > now())
        AND (k.owner_account_id IS NULL OR EXISTS (SELECT 1 FROM accounts a WHERE a.id = k.owner_account_id AND a.status = 'active'))
  RETURNING k.*, r.identifier AS resource_identifier`,
    [keyHash],
  );
  return result.rows[0];
}

/** The key with this hash as it is, without counting a use: explains why `useApiKey` refused it. */
export async function findApiKeyStateByHash(db: Db, keyHash: string): Promise<ApiKeyState | undefined> {
  return withResource(db)
    .leftJoin('accounts as a', 'a.id', 'k.owner_account_id')
    .select('a.status as owner_status', db.raw('coalesce(k.expires_at <= now(), false) AS expired'))
    .where('k.key_hash', keyHash)
    .first<ApiKeyState | undefined>();
}
