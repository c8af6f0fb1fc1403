import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // What people see of their sign-in sessions in /account (the session itself is protocol state
  // in Redis or oidc_payloads). One row per browser sign-in, keyed by oidc-provider's session uid.
  await knex.schema.createTable('account_sessions', (t) => {
    t.text('id').primary();
    t.uuid('account_id').notNullable().references('id').inTable('accounts').onDelete('CASCADE');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_active_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires_at', { useTz: true });
    t.text('login_ip');
    t.text('last_ip');
    t.text('login_user_agent');
    t.text('last_user_agent');
    t.text('browser');
    t.text('os');
    t.text('device_type');
    t.boolean('remember').notNullable().defaultTo(false);
    t.jsonb('amr').notNullable().defaultTo('[]');
    t.text('acr');
    t.jsonb('clients').notNullable().defaultTo('[]');
    t.timestamp('revoked_at', { useTz: true });
    t.text('revoked_reason');
    t.index(['account_id', 'revoked_at', 'last_active_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('account_sessions');
}
