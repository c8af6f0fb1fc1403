// How long audit events are kept (AUDIT_RETENTION_DAYS). Every instance runs the sweep on its own
// timer; the batches skip rows another instance is deleting, so running it everywhere at once
// costs nothing but a few empty queries.
import type { Knex } from 'knex';
import { deleteAuditEventsBefore } from '../db/audit.ts';

const DAY_MS = 24 * 3600 * 1000;
// 1,000 rows per transaction, at most 100,000 per sweep: a backlog (retention switched on for a
// years-old table) drains over a few runs instead of one long burst of writes.
const BATCH_SIZE = 1000;
const MAX_BATCHES = 100;

/** Deletes events older than `retentionDays` (0: keep forever); returns how many went. */
export async function sweepAuditRetention(knex: Knex, retentionDays: number, now: Date = new Date(), batch: { size?: number; max?: number } = {}): Promise<number> {
  if (retentionDays <= 0) return 0;
  const cutoff = new Date(now.getTime() - retentionDays * DAY_MS);
  return deleteAuditEventsBefore(knex, cutoff, { batchSize: batch.size ?? BATCH_SIZE, maxBatches: batch.max ?? MAX_BATCHES });
}
