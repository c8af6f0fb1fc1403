import type { Knex } from 'knex';
import { withAuditMaintenance } from './audit-maintenance.ts';

export interface AuditEventInsert {
  eventType: string;
  outcome: 'success' | 'failure';
  accountId: string | null;
  clientId: string | null;
  ip: string | null;
  userAgent: string | null;
  details: Record<string, unknown>;
}

function auditEventColumns(event: AuditEventInsert): Record<string, unknown> {
  return {
    event_type: event.eventType,
    outcome: event.outcome,
    account_id: event.accountId,
    client_id: event.clientId,
    ip: event.ip,
    user_agent: event.userAgent,
    // Serialised here because the pg driver would turn a top-level array into a Postgres array.
    details: JSON.stringify(event.details),
  };
}

export async function insertAuditEvent(db: Knex | Knex.Transaction, event: AuditEventInsert): Promise<void> {
  await db('audit_events').insert(auditEventColumns(event));
}

/**
 * Inserts the event in the same statement as `change` (a data-modifying query, run as a WITH
 * clause of the insert): both take effect together or not at all, without a transaction's
 * BEGIN and COMMIT round trips. PostgreSQL runs such a clause to completion whether or not the
 * insert reads it, so `change` runs exactly once.
 */
export async function insertAuditEventWith(db: Knex | Knex.Transaction, change: Knex.QueryBuilder, event: AuditEventInsert): Promise<void> {
  await db.with('audited_change', change).insert(auditEventColumns(event)).into('audit_events');
}

export interface AuditEventRow {
  id: string;
  occurred_at: Date;
  event_type: string;
  outcome: 'success' | 'failure';
  account_id: string | null;
  client_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
}

export interface AuditEventFilter {
  accountId?: string;
  clientId?: string;
  /** An exact event type ("user.created") or a prefix ending in a dot ("user."). */
  type?: string;
  outcome?: 'success' | 'failure';
  from?: Date;
  to?: Date;
}

/** Newest first; `beforeId` continues after the last row of a previous page. */
export async function queryAuditEvents(db: Knex | Knex.Transaction, filter: AuditEventFilter, page: { beforeId?: string; limit: number }): Promise<AuditEventRow[]> {
  const q = db<AuditEventRow>('audit_events').select('*');
  if (filter.accountId !== undefined) q.where('account_id', filter.accountId);
  if (filter.clientId !== undefined) q.where('client_id', filter.clientId);
  if (filter.type !== undefined) {
    if (filter.type.endsWith('.')) q.whereRaw("starts_with(event_type, ?)", [filter.type]);
    else q.where('event_type', filter.type);
  }
  if (filter.outcome !== undefined) q.where('outcome', filter.outcome);
  if (filter.from !== undefined) q.where('occurred_at', '>=', filter.from);
  if (filter.to !== undefined) q.where('occurred_at', '<', filter.to);
  // Ids grow with insertion, so they order events as they were recorded and make a stable cursor.
  if (page.beforeId !== undefined) q.where('id', '<', page.beforeId);
  return q.orderBy('id', 'desc').limit(page.limit);
}

/** One event of an account's own activity, with the name of the app it came through. */
export interface AccountActivityRow {
  id: string;
  occurred_at: Date;
  event_type: string;
  outcome: 'success' | 'failure';
  client_id: string | null;
  client_name: string | null;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
}

/** An account's events, newest first; `beforeId` continues after the last row of a previous page. */
export async function listAccountActivity(db: Knex | Knex.Transaction, accountId: string, page: { beforeId?: string; limit: number }): Promise<AccountActivityRow[]> {
  const q = db('audit_events as e')
    .leftJoin('clients as c', 'c.client_id', 'e.client_id')
    .where('e.account_id', accountId)
    .select<AccountActivityRow[]>('e.id', 'e.occurred_at', 'e.event_type', 'e.outcome', 'e.client_id', db.raw("c.metadata->>'client_name' AS client_name"), 'e.ip', 'e.user_agent', 'e.details');
  if (page.beforeId !== undefined) q.where('e.id', '<', page.beforeId);
  return q.orderBy('e.id', 'desc').limit(page.limit);
}

/**
 * Deletes events recorded before `cutoff`, oldest first, `batchSize` rows per transaction so no
 * statement holds many locks or a long transaction. SKIP LOCKED lets several instances sweep at
 * once without waiting on each other's batches. Stops after `maxBatches`; the next sweep goes on.
 */
export async function deleteAuditEventsBefore(knex: Knex, cutoff: Date, opts: { batchSize: number; maxBatches: number }): Promise<number> {
  let total = 0;
  for (let batch = 0; batch < opts.maxBatches; batch++) {
    const deleted = await knex.transaction(async (trx) => {
      await withAuditMaintenance(trx, 'retention');
      const result = await trx.raw<{ rows: unknown[] }>(
        `DELETE FROM audit_events WHERE id IN (
           SELECT id FROM audit_events WHERE occurred_at < ? ORDER BY occurred_at LIMIT ? FOR UPDATE SKIP LOCKED
         ) RETURNING id`,
        [cutoff, opts.batchSize],
      );
      return result.rows.length;
    });
    total += deleted;
    if (deleted < opts.batchSize) break;
  }
  return total;
}
