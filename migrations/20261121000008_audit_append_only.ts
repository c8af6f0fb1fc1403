import type { Knex } from 'knex';

// Audit rows are a record of what happened: the database itself refuses to change or remove
// them, so neither a bug nor a hand-typed statement can rewrite history. The two sanctioned
// exceptions announce themselves with a transaction-local setting (src/db/audit-maintenance.ts):
//   'retention' may DELETE rows (the AUDIT_RETENTION_DAYS sweep);
//   'erasure'   may DELETE rows and UPDATE the personal columns of a row (pseudonymising a
//               person who asked to be forgotten), never its id, time, type or outcome.
// A database superuser can still disable triggers; this guards against mistakes, not against
// the database's owner.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      -- missing_ok: NULL when never set; '' once set by an earlier transaction of the session.
      purpose text := coalesce(current_setting('gatehouse.audit_maintenance', true), '');
    BEGIN
      IF TG_OP = 'DELETE' AND purpose IN ('retention', 'erasure') THEN
        RETURN OLD;
      END IF;
      IF TG_OP = 'TRUNCATE' AND purpose IN ('retention', 'erasure') THEN
        RETURN NULL;
      END IF;
      IF TG_OP = 'UPDATE' AND purpose = 'erasure' THEN
        IF NEW.id IS DISTINCT FROM OLD.id OR NEW.occurred_at IS DISTINCT FROM OLD.occurred_at
          OR NEW.event_type IS DISTINCT FROM OLD.event_type OR NEW.outcome IS DISTINCT FROM OLD.outcome THEN
          RAISE EXCEPTION 'audit_events: erasure may only change personal data, not id, occurred_at, event_type or outcome'
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
      END IF;
      RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Rows leave only through the retention sweep or an account erasure.';
    END
    $$
  `);
  await knex.raw(`
    CREATE TRIGGER audit_events_append_only_rows BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
  `);
  await knex.raw(`
    CREATE TRIGGER audit_events_append_only_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
  `);
  // The retention sweep selects by age; /account's activity page pages one account by id.
  await knex.schema.alterTable('audit_events', (t) => {
    t.index(['occurred_at'], 'audit_events_occurred_at_index');
    t.index(['account_id', 'id'], 'audit_events_account_id_id_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit_events', (t) => {
    t.dropIndex(['account_id', 'id'], 'audit_events_account_id_id_index');
    t.dropIndex(['occurred_at'], 'audit_events_occurred_at_index');
  });
  await knex.raw('DROP TRIGGER IF EXISTS audit_events_append_only_truncate ON audit_events');
  await knex.raw('DROP TRIGGER IF EXISTS audit_events_append_only_rows ON audit_events');
  await knex.raw('DROP FUNCTION IF EXISTS audit_events_append_only()');
}
