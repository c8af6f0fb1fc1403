// Account lockout bookkeeping against embedded PGlite and a PostgreSQL server (skipped visibly
// without TEST_DATABASE_URL): locks at the threshold, durations doubling up to the maximum,
// success and unlock resetting, and exact counts under concurrent failures.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockoutSeconds, lockState, recordFailedLogin, recordSuccessfulLogin, unlockAccount, type LockoutConfig } from '../../src/domain/lockout.ts';
import type { Knex } from 'knex';
import { TEST_DATABASE_URL } from '../helpers/postgres.ts';
import { migratedEmbedded, migratedPostgres } from '../helpers/databases.ts';

interface LockoutColumns {
  failed_login_count: number;
  lockout_count: number;
  locked_until: Date | null;
  last_login_at: Date | null;
  status: string;
}

const POLICY: LockoutConfig = { threshold: 3, baseSeconds: 60, maxSeconds: 200 };

async function newAccount(knex: Knex, status = 'active'): Promise<string> {
  const [row] = await knex('accounts')
    .insert({ email: `lock-${crypto.randomBytes(6).toString('hex')}@example.com`, password_hash: null, status })
    .returning<{ id: string }[]>('id');
  return row!.id;
}

async function columns(knex: Knex, id: string): Promise<LockoutColumns> {
  return knex('accounts').where({ id }).first<LockoutColumns>('failed_login_count', 'lockout_count', 'locked_until', 'last_login_at', 'status');
}

/** Lets the current lock run out without waiting for it. */
async function expireLock(knex: Knex, id: string): Promise<void> {
  await knex('accounts').where({ id }).update({ locked_until: knex.raw("now() - interval '1 second'") });
}

async function failTimes(knex: Knex, id: string, times: number, policy = POLICY) {
  const outcomes = [];
  for (let i = 0; i < times; i++) outcomes.push(await recordFailedLogin(knex, id, policy));
  return outcomes;
}

/** Seconds from now until `until`, rounded. */
const secondsUntil = (until: Date | undefined) => Math.round(((until?.getTime() ?? 0) - Date.now()) / 1000);

function lockoutSuite(name: string, open: () => Promise<{ knex: Knex; close(): Promise<void> }>, skip = false): void {
  describe.skipIf(skip)(`account lockout: ${name}`, () => {
    let knex: Knex;
    let close: () => Promise<void>;

    beforeAll(async () => {
      ({ knex, close } = await open());
    });
    afterAll(async () => {
      await close?.();
    });

    it('locks at the threshold, reports it once, and resets the failure count', async () => {
      const id = await newAccount(knex);
      const [first, second, third] = await failTimes(knex, id, 3);
      expect(first).toEqual({ lockedNow: false });
      expect(second).toEqual({ lockedNow: false });
      expect(third!.lockedNow).toBe(true);
      expect(secondsUntil(third!.until)).toBeGreaterThanOrEqual(59);
      expect(secondsUntil(third!.until)).toBeLessThanOrEqual(60);
      const row = await columns(knex, id);
      expect(row).toMatchObject({ failed_login_count: 0, lockout_count: 1, status: 'active' });
      expect(lockState(row)).toEqual({ locked: true, until: row.locked_until });
    });

    it('ignores failures while locked: no longer lock, no second notice', async () => {
      const id = await newAccount(knex);
      const [, , locking] = await failTimes(knex, id, 3);
      const during = await failTimes(knex, id, 5);
      for (const outcome of during) {
        expect(outcome.lockedNow).toBe(false);
        expect(outcome.until?.getTime()).toBe(locking!.until!.getTime());
      }
      expect(await columns(knex, id)).toMatchObject({ failed_login_count: 0, lockout_count: 1 });
    });

    it('doubles the lock with each lockout up to the maximum', async () => {
      const id = await newAccount(knex);
      const durations: number[] = [];
      for (let lockout = 0; lockout < 4; lockout++) {
        const outcomes = await failTimes(knex, id, 3);
        expect(outcomes.map((o) => o.lockedNow)).toEqual([false, false, true]);
        durations.push(secondsUntil(outcomes[2]!.until));
        await expireLock(knex, id);
      }
      // 60, 120, then capped at 200 (not 240, 480).
      expect(durations.map((d) => Math.round(d / 10) * 10)).toEqual([60, 120, 200, 200]);
      expect(await columns(knex, id)).toMatchObject({ lockout_count: 4 });
    });

    it('starts over after a successful sign-in', async () => {
      const id = await newAccount(knex);
      await failTimes(knex, id, 3);
      await expireLock(knex, id);
      await failTimes(knex, id, 2);
      expect(await columns(knex, id)).toMatchObject({ failed_login_count: 2, lockout_count: 1, last_login_at: null });
      await recordSuccessfulLogin(knex, id);
      const row = await columns(knex, id);
      expect(row).toMatchObject({ failed_login_count: 0, lockout_count: 0 });
      expect(Math.abs((row.last_login_at?.getTime() ?? 0) - Date.now())).toBeLessThan(10_000);
      // The next lock is the first again: base length, and only after a full threshold.
      const outcomes = await failTimes(knex, id, 3);
      expect(outcomes.map((o) => o.lockedNow)).toEqual([false, false, true]);
      expect(secondsUntil(outcomes[2]!.until)).toBeLessThanOrEqual(60);
    });

    it('unlock ends a timed lock and the locked status, and leaves other statuses alone', async () => {
      const timed = await newAccount(knex);
      await failTimes(knex, timed, 3);
      expect(await unlockAccount(knex, timed)).toEqual({ found: true, wasLocked: true });
      const row = await columns(knex, timed);
      expect(row).toMatchObject({ failed_login_count: 0, lockout_count: 0, locked_until: null, status: 'active' });
      expect(lockState(row)).toEqual({ locked: false });
      // The lock history went with it: the next lock is short again.
      const next = await failTimes(knex, timed, 3);
      expect(secondsUntil(next[2]!.until)).toBeLessThanOrEqual(60);

      const byStatus = await newAccount(knex, 'locked');
      expect(await unlockAccount(knex, byStatus)).toEqual({ found: true, wasLocked: true });
      expect(await columns(knex, byStatus)).toMatchObject({ status: 'active' });

      const suspended = await newAccount(knex, 'suspended');
      await failTimes(knex, suspended, 1);
      expect(await unlockAccount(knex, suspended)).toEqual({ found: true, wasLocked: false });
      expect(await columns(knex, suspended)).toMatchObject({ status: 'suspended', failed_login_count: 0 });

      expect(await unlockAccount(knex, crypto.randomUUID())).toEqual({ found: false, wasLocked: false });
      expect(await unlockAccount(knex, 'not-a-uuid')).toEqual({ found: false, wasLocked: false });
    });

    it('ignores unknown and malformed account ids', async () => {
      expect(await recordFailedLogin(knex, crypto.randomUUID(), POLICY)).toEqual({ lockedNow: false });
      expect(await recordFailedLogin(knex, "x' OR 1=1 --", POLICY)).toEqual({ lockedNow: false });
      await expect(recordSuccessfulLogin(knex, 'nope')).resolves.toBeUndefined();
    });

    it('counts concurrent failures exactly', async () => {
      const id = await newAccount(knex);
      const many = { ...POLICY, threshold: 1000 };
      await Promise.all(Array.from({ length: 40 }, () => recordFailedLogin(knex, id, many)));
      expect(await columns(knex, id)).toMatchObject({ failed_login_count: 40, lockout_count: 0, locked_until: null });
    });

    it('locks exactly once when concurrent failures cross the threshold', async () => {
      const id = await newAccount(knex);
      const policy = { ...POLICY, threshold: 10 };
      const outcomes = await Promise.all(Array.from({ length: 30 }, () => recordFailedLogin(knex, id, policy)));
      expect(outcomes.filter((o) => o.lockedNow)).toHaveLength(1);
      expect(await columns(knex, id)).toMatchObject({ failed_login_count: 0, lockout_count: 1 });
    });

    it('works inside a caller transaction (for the audit row beside it)', async () => {
      const id = await newAccount(knex);
      await knex.transaction(async (trx) => {
        await failTimes(trx, id, 2);
      });
      await expect(
        knex.transaction(async (trx) => {
          await recordFailedLogin(trx, id, POLICY);
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      expect(await columns(knex, id)).toMatchObject({ failed_login_count: 2 });
    });
  });
}

lockoutSuite('embedded PGlite', () => migratedEmbedded('gh-lockout-'));
// A pool wide enough that the concurrent tests really run in parallel sessions.
lockoutSuite('PostgreSQL', () => migratedPostgres('gh_lockout', 10), !TEST_DATABASE_URL);

describe('lockState and lockoutSeconds', () => {
  it('reads either naming and treats past or missing times as unlocked', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const later = new Date('2026-01-01T00:05:00Z');
    expect(lockState({ locked_until: later }, now)).toEqual({ locked: true, until: later });
    expect(lockState({ lockedUntil: later.toISOString() }, now)).toEqual({ locked: true, until: later });
    expect(lockState({ locked_until: new Date('2025-12-31T23:59:59Z') }, now)).toEqual({ locked: false });
    expect(lockState({ locked_until: null }, now)).toEqual({ locked: false });
    expect(lockState({}, now)).toEqual({ locked: false });
  });

  it('doubles from the base and stops at the maximum', () => {
    const policy = { threshold: 10, baseSeconds: 60, maxSeconds: 900 };
    expect([0, 1, 2, 3, 4, 5, 100].map((n) => lockoutSeconds(policy, n))).toEqual([60, 120, 240, 480, 900, 900, 900]);
  });
});
