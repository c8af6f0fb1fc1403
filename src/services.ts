// The dependencies of the app and the CLI, created once and passed down (never imported as
// globals), so tests build the same objects against their own databases.
import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import type { Config } from './config.ts';
import { openDatabase, type Database } from './db/database.ts';
import type { PidLock } from './db/pid-lock.ts';
import { migrateLatest } from './db/migrate.ts';
import { ensureManagementResource } from './domain/management.ts';
import type { Logger } from './logger.ts';
import { resolveSecrets } from './security/dev-secrets.ts';
import type { SecretBox } from './security/encryption.ts';
import { createNotifier, type Notifier } from './notify/notifier.ts';
import { createRateLimits, type RateLimits } from './security/rate-limit.ts';
import { createCaptcha, type Captcha } from './security/captcha.ts';
import { openGeoIp, type GeoIp } from './geoip.ts';
import { createMetrics, type Metrics } from './metrics.ts';

export interface Services {
  config: Config;
  logger: Logger;
  database: Database;
  knex: Knex;
  /** Present when REDIS_URL is set; protocol state then lives in Redis instead of the database. */
  redis: Redis | undefined;
  secrets: SecretBox;
  cookieKeys: string[];
  usingDevelopmentSecrets: boolean;
  /** Mail and SMS through the transactional outbox. */
  notifier: Notifier;
  rateLimits: RateLimits;
  /** Present when a CAPTCHA vendor is configured. */
  captcha: Captcha | undefined;
  /** Present when GEOIP_DATABASE names a readable MaxMind DB. */
  geoip: GeoIp | undefined;
  /** This process's Prometheus counters, served at /metrics. */
  metrics: Metrics;
  /** Migrations applied while creating these services (empty when the schema was current). */
  appliedMigrations: string[];
  close(): Promise<void>;
}

export function createRedis(url: string, logger: Logger): Redis {
  // Auto-pipelining sends every command issued in one event-loop turn in one write: under load,
  // concurrent requests share system calls instead of paying one each (docs/performance.md).
  // Subscriber connections must not use it (see ProviderHost).
  const redis = new Redis(url, { maxRetriesPerRequest: 3, enableReadyCheck: true, lazyConnect: false, enableAutoPipelining: true });
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
  return redis;
}

export async function createServices(config: Config, logger: Logger, lock?: PidLock): Promise<Services> {
  const database = await openDatabase(config, logger, lock);
  let redis: Redis | undefined;
  const metrics = createMetrics(config.metrics.enabled);
  try {
    const appliedMigrations = await migrateLatest(database.knex);
    // The management API and the administrator role exist on every database, whatever opened it.
    await ensureManagementResource(database.knex, config);
    const secrets = await resolveSecrets(config, database.knex);
    redis = config.redisUrl ? createRedis(config.redisUrl, logger) : undefined;
    const openRedis = redis;
    const notifier = createNotifier({ knex: database.knex, secrets: secrets.box, config, logger });
    return {
      config,
      logger,
      database,
      knex: database.knex,
      redis,
      secrets: secrets.box,
      cookieKeys: secrets.cookieKeys,
      usingDevelopmentSecrets: secrets.usingDevelopmentSecrets,
      notifier,
      rateLimits: createRateLimits({ config, redis, knex: database.knex, logger, onLimited: (rule) => metrics.rateLimitHit(rule) }),
      captcha: createCaptcha(config.captcha, logger),
      geoip: await openGeoIp(config.geoipDatabase, logger),
      metrics,
      appliedMigrations,
      async close() {
        await notifier.stop();
        metrics.close();
        if (openRedis) await openRedis.quit().catch(() => openRedis.disconnect());
        await database.close();
      },
    };
  } catch (err) {
    redis?.disconnect();
    metrics.close();
    await database.close();
    throw err;
  }
}
