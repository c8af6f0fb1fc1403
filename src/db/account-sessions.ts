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

/** What saving a sighting found out, for deciding whether the owner hears of a new device. */
export interface SessionSighting {
  /** True when this save created the row: the session's first sighting. */
  firstSighting: boolean;
  /** On a first sighting: whether the account has other sessions on record (an earlier sign-in). */
  otherSessions: boolean;
  /** On a first sighting: whether one of those came from a browser and system described alike. */
  knownDevice: boolean;
}

/**
 * Records a session's activity: the first sighting stores the sign-in details, later ones the
 * latest address, agent, apps and expiry. A revoked row is never revived. One statement also
 * tells whether this was the first sighting and, only then, what the account's other sessions
 * say about the device, so a session save costs one round trip.
 */
export async function upsertSession(db: Db, seen: SessionSeen): Promise<SessionSighting> {
  const saved = db('account_sessions')
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
    .whereNull('account_sessions.revoked_at')
    // xmax is 0 only on a row version this statement inserted; an update carries its transaction id.
    .returning(db.raw('(xmax = 0) AS first_sighting'));
  // The other sessions are read from the statement's snapshot, as they were just before this
  // row was written; this session's own row is excluded by id in any case.
  const [row] = await db
    .with('saved', saved)
    .select<{ first_sighting: boolean; other_sessions: boolean; known_device: boolean }[]>(
      'first_sighting',
      db.raw('CASE WHEN first_sighting THEN EXISTS (SELECT 1 FROM account_sessions WHERE account_id = ? AND id <> ?) ELSE false END AS other_sessions', [seen.accountId, seen.id]),
      db.raw(
        `CASE WHEN first_sighting THEN EXISTS (
           SELECT 1 FROM account_sessions WHERE account_id = ? AND id <> ? AND browser IS NOT DISTINCT FROM ? AND os IS NOT DISTINCT FROM ?
         ) ELSE false END AS known_device`,
        [seen.accountId, seen.id, seen.browser ?? null, seen.os ?? null],
      ),
    )
    .from('saved');
  // No row: the session's record was revoked, so this save changed nothing.
  return { firstSighting: row?.first_sighting === true, otherSessions: row?.other_sessions === true, knownDevice: row?.known_device === true };
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
