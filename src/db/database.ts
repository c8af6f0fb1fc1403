// The Knex instance: PostgreSQL when DATABASE_URL is set, otherwise the embedded PGlite database
// under DATA_DIR. PGlite admits one process per directory, so the server owns it and shares it
// over a Unix socket (pglite-socket); the CLI talks to that socket with plain `pg` while the
// server runs, and opens the directory itself only when no server holds it.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { acquirePidLock, lockOwner, type PidLock } from './pid-lock.ts';

export type DatabaseKind = 'postgres' | 'pglite' | 'pglite-socket';

export interface Database {
  knex: Knex;
  kind: DatabaseKind;
  close(): Promise<void>;
}

interface SocketInfo {
  pid: number;
  path?: string;
  host?: string;
  port?: number;
}

const LOCK_FILE = 'pglite.lock';
const SOCKET_INFO_FILE = 'pglite-socket.json';
// Unix socket paths are limited to ~108 bytes; deeper DATA_DIRs fall back to loopback TCP.
const MAX_SOCKET_PATH = 100;

type KnexLog = Knex.Config['log'];

// Knex writes its own warnings (e.g. connection errors) to the console; send them to our log.
function knexLogFor(logger: Logger | undefined): KnexLog {
  if (!logger) return undefined;
  const write = (level: 'warn' | 'error' | 'debug') => (message: unknown) => logger[level]({ detail: String(message) }, 'database driver');
  return { warn: write('warn'), error: write('error'), deprecate: write('warn'), debug: write('debug') };
}

function postgresKnex(connection: Knex.PgConnectionConfig | string, poolMax: number, log: KnexLog): Knex {
  return knexFactory({ client: 'pg', connection, pool: { min: 0, max: poolMax }, log });
}

function pgliteDir(dataDir: string): string {
  return path.join(dataDir, 'pgdata');
}

async function canConnect(info: SocketInfo): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = info.path ? net.connect(info.path) : net.connect(info.port ?? 0, info.host ?? '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

function readSocketInfo(dataDir: string): SocketInfo | undefined {
  try {
    const info = JSON.parse(fs.readFileSync(path.join(dataDir, SOCKET_INFO_FILE), 'utf8')) as SocketInfo;
    return lockOwner(path.join(dataDir, LOCK_FILE)) === info.pid ? info : undefined;
  } catch {
    return undefined;
  }
}

function socketKnex(info: SocketInfo, log: KnexLog): Knex {
  const connection: Knex.PgConnectionConfig = info.path
    ? { host: path.dirname(info.path), port: 5432, user: 'postgres', database: 'postgres' }
    : { host: info.host ?? '127.0.0.1', port: info.port ?? 5432, user: 'postgres', database: 'postgres' };
  // One connection: the socket server multiplexes onto PGlite's single session.
  return postgresKnex(connection, 1, log);
}

async function openPglite(dataDir: string, lock: PidLock): Promise<{ pglite: PGlite; knex: Knex }> {
  fs.mkdirSync(pgliteDir(dataDir), { recursive: true });
  try {
    const pglite = await PGlite.create(pgliteDir(dataDir));
    // knex-pglite keeps a pool of exactly one connection; the function form hands it our instance.
    const knex = knexFactory({ client: ClientPgLite, dialect: 'postgres', connection: () => ({ pglite }) as object } as Knex.Config);
    return { pglite, knex };
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** For the server: own the embedded database and publish it on a socket for the CLI. */
async function openEmbeddedForServer(dataDir: string): Promise<Database> {
  fs.mkdirSync(dataDir, { recursive: true });
  // A CLI command may hold the directory for a moment; wait for it rather than failing.
  const lock = (await acquirePidLock(path.join(dataDir, LOCK_FILE), 60_000))!;
  const { pglite, knex } = await openPglite(dataDir, lock);
  const socketPath = path.join(dataDir, '.s.PGSQL.5432');
  fs.rmSync(socketPath, { force: true });
  const useUnix = socketPath.length <= MAX_SOCKET_PATH;
  const socketServer = new PGLiteSocketServer({ db: pglite, maxConnections: 8, ...(useUnix ? { path: socketPath } : { host: '127.0.0.1', port: 0 }) });
  await socketServer.start();
  let info: SocketInfo = { pid: process.pid, path: socketPath };
  if (useUnix) {
    fs.chmodSync(socketPath, 0o600);
  } else {
    const conn = socketServer.getServerConn();
    info = { pid: process.pid, host: '127.0.0.1', port: Number(conn.split(':').pop()) };
  }
  fs.writeFileSync(path.join(dataDir, SOCKET_INFO_FILE), JSON.stringify(info), { mode: 0o600 });
  return {
    knex,
    kind: 'pglite',
    async close() {
      await socketServer.stop().catch(() => undefined);
      await knex.destroy();
      // knex-pglite closes the instance when its connection is destroyed; close it if not.
      if (!pglite.closed) await pglite.close();
      fs.rmSync(path.join(dataDir, SOCKET_INFO_FILE), { force: true });
      fs.rmSync(socketPath, { force: true });
      lock.release();
    },
  };
}

/** For the CLI and tools: the running server's socket if there is one, else the directory itself. */
async function openEmbeddedForClient(dataDir: string, log: KnexLog): Promise<Database> {
  fs.mkdirSync(dataDir, { recursive: true });
  const viaSocket = async (): Promise<Database | undefined> => {
    const info = readSocketInfo(dataDir);
    if (!info || !(await canConnect(info))) return undefined;
    const knex = socketKnex(info, log);
    return { knex, kind: 'pglite-socket', close: () => knex.destroy() };
  };
  const existing = await viaSocket();
  if (existing) return existing;
  let shared: Database | undefined;
  // While we wait for the lock, a server that is starting up may publish its socket: use it.
  const lock = await acquirePidLock(path.join(dataDir, LOCK_FILE), 60_000, async () => {
    shared = await viaSocket();
    return shared === undefined;
  });
  if (!lock) return shared!;
  const { pglite, knex } = await openPglite(dataDir, lock);
  return {
    knex,
    kind: 'pglite',
    async close() {
      await knex.destroy();
      if (!pglite.closed) await pglite.close();
      lock.release();
    },
  };
}

export async function openDatabase(config: Config, role: 'server' | 'client', logger?: Logger): Promise<Database> {
  const log = knexLogFor(logger);
  if (config.databaseUrl) {
    const knex = postgresKnex(config.databaseUrl, config.databasePoolMax, log);
    return { knex, kind: 'postgres', close: () => knex.destroy() };
  }
  return role === 'server' ? openEmbeddedForServer(config.dataDir) : openEmbeddedForClient(config.dataDir, log);
}
