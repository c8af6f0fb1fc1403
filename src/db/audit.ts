import type { Knex } from 'knex';

export interface AuditEventInsert {
  eventType: string;
  outcome: 'success' | 'failure';
  accountId: string | null;
  clientId: string | null;
  ip: string | null;
  userAgent: string | null;
  details: Record<string, unknown>;
}

export async function insertAuditEvent(db: Knex | Knex.Transaction, event: AuditEventInsert): Promise<void> {
  await db('audit_events').insert({
    event_type: event.eventType,
    outcome: event.outcome,
    account_id: event.accountId,
    client_id: event.clientId,
    ip: event.ip,
    user_agent: event.userAgent,
    // Serialised here because the pg driver would turn a top-level array into a Postgres array.
    details: JSON.stringify(event.details),
  });
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
