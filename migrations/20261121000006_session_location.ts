import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Approximate place of the sign-in, from a GeoIP database when one is configured.
  await knex.schema.alterTable('account_sessions', (t) => {
    t.text('location');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('account_sessions', (t) => {
    t.dropColumn('location');
  });
}
