import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Second factors. One row per authenticator: a TOTP app, a passkey, or SMS to the account's
  // verified phone. Secrets are encrypted; a factor counts only once confirmed.
  await knex.schema.createTable('mfa_factors', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('account_id').notNullable().references('id').inTable('accounts').onDelete('CASCADE');
    t.text('type').notNullable();
    t.text('name').notNullable();
    t.text('totp_secret_ciphertext');
    // Highest TOTP time step accepted so far: a code of that step or earlier is a replay.
    t.bigInteger('totp_last_step');
    t.text('credential_id').unique();
    t.text('public_key');
    t.bigInteger('sign_count');
    t.jsonb('transports');
    t.boolean('backup_eligible');
    t.boolean('backup_state');
    t.text('aaguid');
    t.timestamp('confirmed_at', { useTz: true });
    t.timestamp('last_used_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['account_id', 'type']);
  });
  await knex.raw("ALTER TABLE mfa_factors ADD CONSTRAINT mfa_factors_type_check CHECK (type IN ('totp','webauthn','sms'))");

  // Ten single-use recovery codes per account, stored as keyed MACs.
  await knex.schema.createTable('recovery_codes', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('account_id').notNullable().references('id').inTable('accounts').onDelete('CASCADE');
    t.text('code_mac').notNullable();
    t.timestamp('used_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['account_id', 'code_mac']);
  });

  // "Remember this device": the browser holds a random token, we keep its hash so the owner can
  // see and revoke remembered devices.
  await knex.schema.createTable('remembered_devices', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('account_id').notNullable().references('id').inTable('accounts').onDelete('CASCADE');
    t.text('token_hash').notNullable().unique();
    t.text('user_agent');
    t.text('ip');
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('last_used_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['account_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('remembered_devices');
  await knex.schema.dropTableIfExists('recovery_codes');
  await knex.schema.dropTableIfExists('mfa_factors');
}
