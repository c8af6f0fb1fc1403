import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // The apps a person has granted access to ("Connected apps" in /account, the data export).
  // The grant itself is protocol state (Redis or oidc_payloads), which can be looked up by id
  // only; this row makes it findable by account, with what it allows and when it was last used.
  // No foreign key on client_id: the built-in account client is not in the clients table.
  await knex.schema.createTable('account_grants', (t) => {
    t.text('grant_id').primary();
    t.uuid('account_id').notNullable().references('id').inTable('accounts').onDelete('CASCADE');
    t.text('client_id').notNullable();
    // OpenID scopes granted, e.g. ["openid","email","offline_access"].
    t.jsonb('scopes').notNullable().defaultTo('[]');
    // Scopes granted per API (resource indicator -> scope values).
    t.jsonb('resource_scopes').notNullable().defaultTo('{}');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_used_at', { useTz: true });
    // When the provider forgets the grant (its TTL); later the row describes nothing.
    t.timestamp('expires_at', { useTz: true });
    t.index(['account_id', 'client_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('account_grants');
}
