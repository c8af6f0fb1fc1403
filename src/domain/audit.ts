// Security events. Callers pass the transaction that makes the change, so the record and the
// change commit or roll back together.
import type { Knex } from 'knex';
import { insertAuditEvent } from '../db/audit.ts';

export interface AuditEvent {
  type: string;
  outcome: 'success' | 'failure';
  accountId?: string;
  clientId?: string;
  ip?: string;
  userAgent?: string;
  details?: Record<string, unknown>;
}

/** Where a change came from; domain functions pass it through to their audit events. */
export interface AuditMeta {
  ip?: string;
  userAgent?: string;
  clientId?: string;
  /** The tool or surface that made the change, e.g. "cli" or "admin-api". */
  source?: string;
}

// A user agent is caller-controlled; a bound keeps one request from bloating the log.
const MAX_USER_AGENT = 512;

export async function recordAudit(db: Knex | Knex.Transaction, event: AuditEvent): Promise<void> {
  await insertAuditEvent(db, {
    eventType: event.type,
    outcome: event.outcome,
    accountId: event.accountId ?? null,
    clientId: event.clientId ?? null,
    ip: event.ip ?? null,
    userAgent: event.userAgent?.slice(0, MAX_USER_AGENT) ?? null,
    details: event.details ?? {},
  });
}

/** The audit fields carried by `meta`, with its source folded into the details. */
export function auditContext(meta: AuditMeta | undefined, details: Record<string, unknown> = {}): Pick<AuditEvent, 'ip' | 'userAgent' | 'clientId' | 'details'> {
  return {
    ip: meta?.ip,
    userAgent: meta?.userAgent,
    clientId: meta?.clientId,
    details: meta?.source ? { ...details, source: meta.source } : details,
  };
}
