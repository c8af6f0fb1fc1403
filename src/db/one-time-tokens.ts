import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export interface OneTimeTokenRow {
  id: string;
  purpose: string;
  account_id: string | null;
  token_hash: string;
  data: Record<string, unknown>;
  attempts: number;
  expires_at: Date;
  consumed_at: Date | null;
  created_at: Date;
}

export async function insertToken(db: Db, row: { purpose: string; accountId: string; tokenHash: string; data: Record<string, unknown>; ttlSeconds: number }): Promise<OneTimeTokenRow> {
  const [inserted] = await db('one_time_tokens')
    .insert({
      purpose: row.purpose,
      account_id: row.accountId,
      token_hash: row.tokenHash,
      data: JSON.stringify(row.data),
      expires_at: db.raw("now() + (? * interval '1 second')", [row.ttlSeconds]),
    })
    .returning<OneTimeTokenRow[]>('*');
  return inserted!;
}

/** A usable (unexpired, unconsumed) token, without consuming it. */
export async function findUsableToken(db: Db, purpose: string, tokenHash: string): Promise<OneTimeTokenRow | undefined> {
  return db('one_time_tokens')
    .where({ purpose, token_hash: tokenHash })
    .whereNull('consumed_at')
    .andWhere('expires_at', '>', db.fn.now())
    .first<OneTimeTokenRow | undefined>();
}

/** Consume atomically: of two concurrent callers only one gets the row. */
export async function consumeToken(db: Db, purpose: string, tokenHash: string): Promise<OneTimeTokenRow | undefined> {
  const [row] = await db('one_time_tokens')
    .where({ purpose, token_hash: tokenHash })
    .whereNull('consumed_at')
    .andWhere('expires_at', '>', db.fn.now())
    .update({ consumed_at: db.fn.now() })
    .returning<OneTimeTokenRow[]>('*');
  return row;
}

/** Latest token of a purpose for an account, and how many were issued since `sinceSeconds` ago. */
export async function recentTokens(db: Db, accountId: string, purpose: string, sinceSeconds: number): Promise<{ count: number; latestAt: Date | undefined }> {
  const row = await db('one_time_tokens')
    .where({ account_id: accountId, purpose })
    .andWhere('created_at', '>', db.raw("now() - (? * interval '1 second')", [sinceSeconds]))
    .select(db.raw('count(*) as count'), db.raw('max(created_at) as latest'))
    .first<{ count: string | number; latest: Date | null }>();
  return { count: Number(row?.count ?? 0), latestAt: row?.latest ? new Date(row.latest) : undefined };
}

/** Ends every outstanding token of a purpose for an account (a new link replaces old ones). */
export async function revokeTokens(db: Db, accountId: string, purpose: string): Promise<void> {
  await db('one_time_tokens').where({ account_id: accountId, purpose }).whereNull('consumed_at').update({ consumed_at: db.fn.now() });
}

/** Counts a wrong guess at a short code; returns the attempts so far. */
export async function countAttempt(db: Db, id: string): Promise<number> {
  const [row] = await db('one_time_tokens').where({ id }).increment('attempts', 1).returning<{ attempts: number }[]>('attempts');
  return row?.attempts ?? 0;
}

export async function deleteExpiredTokens(db: Db): Promise<void> {
  await db('one_time_tokens').where('expires_at', '<', db.raw("now() - interval '7 days'")).delete();
}

export async function latestUsableToken(db: Db, accountId: string, purpose: string): Promise<OneTimeTokenRow | undefined> {
  return db('one_time_tokens')
    .where({ account_id: accountId, purpose })
    .whereNull('consumed_at')
    .andWhere('expires_at', '>', db.fn.now())
    .orderBy('created_at', 'desc')
    .first<OneTimeTokenRow | undefined>();
}

export async function consumeTokenById(db: Db, id: string): Promise<boolean> {
  const rows = await db('one_time_tokens').where({ id }).whereNull('consumed_at').update({ consumed_at: db.fn.now() }).returning<{ id: string }[]>('id');
  return rows.length === 1;
}

/** Merges fields into a token's data (e.g. marks a sign-in link approved). */
export async function mergeTokenData(db: Db, id: string, fields: Record<string, unknown>): Promise<void> {
  await db('one_time_tokens').where({ id }).update({ data: db.raw('data || ?::jsonb', [JSON.stringify(fields)]) });
}

/** A usable token of a purpose whose data contains all of `match` (e.g. an interaction uid). */
export async function findUsableTokenByData(db: Db, purpose: string, match: Record<string, unknown>): Promise<OneTimeTokenRow | undefined> {
  return db('one_time_tokens')
    .where({ purpose })
    .whereNull('consumed_at')
    .andWhere('expires_at', '>', db.fn.now())
    .andWhereRaw('data @> ?::jsonb', [JSON.stringify(match)])
    .orderBy('created_at', 'desc')
    .first<OneTimeTokenRow | undefined>();
}
