// The notification outbox table. All times come from the database clock so instances with
// skewed clocks still agree on what is due and what is locked.
import type { Knex } from 'knex';

export type NotificationChannel = 'mail' | 'sms';

export interface NotificationRow {
  id: string;
  channel: NotificationChannel;
  template: string;
  recipient: string;
  payload_ciphertext: string | null;
  attempts: number;
  next_attempt_at: Date;
  locked_until: Date | null;
  sent_at: Date | null;
  failed_at: Date | null;
  last_error: string | null;
  created_at: Date;
}

export interface NotificationInsert {
  channel: NotificationChannel;
  template: string;
  recipient: string;
  payloadCiphertext: string;
}

export async function insertNotification(db: Knex | Knex.Transaction, row: NotificationInsert): Promise<void> {
  await db('notifications').insert({
    channel: row.channel,
    template: row.template,
    recipient: row.recipient,
    payload_ciphertext: row.payloadCiphertext,
  });
}

function secondsFromNow(db: Knex, seconds: number): Knex.Raw {
  return db.raw('now() + make_interval(secs => ?)', [seconds]);
}

/**
 * Take up to `limit` due messages for this instance: they are locked for `lockSeconds` and their
 * attempt counted in the same statement. SKIP LOCKED lets instances claim side by side without
 * waiting on, or ever sharing, each other's rows; an instance that dies mid-batch only delays its
 * rows until the lock runs out.
 */
export async function claimDueNotifications(db: Knex, limit: number, lockSeconds: number): Promise<NotificationRow[]> {
  const due = db('notifications')
    .select('id')
    .whereNull('sent_at')
    .whereNull('failed_at')
    .where('next_attempt_at', '<=', db.fn.now())
    .where((q) => q.whereNull('locked_until').orWhere('locked_until', '<', db.fn.now()))
    .orderBy('id')
    .limit(limit)
    .forUpdate()
    .skipLocked();
  return db('notifications')
    .whereIn('id', due)
    .update({ locked_until: secondsFromNow(db, lockSeconds), attempts: db.raw('attempts + 1') })
    .returning('*');
}

/** Delivered: the content (which may hold one-time links) is wiped, only the envelope stays. */
export async function markNotificationSent(db: Knex, id: string): Promise<void> {
  await db('notifications').where({ id }).update({ sent_at: db.fn.now(), payload_ciphertext: null, locked_until: null, last_error: null });
}

export async function scheduleNotificationRetry(db: Knex, id: string, delaySeconds: number, error: string): Promise<void> {
  await db('notifications').where({ id }).update({ next_attempt_at: secondsFromNow(db, delaySeconds), locked_until: null, last_error: error });
}

/** Given up: nothing will send it any more, so the content is wiped as for a sent message. */
export async function markNotificationFailed(db: Knex, id: string, error: string): Promise<void> {
  await db('notifications').where({ id }).update({ failed_at: db.fn.now(), payload_ciphertext: null, locked_until: null, last_error: error });
}

/** Hand claimed rows back untried (shutdown, or a batch running out of lock time). */
export async function releaseNotifications(db: Knex, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await db('notifications')
    .whereIn('id', ids)
    .whereNull('sent_at')
    .whereNull('failed_at')
    .update({ locked_until: null, attempts: db.raw('greatest(attempts - 1, 0)') });
}

/** Messages still to be delivered (due now or later, claimed or not). */
export async function countPendingNotifications(db: Knex): Promise<number> {
  const row = await db('notifications').whereNull('sent_at').whereNull('failed_at').count<{ count: string | number }[]>({ count: '*' }).first();
  return Number(row?.count ?? 0);
}

/** Drop finished rows (sent or given up) older than `days`; returns how many went. */
export async function deleteFinishedNotifications(db: Knex, days: number): Promise<number> {
  const cutoff = db.raw('now() - make_interval(days => ?)', [days]);
  return db('notifications')
    .where((q) => q.where('sent_at', '<', cutoff).orWhere('failed_at', '<', cutoff))
    .delete();
}
