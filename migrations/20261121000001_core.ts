import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('accounts', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('email').notNullable();
    t.boolean('email_verified').notNullable().defaultTo(false);
    t.text('name');
    t.text('password_hash');
    t.text('status').notNullable().defaultTo('active');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw("ALTER TABLE accounts ADD CONSTRAINT accounts_status_check CHECK (status IN ('pending','active','suspended','blocked','locked','deleted'))");
  // Emails are stored normalized; uniqueness ignores case so Ada@x and ada@x are one account.
  await knex.raw('CREATE UNIQUE INDEX accounts_email_lower_unique ON accounts (lower(email))');

  await knex.schema.createTable('clients', (t) => {
    t.text('client_id').primary();
    t.text('client_secret_ciphertext');
    t.jsonb('metadata').notNullable();
    t.boolean('first_party').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('resource_servers', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('identifier').notNullable().unique();
    t.text('name');
    t.text('scope').notNullable().defaultTo('');
    t.text('access_token_format').notNullable().defaultTo('jwt');
    t.integer('access_token_ttl');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw("ALTER TABLE resource_servers ADD CONSTRAINT resource_servers_format_check CHECK (access_token_format IN ('jwt','opaque'))");

  await knex.schema.createTable('signing_keys', (t) => {
    t.text('kid').primary();
    t.text('alg').notNullable();
    t.text('private_jwk_ciphertext').notNullable();
    t.jsonb('public_jwk').notNullable();
    t.text('status').notNullable().defaultTo('active');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('retired_at', { useTz: true });
  });
  await knex.raw("ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_status_check CHECK (status IN ('active','retired'))");

  await knex.schema.createTable('oidc_payloads', (t) => {
    t.text('model').notNullable();
    t.text('id').notNullable();
    t.jsonb('payload').notNullable();
    t.text('grant_id');
    t.text('user_code');
    t.text('uid');
    t.timestamp('consumed_at', { useTz: true });
    t.timestamp('expires_at', { useTz: true });
    t.primary(['model', 'id']);
    t.index(['grant_id']);
    t.index(['user_code']);
    t.index(['uid']);
    t.index(['expires_at']);
  });

  await knex.schema.createTable('audit_events', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('occurred_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('event_type').notNullable();
    t.text('outcome').notNullable();
    t.uuid('account_id');
    t.text('client_id');
    t.text('ip');
    t.text('user_agent');
    t.jsonb('details').notNullable().defaultTo('{}');
    t.index(['account_id', 'occurred_at']);
    t.index(['event_type', 'occurred_at']);
  });

  // Development-only secrets (encryption key, cookie keys) generated on first start when the
  // operator has not configured any. Production never reads this table (config refuses to start).
  await knex.schema.createTable('dev_secrets', (t) => {
    t.text('name').primary();
    t.text('value').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['dev_secrets', 'audit_events', 'oidc_payloads', 'signing_keys', 'resource_servers', 'clients', 'accounts']) {
    await knex.schema.dropTableIfExists(table);
  }
}
