import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export interface AccountSessionRow {
  id: string;
  account_id: string;
  created_at: Date;
  last_active_at: Date;
  expires_at: Date | null;
  login_ip: string | null;
  last_ip: string | null;
  login_user_agent: string | null;
  last_user_agent: string | null;
  browser: string | null;
  os: string | null;
  device_type: string | null;
  location: string | null;
  remember: boolean;
  amr: string[];
  acr: string | null;
  clients: string[];
  revoked_at: Date | null;
  revoked_reason: string | null;
}

export interface SessionSeen {
  id: string;
  accountId: string;
  loginAt: Date;
  expiresAt: Date;
  ip: string | undefined;
  userAgent: string | undefined;
  browser: string | undefined;
  os: string | undefined;
  deviceType: string | undefined;
  location: string | undefined;
  remember: boolean;
  amr: string[];
  acr: string | undefined;
  clients: string[];
}

/**
 * Records a session's activity: the first sighting stores the sign-in details, later ones the
 * latest address, agent, apps and expiry. A revoked row is never revived.
 */
export async function upsertSession(db: Db, seen: SessionSeen): Promise<void> {
  await db('account_sessions')
    .insert({
      id: seen.id,
      account_id: seen.accountId,
      created_at: seen.loginAt,
      last_active_at: db.fn.now(),
      expires_at: seen.expiresAt,
      login_ip: seen.ip ?? null,
      last_ip: seen.ip ?? null,
      login_user_agent: seen.userAgent ?? null,
      last_user_agent: seen.userAgent ?? null,
      browser: seen.browser ?? null,
      os: seen.os ?? null,
      device_type: seen.deviceType ?? null,
      location: seen.location ?? null,
      remember: seen.remember,
      amr: JSON.stringify(seen.amr),
      acr: seen.acr ?? null,
      clients: JSON.stringify(seen.clients),
    })
    .onConflict('id')
    .merge({
      last_active_at: db.fn.now(),
      expires_at: seen.expiresAt,
      last_ip: seen.ip ?? null,
      last_user_agent: seen.userAgent ?? null,
      amr: JSON.stringify(seen.amr),
      acr: seen.acr ?? null,
      clients: JSON.stringify(seen.clients),
      // A session that signs in again as another account is a new sign-in for that account.
      account_id: seen.accountId,
    })
    .whereNull('account_sessions.revoked_at');
}

export async function touchSession(db: Db, id: string, seen: { ip?: string; userAgent?: string }): Promise<void> {
  await db('account_sessions').where({ id }).whereNull('revoked_at').update({ last_active_at: db.fn.now(), last_ip: seen.ip ?? null, last_user_agent: seen.userAgent ?? null });
}

export async function listActiveSessions(db: Db, accountId: string): Promise<AccountSessionRow[]> {
  return db<AccountSessionRow>('account_sessions')
    .where({ account_id: accountId })
    .whereNull('revoked_at')
    .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', db.fn.now()))
    .orderBy('last_active_at', 'desc');
}

export async function findSession(db: Db, id: string): Promise<AccountSessionRow | undefined> {
  return db<AccountSessionRow>('account_sessions').where({ id }).first();
}

export async function markSessionsRevoked(db: Db, where: { accountId: string; id?: string; exceptId?: string }, reason: string): Promise<string[]> {
  const q = db('account_sessions').where({ account_id: where.accountId }).whereNull('revoked_at');
  if (where.id) q.andWhere({ id: where.id });
  if (where.exceptId) q.andWhereNot({ id: where.exceptId });
  const rows = await q.update({ revoked_at: db.fn.now(), revoked_reason: reason }).returning<{ id: string }[]>('id');
  return rows.map((r) => r.id);
}

/** Whether the account has signed in before from a browser with this description. */
export async function knownDevice(db: Db, accountId: string, browser: string | undefined, os: string | undefined, excludeId: string): Promise<boolean> {
  const row = await db('account_sessions')
    .where({ account_id: accountId, browser: browser ?? null, os: os ?? null })
    .andWhereNot({ id: excludeId })
    .first('id');
  return row !== undefined;
}

/** Whether the account has any other session on record (so this is not its first sign-in). */
export async function hasOtherSessions(db: Db, accountId: string, excludeId: string): Promise<boolean> {
  return (await db('account_sessions').where({ account_id: accountId }).andWhereNot({ id: excludeId }).first('id')) !== undefined;
}
