import type { Knex } from 'knex';
import { migrations, type Migration } from '../../migrations/index.ts';

// Knex's migrator takes a source object; ours serves the explicit list in migrations/index.ts.
const source: Knex.MigrationSource<[string, Migration]> = {
  getMigrations: async () => migrations,
  getMigrationName: ([name]) => name,
  getMigration: async ([, migration]) => migration,
};

/** Apply pending migrations; returns the names applied now (empty when up to date). */
export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest({ migrationSource: source })) as [number, string[]];
  return applied;
}
