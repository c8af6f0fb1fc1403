import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Where each refresh token was issued (its device fingerprint) and what became of it when it
  // was rotated. The token itself is never stored: rows are keyed by a SHA-256 of its value, and
  // the successor response kept for the per-client grace window is encrypted.
  await knex.schema.createTable('token_bindings', (t) => {
    t.text('token_hash').primary();
    t.uuid('account_id').notNullable().references('id').inTable('accounts').onDelete('CASCADE');
    t.text('client_id').notNullable();
    t.text('session_uid');
    t.text('grant_id');
    // The binding: client, user agent family and, for DPoP clients, the key thumbprint.
    t.text('fingerprint').notNullable();
    t.text('ua_family');
    t.text('dpop_jkt');
    // "Remember me" of the sign-in the chain started from; sets the lifetimes of its tokens.
    t.boolean('remember').notNullable().defaultTo(false);
    // The last unfamiliar fingerprint the account holder was told about, so one new device is
    // reported once per chain rather than at every refresh.
    t.text('alerted_fingerprint');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('rotated_at', { useTz: true });
    // Fingerprint of the request that rotated the token: only that device may replay.
    t.text('rotation_fingerprint');
    t.text('successor_hash');
    t.text('successor_ciphertext');
    t.timestamp('grace_until', { useTz: true });
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.index(['expires_at']);
    t.index(['grace_until']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('token_bindings');
}
