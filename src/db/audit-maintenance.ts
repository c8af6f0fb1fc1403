// The only way past the append-only trigger on audit_events (migration 20261121000008): a
// transaction says why it changes audit rows, and the setting ends with that transaction, so a
// pooled connection never carries the permission into someone else's statements.
import type { Knex } from 'knex';

/** 'retention' may delete rows; 'erasure' may delete rows and pseudonymise their personal columns. */
export type AuditMaintenancePurpose = 'retention' | 'erasure';

export async function withAuditMaintenance(trx: Knex.Transaction, purpose: AuditMaintenancePurpose): Promise<void> {
  // Outside a transaction the local setting would end with this very statement: refuse loudly
  // rather than let the caller's next statement fail on the trigger.
  if (!trx.isTransaction) throw new Error('withAuditMaintenance needs a transaction');
  await trx.raw("SELECT set_config('gatehouse.audit_maintenance', ?, true)", [purpose]);
}
