import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Accounts at upstream identity providers (Google, GitHub, a company's SSO ...) that may sign
  // in to a Gatehouse account. The upstream's subject identifies the person there; its email is
  // kept only to show the owner what is linked, never to find the account again.
  await knex.schema.createTable('federated_identities', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('account_id').notNullable().references('id').inTable('accounts').onDelete('CASCADE');
    // The provider's id from the federation configuration (the slug in its callback URL).
    t.text('provider').notNullable();
    t.text('subject').notNullable();
    t.text('email');
    t.boolean('email_verified').notNullable().defaultTo(false);
    t.text('display_name');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_used_at', { useTz: true });
    t.unique(['provider', 'subject']);
    t.index(['account_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('federated_identities');
}
