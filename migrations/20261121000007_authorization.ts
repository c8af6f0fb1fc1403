import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Named permissions of each API (resource indicator). They replace the space-separated scope
  // column: a permission is exactly a scope value the API accepts.
  await knex.schema.createTable('permissions', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('resource_id').notNullable().references('id').inTable('resource_servers').onDelete('CASCADE');
    t.text('name').notNullable();
    t.text('description');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['resource_id', 'name']);
  });
  const resources = await knex('resource_servers').select<{ id: string; scope: string }[]>('id', 'scope');
  for (const resource of resources) {
    const names = [...new Set(resource.scope.split(' ').filter(Boolean))];
    if (names.length > 0) await knex('permissions').insert(names.map((name) => ({ resource_id: resource.id, name })));
  }
  await knex.schema.alterTable('resource_servers', (t) => {
    t.dropColumn('scope');
    // The API's own confidential client: its credentials call the decision endpoint and
    // introspect tokens for this API.
    t.text('api_client_id').references('client_id').inTable('clients').onDelete('SET NULL');
    // The management API is registered by Gatehouse itself and cannot be removed.
    t.boolean('built_in').notNullable().defaultTo(false);
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('roles', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('name').notNullable().unique();
    t.text('description');
    // Built-in roles (the administrator role) cannot be deleted or renamed.
    t.boolean('built_in').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('role_permissions', (t) => {
    t.uuid('role_id').notNullable().references('id').inTable('roles').onDelete('CASCADE');
    t.uuid('permission_id').notNullable().references('id').inTable('permissions').onDelete('CASCADE');
    t.primary(['role_id', 'permission_id']);
    t.index(['permission_id']);
  });

  // Roles held directly by a user (subject_id = account id) or a machine client (client id).
  // No foreign key on subject_id because it names rows of two tables; deleting an account or a
  // client removes its assignments in the domain code.
  await knex.schema.createTable('role_assignments', (t) => {
    t.uuid('role_id').notNullable().references('id').inTable('roles').onDelete('CASCADE');
    t.text('subject_type').notNullable();
    t.text('subject_id').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['role_id', 'subject_type', 'subject_id']);
    t.index(['subject_type', 'subject_id']);
  });
  await knex.raw("ALTER TABLE role_assignments ADD CONSTRAINT role_assignments_subject_check CHECK (subject_type IN ('user','client'))");

  // Default-role rules: every user, every user of an email domain, or every machine client
  // holds the role without an assignment row. Evaluated when tokens are issued, so a new rule
  // applies to existing subjects too.
  await knex.schema.createTable('default_role_rules', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('role_id').notNullable().references('id').inTable('roles').onDelete('CASCADE');
    t.text('subject_type').notNullable();
    t.text('email_domain');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw("ALTER TABLE default_role_rules ADD CONSTRAINT default_role_rules_subject_check CHECK (subject_type IN ('user','client'))");
  await knex.raw('CREATE UNIQUE INDEX default_role_rules_unique ON default_role_rules (role_id, subject_type, coalesce(email_domain, \'\'))');

  // ABAC policies of one API: an effect for some actions when a condition over the subject's,
  // the object's and the request context's attributes holds.
  await knex.schema.createTable('authz_policies', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('resource_id').notNullable().references('id').inTable('resource_servers').onDelete('CASCADE');
    t.text('name').notNullable();
    t.text('description');
    t.text('effect').notNullable();
    t.jsonb('actions').notNullable();
    t.text('condition').notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['resource_id', 'name']);
  });
  await knex.raw("ALTER TABLE authz_policies ADD CONSTRAINT authz_policies_effect_check CHECK (effect IN ('allow','deny'))");

  // Per-object grants (subject, object, action) of one API. subject is "user:<account id>",
  // "client:<client id>" or "role:<role name>".
  await knex.schema.createTable('acl_entries', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('resource_id').notNullable().references('id').inTable('resource_servers').onDelete('CASCADE');
    t.text('subject').notNullable();
    t.text('object').notNullable();
    t.text('action').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['resource_id', 'subject', 'object', 'action']);
    t.index(['resource_id', 'object']);
  });

  // API keys: only a hash of the secret is stored; the prefix + key id are shown in lists.
  await knex.schema.createTable('api_keys', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('name').notNullable();
    t.text('key_hash').notNullable().unique();
    // The first characters of the key, shown so people can tell keys apart.
    t.text('key_hint').notNullable();
    t.uuid('owner_account_id').references('id').inTable('accounts').onDelete('CASCADE');
    t.text('owner_client_id').references('client_id').inTable('clients').onDelete('CASCADE');
    // The API the key is for (the management API for admin keys); its scopes are permissions there.
    t.uuid('resource_id').notNullable().references('id').inTable('resource_servers').onDelete('CASCADE');
    t.jsonb('scopes').notNullable().defaultTo('[]');
    t.timestamp('expires_at', { useTz: true });
    t.timestamp('last_used_at', { useTz: true });
    t.bigInteger('usage_count').notNullable().defaultTo(0);
    t.timestamp('revoked_at', { useTz: true });
    // Rotation: the successor key's id, and until when this (old) key still works.
    t.uuid('replaced_by');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['api_keys', 'acl_entries', 'authz_policies', 'default_role_rules', 'role_assignments', 'role_permissions', 'roles']) {
    await knex.schema.dropTableIfExists(table);
  }
  await knex.schema.alterTable('resource_servers', (t) => {
    t.text('scope').notNullable().defaultTo('');
    t.dropColumn('api_client_id');
    t.dropColumn('built_in');
    t.dropColumn('updated_at');
  });
  await knex.raw("UPDATE resource_servers r SET scope = coalesce((SELECT string_agg(name, ' ' ORDER BY created_at, name) FROM permissions p WHERE p.resource_id = r.id), '')");
  await knex.schema.dropTableIfExists('permissions');
}
