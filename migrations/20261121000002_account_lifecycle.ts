import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('accounts', (t) => {
    t.text('phone_number');
    t.boolean('phone_number_verified').notNullable().defaultTo(false);
    // Lockout bookkeeping lives with the account so every instance sees it.
    t.integer('failed_login_count').notNullable().defaultTo(0);
    t.integer('lockout_count').notNullable().defaultTo(0);
    t.timestamp('locked_until', { useTz: true });
    t.timestamp('last_login_at', { useTz: true });
    // Tokens and sessions issued before this instant stop working (password reset, suspension).
    t.timestamp('tokens_valid_after', { useTz: true });
  });

  // Single-use links and codes (email verification, password reset, invitations, phone codes).
  // Only a SHA-256 of the random token is stored; the token itself exists only in the message.
  await knex.schema.createTable('one_time_tokens', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('purpose').notNullable();
    t.uuid('account_id').references('id').inTable('accounts').onDelete('CASCADE');
    t.text('token_hash').notNullable().unique();
    t.jsonb('data').notNullable().defaultTo('{}');
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('consumed_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['account_id', 'purpose', 'created_at']);
    t.index(['expires_at']);
  });

  // Transactional outbox for mail and SMS: a message is queued in the same transaction as the
  // change it reports and delivered (with retries) by whichever instance picks it up.
  await knex.schema.createTable('notifications', (t) => {
    t.bigIncrements('id').primary();
    t.text('channel').notNullable();
    t.text('template').notNullable();
    t.text('recipient').notNullable();
    // Rendered content may contain one-time links, so it is encrypted at rest and wiped once sent.
    t.text('payload_ciphertext');
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('locked_until', { useTz: true });
    t.timestamp('sent_at', { useTz: true });
    t.timestamp('failed_at', { useTz: true });
    t.text('last_error');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['sent_at', 'failed_at', 'next_attempt_at']);
  });
  await knex.raw("ALTER TABLE notifications ADD CONSTRAINT notifications_channel_check CHECK (channel IN ('mail','sms'))");

  // Rate limiter buckets for installs without Redis (rate-limiter-flexible's Postgres layout).
  await knex.schema.createTable('rate_limits', (t) => {
    t.text('key').primary();
    t.integer('points').notNullable().defaultTo(0);
    t.bigInteger('expire');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('rate_limits');
  await knex.schema.dropTableIfExists('notifications');
  await knex.schema.dropTableIfExists('one_time_tokens');
  await knex.schema.alterTable('accounts', (t) => {
    t.dropColumns('phone_number', 'phone_number_verified', 'failed_login_count', 'lockout_count', 'locked_until', 'last_login_at', 'tokens_valid_after');
  });
}
