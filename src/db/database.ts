// The Knex instance: PostgreSQL when DATABASE_URL is set, otherwise the embedded PGlite database
// under DATA_DIR. PGlite admits one process per directory: a pid lock file says who holds it.
// While the server holds it, `gatehouse` commands run inside the server (src/cli/control.ts).
import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import { PGlite } from '@electric-sql/pglite';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { acquirePidLock, type PidLock } from './pid-lock.ts';

export type DatabaseKind = 'postgres' | 'pglite';

export interface Database {
  knex: Knex;
  kind: DatabaseKind;
  close(): Promise<void>;
}

export const LOCK_FILE = 'pglite.lock';

type KnexLog = Knex.Config['log'];

// Knex writes its own warnings (e.g. connection errors) to the console; send them to our log.
function knexLogFor(logger: Logger | undefined): KnexLog {
  if (!logger) return undefined;
  const write = (level: 'warn' | 'error' | 'debug') => (message: unknown) => logger[level]({ detail: String(message) }, 'database driver');
  return { warn: write('warn'), error: write('error'), deprecate: write('warn'), debug: write('debug') };
}

async function openEmbedded(dataDir: string, lock: PidLock): Promise<Database> {
  const directory = path.join(dataDir, 'pgdata');
  fs.mkdirSync(directory, { recursive: true });
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(directory);
  } catch (err) {
    lock.release();
    throw err;
  }
  // knex-pglite keeps a pool of exactly one connection; the function form hands it our instance.
  const knex = knexFactory({ client: ClientPgLite, dialect: 'postgres', connection: () => ({ pglite }) as object } as Knex.Config);
  return {
    knex,
    kind: 'pglite',
    async close() {
      await knex.destroy();
      // knex-pglite closes the instance when its connection is destroyed; close it if not.
      if (!pglite.closed) await pglite.close();
      lock.release();
    },
  };
}

/**
 * Opens the database. On the embedded default this takes the data directory's lock, waiting up
 * to a minute for another process (a CLI command finishing, a server stopping) to let go.
 */
export async function openDatabase(config: Config, logger?: Logger, lock?: PidLock): Promise<Database> {
  if (config.databaseUrl) {
    const knex = knexFactory({ client: 'pg', connection: config.databaseUrl, pool: { min: 0, max: config.databasePoolMax }, log: knexLogFor(logger) });
    return { knex, kind: 'postgres', close: () => knex.destroy() };
  }
  fs.mkdirSync(config.dataDir, { recursive: true });
  const held = lock ?? (await acquirePidLock(path.join(config.dataDir, LOCK_FILE), 60_000))!;
  return openEmbedded(config.dataDir, held);
}
