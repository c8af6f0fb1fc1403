// Passkey bookkeeping that the generic factor and token tables' helpers do not cover: challenges
// that may belong to no account yet (a passwordless sign-in does not know who is signing in), and
// the signature counter, advanced only forwards so two assertions racing cannot move it back.
import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export async function insertChallengeToken(db: Db, row: { tokenHash: string; accountId: string | null; data: Record<string, unknown>; ttlSeconds: number }): Promise<void> {
  await db('one_time_tokens').insert({
    purpose: 'webauthn_challenge',
    account_id: row.accountId,
    token_hash: row.tokenHash,
    data: JSON.stringify(row.data),
    expires_at: db.raw("now() + (? * interval '1 second')", [row.ttlSeconds]),
  });
}

/**
 * Records a successful assertion. With a counter (> 0) the row changes only if the stored counter
 * is lower, so false means another assertion got there first with an equal or higher value: a
 * cloned authenticator, as far as we can tell. Authenticators without counters always report 0.
 */
export async function recordPasskeyUse(db: Db, id: string, use: { counter: number; backupState: boolean }): Promise<boolean> {
  const q = db('mfa_factors').where({ id, type: 'webauthn' });
  if (use.counter > 0) q.andWhere((w) => w.whereNull('sign_count').orWhere('sign_count', '<', use.counter));
  const rows = await q.update({ sign_count: use.counter, backup_state: use.backupState, last_used_at: db.fn.now() }).returning<{ id: string }[]>('id');
  return rows.length === 1;
}
