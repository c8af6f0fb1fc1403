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
