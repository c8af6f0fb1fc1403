// Account lockout after repeated failed passwords, in the manner of Keycloak's temporary
// lockout: `threshold` failures lock the account for `baseSeconds`, each further lockout doubles
// the time up to `maxSeconds`, and a successful sign-in starts everything again. While locked,
// even the right password is refused with the same message as a wrong one.
import type { Knex } from 'knex';
import type { Config } from '../config.ts';
import { recordFailedLoginRow, recordSuccessfulLoginRow, unlockAccountRow } from '../db/lockout.ts';
import { findAccountRow } from '../db/accounts.ts';
import { isUuid } from '../uuid.ts';

type Db = Knex | Knex.Transaction;

export type LockoutConfig = Config['lockout'];

export interface LockState {
  locked: boolean;
  /** When the lock ends; present only while locked. */
  until?: Date;
}

export interface FailedLoginOutcome {
  /** True only for the failure that started a lock: the caller notifies the owner then. */
  lockedNow: boolean;
  /** When the lock ends, if the account is locked after this failure. */
  until?: Date;
}

export interface UnlockOutcome {
  found: boolean;
  /** Whether there was a lock (timed or by status) to end. */
  wasLocked: boolean;
}


function toDate(value: Date | string | null | undefined): Date | undefined {
  if (value === null || value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Whether a timed lock is in force for an account row (snake_case) or domain object. */
export function lockState(account: { locked_until?: Date | string | null; lockedUntil?: Date | string | null }, now: Date = new Date()): LockState {
  const until = toDate(account.locked_until ?? account.lockedUntil);
  return until && until.getTime() > now.getTime() ? { locked: true, until } : { locked: false };
}

/** The lock length after `previousLockouts` earlier lockouts: base * 2^n, at most max. */
export function lockoutSeconds(policy: LockoutConfig, previousLockouts: number): number {
  return Math.min(policy.baseSeconds * 2 ** Math.min(previousLockouts, 32), policy.maxSeconds);
}

/**
 * Counts one failed password. Failures while already locked are ignored, so a locked account is
 * not locked longer (or its owner emailed again) by someone hammering it.
 */
export async function recordFailedLogin(db: Db, accountId: string, policy: LockoutConfig): Promise<FailedLoginOutcome> {
  if (!isUuid(accountId)) return { lockedNow: false };
  const row = await recordFailedLoginRow(db, accountId, policy);
  if (!row) return { lockedNow: false };
  const state = lockState(row);
  return { lockedNow: !row.was_locked && state.locked, ...(state.until ? { until: state.until } : {}) };
}

/** A correct password on an unlocked account: failures and lockout history start again. */
export async function recordSuccessfulLogin(db: Db, accountId: string): Promise<void> {
  if (!isUuid(accountId)) return;
  await recordSuccessfulLoginRow(db, accountId);
}

/** Ends a lock early (`gatehouse user unlock`); an account locked by status becomes active. */
export async function unlockAccount(db: Db, accountId: string): Promise<UnlockOutcome> {
  if (!isUuid(accountId)) return { found: false, wasLocked: false };
  const row = await unlockAccountRow(db, accountId);
  return row ? { found: true, wasLocked: row.was_locked } : { found: false, wasLocked: false };
}

/** Whether a timed lock is in force for the account right now. */
export async function accountIsLocked(db: Db, accountId: string): Promise<boolean> {
  const row = await findAccountRow(db, accountId);
  return row ? lockState(row).locked : false;
}
