// Lockout bookkeeping on the accounts row. Every function is one statement, so concurrent
// sign-in attempts on any number of instances are counted exactly (the row lock serialises them).
import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export interface LockoutPolicy {
  threshold: number;
  baseSeconds: number;
  maxSeconds: number;
}

export interface FailedLoginRow {
  failed_login_count: number;
  lockout_count: number;
  locked_until: Date | null;
  /** Whether locked_until was already in the future before this failure. */
  was_locked: boolean;
}

// Past 2^32 the doubling is far beyond any sensible maximum; capping the exponent keeps power()
// away from overflow.
const MAX_EXPONENT = 32;

/**
 * Counts a failed password for the account. Reaching `threshold` locks it for
 * min(baseSeconds * 2^lockout_count, maxSeconds), counts the lockout and starts the failure count
 * again. Failures while the account is already locked change nothing, so hammering a locked
 * account neither lengthens the lock nor sends more notices. Undefined when there is no such row.
 */
export async function recordFailedLoginRow(db: Db, accountId: string, policy: LockoutPolicy): Promise<FailedLoginRow | undefined> {
  // The CTE takes the row lock first and reads the newest committed values (READ COMMITTED
  // re-reads a locked row), so `prev` says truthfully whether this statement did the locking.
  const result = await db.raw<{ rows: FailedLoginRow[] }>(
    `WITH prev AS (
       SELECT id, coalesce(locked_until > now(), false) AS was_locked
       FROM accounts WHERE id = :accountId FOR UPDATE
     )
     UPDATE accounts AS a SET
       failed_login_count = CASE
         WHEN prev.was_locked THEN a.failed_login_count
         WHEN a.failed_login_count + 1 >= :threshold THEN 0
         ELSE a.failed_login_count + 1 END,
       lockout_count = CASE
         WHEN prev.was_locked THEN a.lockout_count
         WHEN a.failed_login_count + 1 >= :threshold THEN a.lockout_count + 1
         ELSE a.lockout_count END,
       locked_until = CASE
         WHEN prev.was_locked THEN a.locked_until
         WHEN a.failed_login_count + 1 >= :threshold THEN now() + make_interval(secs => LEAST(
           :baseSeconds::double precision * power(2::double precision, LEAST(a.lockout_count, ${MAX_EXPONENT})),
           :maxSeconds::double precision))
         ELSE a.locked_until END
     FROM prev
     WHERE a.id = prev.id
     RETURNING a.failed_login_count, a.lockout_count, a.locked_until, prev.was_locked`,
    { accountId, threshold: policy.threshold, baseSeconds: policy.baseSeconds, maxSeconds: policy.maxSeconds },
  );
  return result.rows[0];
}

/**
 * The update of a successful sign-in, not yet run: failures and the lockout history start again,
 * and a password hash made with newer parameters replaces the stored one. Built, not run, so a
 * caller can run it in one statement with the audit event it reports (db/audit.ts).
 */
export function successfulLoginUpdate(db: Db, accountId: string, changes: { passwordHash?: string } = {}): Knex.QueryBuilder {
  return db('accounts')
    .where({ id: accountId })
    .update({
      failed_login_count: 0,
      lockout_count: 0,
      last_login_at: db.fn.now(),
      ...(changes.passwordHash ? { password_hash: changes.passwordHash, updated_at: db.fn.now() } : {}),
    });
}

/** A successful sign-in: failures and the lockout history start again. */
export async function recordSuccessfulLoginRow(db: Db, accountId: string): Promise<boolean> {
  const rows = await successfulLoginUpdate(db, accountId).returning<{ id: string }[]>('id');
  return rows.length > 0;
}

export interface UnlockedRow {
  status: string;
  /** Whether the account was locked (by time or by status) before this statement. */
  was_locked: boolean;
}

/** Ends any lock: the timed one and the 'locked' status; other statuses stay as they are. */
export async function unlockAccountRow(db: Db, accountId: string): Promise<UnlockedRow | undefined> {
  const result = await db.raw<{ rows: UnlockedRow[] }>(
    `WITH prev AS (
       SELECT id, (coalesce(locked_until > now(), false) OR status = 'locked') AS was_locked
       FROM accounts WHERE id = :accountId FOR UPDATE
     )
     UPDATE accounts AS a SET
       locked_until = NULL,
       failed_login_count = 0,
       lockout_count = 0,
       status = CASE WHEN a.status = 'locked' THEN 'active' ELSE a.status END,
       updated_at = now()
     FROM prev
     WHERE a.id = prev.id
     RETURNING a.status, prev.was_locked`,
    { accountId },
  );
  return result.rows[0];
}
