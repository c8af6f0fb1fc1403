// Migrated databases for tests that run one suite on each storage: the embedded PGlite in a
// temporary directory, and a PostgreSQL database of its own (TEST_DATABASE_URL), dropped after.
import fs from 'node:fs';
import knexFactory, { type Knex } from 'knex';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import { createTestDatabase } from './postgres.ts';
import { tempDataDir } from './server.ts';

export interface MigratedDatabase {
  knex: Knex;
  /** A second pool on the same database (the embedded one has a single connection: the same). */
  other(): Knex;
  close(): Promise<void>;
}

export async function migratedEmbedded(prefix: string): Promise<MigratedDatabase> {
  const dataDir = tempDataDir(prefix);
  const database = await openDatabase(loadConfig({ DATA_DIR: dataDir }));
  await migrateLatest(database.knex);
  return {
    knex: database.knex,
    // One process holds the embedded database: an "other instance" shares its connection.
    other: () => database.knex,
    async close() {
      await database.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `poolMax` connections, so that concurrent statements in a test really run in parallel sessions. */
export async function migratedPostgres(name: string, poolMax: number): Promise<MigratedDatabase> {
  const database = await createTestDatabase(name);
  const knex = knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: poolMax } });
  await migrateLatest(knex);
  const others: Knex[] = [];
  return {
    knex,
    other() {
      const other = knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: 2 } });
      others.push(other);
      return other;
    },
    async close() {
      await knex.destroy();
      await Promise.all(others.map((other) => other.destroy()));
      await database.drop();
    },
  };
}
