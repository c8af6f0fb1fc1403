import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Guest (anonymous) accounts keep `email` NOT NULL with a placeholder in the reserved .invalid
  // domain (RFC 2606), like deleted accounts do: the unique index and every reader of the column
  // keep working, and nothing can ever be delivered there (docs/decisions.md).
  await knex.schema.alterTable('accounts', (t) => {
    t.boolean('is_guest').notNullable().defaultTo(false);
    // When a guest added an email and password. Until that address is verified, signing in
    // with the password follows the same rule as a fresh signup (REQUIRE_VERIFIED_EMAIL).
    t.timestamp('guest_upgraded_at', { useTz: true });
  });
  // The expiry sweep looks only at guests, oldest first; a partial index keeps it small.
  await knex.raw('CREATE INDEX accounts_guest_created_at_index ON accounts (created_at) WHERE is_guest');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS accounts_guest_created_at_index');
  await knex.schema.alterTable('accounts', (t) => {
    t.dropColumns('is_guest', 'guest_upgraded_at');
  });
}
