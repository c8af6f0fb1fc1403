// Rate limits on every storage they run on: the embedded PGlite table, a PostgreSQL server and
// Redis. Two RateLimits objects over the same storage stand for two server instances: they must
// enforce one limit together. The PostgreSQL and Redis blocks skip (visibly) when
// TEST_DATABASE_URL / TEST_REDIS_URL are unset.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import knexFactory, { type Knex } from 'knex';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/logger.ts';
import { createRateLimits, sweepExpiredRateLimits, tooManyRequests, type RateLimits } from '../../src/security/rate-limit.ts';
import { createTestDatabase, TEST_DATABASE_URL, TEST_REDIS_URL, uniqueRedisPrefix, type TestDatabase } from '../helpers/postgres.ts';
import { tempDataDir } from '../helpers/server.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const logger = createLogger('silent');

// Small limits so a test reaches them quickly; otpAccount has a one-second window for expiry.
const LIMITS = {
  RATE_LIMIT_LOGIN_IP: '3/60',
  RATE_LIMIT_LOGIN_ACCOUNT_IP: '5/900',
  RATE_LIMIT_SIGNUP_IP: '10/60',
  RATE_LIMIT_OTP_ACCOUNT: '2/1',
};

function testConfig(extra: Record<string, string> = {}): Config {
  return loadConfig({ DATA_DIR: '/nonexistent', ...LIMITS, ...extra });
}

let keySeq = 0;
/** A key no other test in the run uses, so shared storage never leaks counts between tests. */
const freshKey = (label: string) => `${label}-${process.pid}-${++keySeq}-${Date.now()}`;

interface Backend {
  /** A RateLimits as one server instance would build it. */
  instance(config?: Config): RateLimits;
  /** A second, independent instance on the same storage, when the backend allows one. */
  secondInstance?: (config?: Config) => RateLimits;
  /** Every stored key (and, for the table, its row), to check what is kept. */
  stored(): Promise<unknown[]>;
  /** The SQL store's connection, for backends that keep buckets in a table. */
  knex?: Knex;
  close(): Promise<void>;
}

function contract(name: string, open: () => Promise<Backend>, skip = false): void {
  describe.skipIf(skip)(`rate limits: ${name}`, () => {
    let backend: Backend;
    let limits: RateLimits;

    beforeAll(async () => {
      backend = await open();
      limits = backend.instance();
    });
    afterAll(async () => {
      await backend?.close();
    });

    it('allows the configured points, then refuses with a wait inside the window', async () => {
      const key = freshKey('ip');
      expect(await limits.consume('loginIp', key)).toEqual({ ok: true, remaining: 2 });
      expect(await limits.consume('loginIp', key)).toEqual({ ok: true, remaining: 1 });
      expect(await limits.consume('loginIp', key)).toEqual({ ok: true, remaining: 0 });
      const refused = await limits.consume('loginIp', key);
      expect(refused.ok).toBe(false);
      if (refused.ok) throw new Error('unreachable');
      expect(refused.retryAfterSeconds).toBeGreaterThan(0);
      expect(refused.retryAfterSeconds).toBeLessThanOrEqual(60);
      // Still refused on further attempts; the window does not restart.
      expect((await limits.consume('loginIp', key)).ok).toBe(false);
    });

    it('counts several points at once', async () => {
      const key = freshKey('multi');
      expect(await limits.consume('signupIp', key, 7)).toEqual({ ok: true, remaining: 3 });
      expect((await limits.consume('signupIp', key, 4)).ok).toBe(false);
    });

    it('keeps keys and rules apart', async () => {
      const a = freshKey('a');
      const b = freshKey('b');
      for (let i = 0; i < 3; i++) await limits.consume('loginIp', a);
      expect((await limits.consume('loginIp', a)).ok).toBe(false);
      expect(await limits.consume('loginIp', b)).toEqual({ ok: true, remaining: 2 });
      // The same key under another rule has its own count.
      expect(await limits.consume('loginAccountIp', a)).toEqual({ ok: true, remaining: 4 });
    });

    it('peeks without consuming', async () => {
      const key = freshKey('peek');
      expect(await limits.peek('loginIp', key)).toEqual({ consumed: 0, retryAfterSeconds: 0, blocked: false });
      await limits.consume('loginIp', key);
      await limits.consume('loginIp', key);
      for (let i = 0; i < 3; i++) {
        const peeked = await limits.peek('loginIp', key);
        expect(peeked.consumed).toBe(2);
        expect(peeked.blocked).toBe(false);
        expect(peeked.retryAfterSeconds).toBeGreaterThan(0);
        expect(peeked.retryAfterSeconds).toBeLessThanOrEqual(60);
      }
      expect(await limits.consume('loginIp', key)).toEqual({ ok: true, remaining: 0 });
      expect(await limits.peek('loginIp', key)).toMatchObject({ consumed: 3, blocked: true });
    });

    it('rewards give back only what was taken, and reset forgets the key', async () => {
      const key = freshKey('reward');
      await limits.reward('loginIp', key);
      // A reward on an unknown key is no credit for later.
      expect(await limits.peek('loginIp', key)).toMatchObject({ consumed: 0 });
      for (let i = 0; i < 3; i++) await limits.consume('loginIp', key);
      await limits.reward('loginIp', key);
      expect(await limits.peek('loginIp', key)).toMatchObject({ consumed: 2, blocked: false });
      expect(await limits.consume('loginIp', key)).toEqual({ ok: true, remaining: 0 });
      expect((await limits.consume('loginIp', key)).ok).toBe(false);
      await limits.reset('loginIp', key);
      expect(await limits.peek('loginIp', key)).toEqual({ consumed: 0, retryAfterSeconds: 0, blocked: false });
      expect(await limits.consume('loginIp', key)).toEqual({ ok: true, remaining: 2 });
    });

    it('starts a new window once the old one is over', async () => {
      const key = freshKey('window');
      await limits.consume('otpAccount', key);
      await limits.consume('otpAccount', key);
      expect((await limits.consume('otpAccount', key)).ok).toBe(false);
      await sleep(1200);
      expect(await limits.peek('otpAccount', key)).toMatchObject({ consumed: 0 });
      expect(await limits.consume('otpAccount', key)).toEqual({ ok: true, remaining: 1 });
    });

    it('allows everything when rate limiting is disabled', async () => {
      const disabled = backend.instance(testConfig({ RATE_LIMIT_ENABLED: 'false' }));
      const key = freshKey('off');
      for (let i = 0; i < 10; i++) expect((await disabled.consume('loginIp', key)).ok).toBe(true);
      expect(await disabled.peek('loginIp', key)).toEqual({ consumed: 0, retryAfterSeconds: 0, blocked: false });
      // Nothing was stored either: an enabled instance sees a fresh key.
      expect(await limits.consume('loginIp', key)).toEqual({ ok: true, remaining: 2 });
    });

    it('stores a digest of the key, never the email or address itself', async () => {
      const key = `someone@example.com|203.0.113.9|${freshKey('pii')}`;
      await limits.consume('loginAccountIp', key);
      const rows = JSON.stringify(await backend.stored());
      expect(rows).not.toContain('someone@example.com');
      expect(rows).not.toContain('203.0.113.9');
      expect(rows).toContain('rl:loginAccountIp:');
    });

    it('sweeps expired buckets from the table', async (ctx) => {
      if (!backend.knex) return ctx.skip();
      const key = freshKey('sweep');
      await limits.consume('otpAccount', key);
      await sleep(1200);
      expect(await sweepExpiredRateLimits(backend.knex)).toBeGreaterThan(0);
      expect(await limits.peek('otpAccount', key)).toMatchObject({ consumed: 0 });
    });

    it('counts concurrent attempts exactly', async () => {
      const key = freshKey('burst');
      const results = await Promise.all(Array.from({ length: 25 }, () => limits.consume('signupIp', key)));
      expect(results.filter((r) => r.ok)).toHaveLength(10);
      expect(await limits.peek('signupIp', key)).toMatchObject({ consumed: 25, blocked: true });
    });

    it('enforces one limit across two instances sharing the storage', async (ctx) => {
      if (!backend.secondInstance) return ctx.skip();
      const other = backend.secondInstance();
      const key = freshKey('shared');
      expect((await limits.consume('loginIp', key)).ok).toBe(true);
      expect((await other.consume('loginIp', key)).ok).toBe(true);
      expect(await limits.consume('loginIp', key)).toEqual({ ok: true, remaining: 0 });
      expect((await other.consume('loginIp', key)).ok).toBe(false);
      expect((await limits.consume('loginIp', key)).ok).toBe(false);
      expect(await other.peek('loginIp', key)).toMatchObject({ consumed: 5, blocked: true });

      // And under a concurrent burst split between them.
      const burstKey = freshKey('shared-burst');
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? limits : other).consume('signupIp', burstKey)));
      expect(results.filter((r) => r.ok)).toHaveLength(10);

      // A reset on one instance is seen by the other.
      await other.reset('loginIp', key);
      expect(await limits.consume('loginIp', key)).toEqual({ ok: true, remaining: 2 });
    });
  });
}

contract('embedded PGlite', async () => {
  const dataDir = tempDataDir('gh-rl-');
  const database: Database = await openDatabase(loadConfig({ DATA_DIR: dataDir }));
  await migrateLatest(database.knex);
  return {
    instance: (config = testConfig()) => createRateLimits({ config, knex: database.knex, logger }),
    stored: () => database.knex('rate_limits').select('*'),
    knex: database.knex,
    async close() {
      await database.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
});

contract(
  'PostgreSQL',
  async () => {
    const database: TestDatabase = await createTestDatabase('gh_rl');
    const first = knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: 5 } });
    await migrateLatest(first);
    // Its own pool, as a second server process would have.
    const second = knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: 5 } });
    return {
      instance: (config = testConfig()) => createRateLimits({ config, knex: first, logger }),
      secondInstance: (config = testConfig()) => createRateLimits({ config, knex: second, logger }),
      stored: () => first('rate_limits').select('*'),
      knex: first,
      async close() {
        await first.destroy();
        await second.destroy();
        await database.drop();
      },
    };
  },
  !TEST_DATABASE_URL,
);

async function deleteByPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

contract(
  'Redis',
  async () => {
    const prefix = `${uniqueRedisPrefix()}rl`;
    const first = new Redis(TEST_REDIS_URL!);
    const second = new Redis(TEST_REDIS_URL!);
    await Promise.all([first.ping(), second.ping()]);
    // Redis needs no table; a knex that could never connect proves nothing falls back to SQL.
    const unusedKnex = knexFactory({ client: 'pg', connection: 'postgres://invalid.invalid/none' });
    return {
      instance: (config = testConfig()) => createRateLimits({ config, redis: first, knex: unusedKnex, logger, keyPrefix: prefix }),
      secondInstance: (config = testConfig()) => createRateLimits({ config, redis: second, knex: unusedKnex, logger, keyPrefix: prefix }),
      stored: () => first.keys(`${prefix}*`),
      async close() {
        await deleteByPrefix(first, prefix);
        await first.quit();
        await second.quit();
        await unusedKnex.destroy();
      },
    };
  },
  !TEST_REDIS_URL,
);

describe('rate limits: storage outage', () => {
  it('keeps limiting per instance and warns when Redis is unreachable', async () => {
    const lines: string[] = [];
    const warnLogger = createLogger('warn', { write: (line: string) => void lines.push(line) });
    // Nothing listens on port 1; the client never becomes ready.
    const redis = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => undefined);
    const knex = knexFactory({ client: 'pg', connection: 'postgres://invalid.invalid/none' });
    try {
      const limits = createRateLimits({ config: testConfig(), redis, knex, logger: warnLogger });
      const key = freshKey('outage');
      expect(await limits.consume('loginIp', key)).toEqual({ ok: true, remaining: 2 });
      await limits.consume('loginIp', key);
      await limits.consume('loginIp', key);
      expect((await limits.consume('loginIp', key)).ok).toBe(false);
      expect(await limits.peek('loginIp', key)).toMatchObject({ consumed: 4, blocked: true });
      const warnings = lines.map((l) => JSON.parse(l) as { msg: string; rule?: string });
      expect(warnings.some((w) => w.msg.includes('rate limit storage unavailable') && w.rule === 'loginIp')).toBe(true);
      // Keys are never logged.
      expect(lines.join('\n')).not.toContain(key);
    } finally {
      redis.disconnect();
      await knex.destroy();
    }
  });
});

describe('tooManyRequests', () => {
  it('reads well and carries the wait for Retry-After', () => {
    expect(tooManyRequests(1)).toMatchObject({ status: 429, code: 'rate_limited', message: 'Too many attempts. Try again in 1 second.', details: { retryAfterSeconds: 1 } });
    expect(tooManyRequests(42.2).message).toBe('Too many attempts. Try again in 43 seconds.');
    expect(tooManyRequests(60).message).toBe('Too many attempts. Try again in 1 minute.');
    expect(tooManyRequests(61).message).toBe('Too many attempts. Try again in 2 minutes.');
    expect(tooManyRequests(900).message).toBe('Too many attempts. Try again in 15 minutes.');
    expect(tooManyRequests(0).details).toEqual({ retryAfterSeconds: 1 });
  });
});
