// Security events. Callers pass the transaction that makes the change, or for a change that is
// one statement the change itself (recordAuditWith), so the record and the change commit or roll
// back together.
import type { Knex } from 'knex';
import { insertAuditEvent, insertAuditEventWith, queryAuditEvents, type AuditEventFilter, type AuditEventInsert } from '../db/audit.ts';

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
  /** Who made the change through the admin API: an administrator, an admin client or an API key. */
  actor?: AuditActor;
}

export interface AuditActor {
  type: 'user' | 'client' | 'api_key';
  id: string;
}

// A user agent is caller-controlled; a bound keeps one request from bloating the log.
const MAX_USER_AGENT = 512;

function toInsert(event: AuditEvent): AuditEventInsert {
  return {
    eventType: event.type,
    outcome: event.outcome,
    accountId: event.accountId ?? null,
    clientId: event.clientId ?? null,
    ip: event.ip ?? null,
    userAgent: event.userAgent?.slice(0, MAX_USER_AGENT) ?? null,
    details: event.details ?? {},
  };
}

export async function recordAudit(db: Knex | Knex.Transaction, event: AuditEvent): Promise<void> {
  await insertAuditEvent(db, toInsert(event));
  notifyWhenCommitted(db, event);
}

/**
 * Records the event in one statement with the change it reports (`change`: an update or insert
 * not yet run), for a change that is a single statement: atomic like a transaction, and one
 * round trip instead of four.
 */
export async function recordAuditWith(db: Knex | Knex.Transaction, change: Knex.QueryBuilder, event: AuditEvent): Promise<void> {
  await insertAuditEventWith(db, change, toInsert(event));
  notifyWhenCommitted(db, event);
}

/** Told about each audit event once it is durable (metrics count sign-ins and lockouts this way). */
export type AuditObserver = (event: AuditEvent) => void;

// Process-wide, because recordAudit is called from dozens of places with nothing but a database
// handle; threading an observer through each of them would touch every flow. Subscribers (one
// Metrics per Services) remove themselves when they close.
const observers = new Set<AuditObserver>();

export function observeAuditEvents(observer: AuditObserver): () => void {
  observers.add(observer);
  return () => observers.delete(observer);
}

function notifyWhenCommitted(db: Knex | Knex.Transaction, event: AuditEvent): void {
  if (observers.size === 0) return;
  const notify = () => {
    for (const observer of observers) {
      try {
        observer(event);
      } catch {
        // An observer's failure must never fail, or surface from, the change being audited.
      }
    }
  };
  if (!db.isTransaction) {
    notify();
    return;
  }
  // An event inside a transaction counts only if that transaction and every one enclosing it
  // (savepoints) commit: a rolled-back sign-in must not move a counter.
  const pending: Promise<unknown>[] = [];
  for (let trx: Knex.Transaction | undefined = db as Knex.Transaction; trx; trx = (trx as { parentTransaction?: Knex.Transaction }).parentTransaction) {
    pending.push(trx.executionPromise);
  }
  Promise.all(pending).then(notify, () => undefined);
}

/** The audit fields carried by `meta`, with its source and actor folded into the details. */
export function auditContext(meta: AuditMeta | undefined, details: Record<string, unknown> = {}): Pick<AuditEvent, 'ip' | 'userAgent' | 'clientId' | 'details'> {
  return {
    ip: meta?.ip,
    userAgent: meta?.userAgent,
    clientId: meta?.clientId,
    details: {
      ...details,
      ...(meta?.source ? { source: meta.source } : {}),
      ...(meta?.actor ? { actor: { type: meta.actor.type, id: meta.actor.id } } : {}),
    },
  };
}

export type { AuditEventFilter };

/** An audit event as the admin API shows it. */
export interface PublicAuditEvent {
  id: string;
  occurred_at: string;
  type: string;
  outcome: 'success' | 'failure';
  account_id: string | null;
  client_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
}

/** One page of events, newest first; `nextBefore` continues the listing when more may follow. */
export async function searchAuditEvents(
  db: Knex | Knex.Transaction,
  filter: AuditEventFilter,
  page: { beforeId?: string; limit: number },
): Promise<{ events: PublicAuditEvent[]; nextBefore: string | undefined }> {
  // One row more than asked tells whether another page exists without a count query.
  const rows = await queryAuditEvents(db, filter, { beforeId: page.beforeId, limit: page.limit + 1 });
  const events = rows.slice(0, page.limit).map((row) => ({
    id: String(row.id),
    occurred_at: new Date(row.occurred_at).toISOString(),
    type: row.event_type,
    outcome: row.outcome,
    account_id: row.account_id,
    client_id: row.client_id,
    ip: row.ip,
    user_agent: row.user_agent,
    details: row.details,
  }));
  return { events, nextBefore: rows.length > page.limit ? events.at(-1)?.id : undefined };
}
