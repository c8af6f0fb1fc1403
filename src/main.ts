// Process entry: configuration -> services -> app -> listen, and a graceful stop on SIGTERM.
import http from 'node:http';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { pino } from 'pino';
import { createLogger } from './logger.ts';
import { createServices } from './services.ts';
import { buildApp } from './app.ts';
import { ensureSigningKeys } from './oidc/keys.ts';
import { sweepExpiredPayloads } from './oidc/adapters/sql.ts';
import { deleteExpiredTokens } from './db/one-time-tokens.ts';
import { sweepAuditRetention } from './domain/audit-retention.ts';
import { sweepExpiredGuests } from './domain/guest-accounts.ts';
import { startControlServer } from './cli/control.ts';
import { setHashingConcurrency } from './domain/passwords.ts';

function banner(config: Config, firstStart: boolean): string {
  const storage = config.databaseUrl ? 'PostgreSQL' : `embedded database in ${config.dataDir}`;
  const lines = [
    '',
    `  Gatehouse is running at ${config.issuer}`,
    `  Discovery: ${config.issuer}/.well-known/openid-configuration`,
    `  Storage:   ${storage}${config.redisUrl ? ' + Redis' : ''}`,
  ];
  if (firstStart || config.env !== 'production') {
    lines.push(
      '',
      '  Register an application and a user:',
      '    npx gatehouse client create --name "My App" --redirect-uri http://localhost:8080/callback --scope "openid profile email offline_access"',
      '    npx gatehouse user create --email you@example.com --password "a long passphrase" --name "Your Name" --verified',
    );
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  // libuv creates its threadpool the first time it is used, with UV_THREADPOOL_SIZE threads (4 by
  // default), and never resizes it. argon2 hashing (at most PASSWORD_HASHING_CONCURRENCY at once)
  // shares it with WebCrypto signing, async fs and DNS lookups: size it so that those keep libuv's
  // usual four threads while every hashing slot is busy, and a token signature never waits for a
  // password hash. Set here rather than in the start script so that every way of starting the
  // server (npm start, the container, `node src/main.ts`) gets it; importing the modules above and
  // reading the configuration do not touch the pool. An operator's own UV_THREADPOOL_SIZE wins.
  process.env.UV_THREADPOOL_SIZE ??= String(config.passwordHashingConcurrency + 4);
  setHashingConcurrency(config.passwordHashingConcurrency);
  // Asynchronous, buffered log writes: a synchronous write per request line cost about a quarter
  // of the throughput of the cheapest endpoints (docs/performance.md). pino flushes the buffer
  // synchronously when the process exits, including on a crash.
  const logger = createLogger(config.logLevel, pino.destination({ dest: 1, sync: false, minLength: 4096 }));
  const services = await createServices(config, logger);
  if (services.appliedMigrations.length) logger.info({ migrations: services.appliedMigrations }, 'database migrated');
  if (services.usingDevelopmentSecrets) logger.warn('using generated development secrets; set ENCRYPTION_KEYS and COOKIE_KEYS for production');
  const createdKeys = await ensureSigningKeys(services);
  if (createdKeys.length) logger.info({ keys: createdKeys }, 'signing keys generated');

  const { host, listener } = await buildApp(services);
  services.notifier.start();
  // On the embedded database, `gatehouse` commands run inside this process (see cli/control.ts).
  const control = config.databaseUrl ? undefined : await startControlServer(services);
  const server = http.createServer(listener);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  logger.info({ issuer: config.issuer, port: config.port }, 'listening');
  process.stdout.write(banner(config, createdKeys.length > 0));

  // Expired one-time links, audit events past AUDIT_RETENTION_DAYS, guest accounts unused for
  // GUEST_ACCOUNT_TTL_DAYS and (without Redis) expired protocol rows are swept periodically;
  // guests also at start, so a restarted instance does not wait a full interval.
  const sweepGuests = () => sweepExpiredGuests(services, config.guestAccountTtlDays).then((deleted) => {
    if (deleted > 0) logger.info({ deleted }, 'unused guest accounts deleted');
  });
  sweepGuests().catch((err: unknown) => logger.warn({ err }, 'sweeping guest accounts failed'));
  const sweeper = setInterval(() => {
    const auditSweep = sweepAuditRetention(services.knex, config.auditRetentionDays).then((deleted) => {
      if (deleted > 0) logger.info({ deleted }, 'audit events past their retention deleted');
    });
    const sweeps = [deleteExpiredTokens(services.knex), auditSweep, sweepGuests(), ...(services.redis ? [] : [sweepExpiredPayloads(services.knex)])];
    Promise.all(sweeps).catch((err: unknown) => logger.warn({ err }, 'sweeping expired rows failed'));
  }, 10 * 60 * 1000);
  sweeper.unref();

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    clearInterval(sweeper);
    const forced = setTimeout(() => server.closeAllConnections(), config.shutdownGraceSeconds * 1000);
    forced.unref();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    clearTimeout(forced);
    await control?.close();
    await host.stop();
    await services.close();
    logger.info('stopped');
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`Gatehouse failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
