// Rate limits for sign-in, sign-up, recovery, verification, OTP checks and the token endpoint,
// on rate-limiter-flexible. The counters live in Redis when it is configured, otherwise in the
// `rate_limits` table, so every instance sharing that storage enforces one limit together.
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type { Context } from 'koa';
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RateLimiterAbstract, RateLimiterStoreAbstract } from 'rate-limiter-flexible';
import type { Config, RateLimitRule } from '../config.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { BatchedLimiter, type LimiterStore } from './batched-limiter.ts';

export type RateLimitRuleName = 'loginIp' | 'loginAccountIp' | 'signupIp' | 'recoveryIp' | 'verifyIp' | 'otpAccount' | 'tokenClient' | 'guestIp';

export const RATE_LIMIT_RULES: readonly RateLimitRuleName[] = ['loginIp', 'loginAccountIp', 'signupIp', 'recoveryIp', 'verifyIp', 'otpAccount', 'tokenClient', 'guestIp'];

export type ConsumeResult = { ok: true; remaining: number } | { ok: false; retryAfterSeconds: number };

export interface PeekResult {
  /** Points used in the current window (0 when nothing was recorded or the window is over). */
  consumed: number;
  /** Seconds until the current window ends and the count starts again (0 without a window). */
  retryAfterSeconds: number;
  /** Whether the next consume() would be refused. */
  blocked: boolean;
}

export interface RateLimits {
  /** Counts `points` against `key` under `rule`; refused once the rule's points are used up. */
  consume(rule: RateLimitRuleName, key: string, points?: number): Promise<ConsumeResult>;
  /** Reads the count without adding to it. */
  peek(rule: RateLimitRuleName, key: string): Promise<PeekResult>;
  /** Gives points back (e.g. an attempt that turned out not to count). */
  reward(rule: RateLimitRuleName, key: string, points?: number): Promise<void>;
  /** Forgets the key's count entirely. */
  reset(rule: RateLimitRuleName, key: string): Promise<void>;
}

export interface RateLimitDeps {
  config: Pick<Config, 'rateLimits'>;
  redis?: Redis | undefined;
  knex: Knex;
  logger: Logger;
  /** Namespace of the stored keys; tests use their own so runs never share counters. */
  keyPrefix?: string;
  /** Told about every refused attempt (metrics). */
  onLimited?: (rule: RateLimitRuleName) => void;
}

const DEFAULT_KEY_PREFIX = 'gatehouse:rl';

// Counted in process and written in batches (security/batched-limiter.ts): limits on machine
// traffic, where a round trip per request costs more than an approximate count across
// instances. Limits that stand between an attacker and a password or a code stay exact.
const BATCHED_RULES: ReadonlySet<RateLimitRuleName> = new Set(['tokenClient']);
const STORE_WARNING_INTERVAL_MS = 60_000;
const SWEEP_INTERVAL_MS = 5 * 60_000;

// rate-limiter-flexible's typings declare RateLimiterStoreAbstract, but its package entry does
// not export the class at runtime; it is loaded from the file that defines it.
const requireCjs = createRequire(import.meta.url);
const StoreAbstract = requireCjs('rate-limiter-flexible/lib/RateLimiterStoreAbstract.js') as typeof RateLimiterStoreAbstract;

interface StoredBucket {
  points: number;
  /** Epoch milliseconds on the database clock; null for a window that never ends. */
  expire: number | null;
  /** The database clock when the row was read, so expiry never depends on this host's clock. */
  nowMs: number;
}

interface BucketRow {
  points: number | string;
  expire: number | string | bigint | null;
  now_ms: number | string | bigint;
}

// One clock for every instance: the database's. Computed once per statement.
const NOW_MS = '(extract(epoch from statement_timestamp()) * 1000)::bigint';

function toBucket(row: BucketRow): StoredBucket {
  return { points: Number(row.points), expire: row.expire === null ? null : Number(row.expire), nowMs: Number(row.now_ms) };
}

/**
 * rate-limiter-flexible store on the `rate_limits` table through Knex. The library's own
 * RateLimiterPostgres takes raw driver connections and `$n` placeholders, which the embedded
 * PGlite client (one pooled connection) cannot serve; this store goes through knex.raw only.
 * Each consume is one atomic INSERT ... ON CONFLICT DO UPDATE, so concurrent requests from any
 * number of instances are counted exactly.
 */
export class RateLimiterKnex extends StoreAbstract {
  readonly #knex: Knex;

  constructor(opts: { knex: Knex; keyPrefix: string; points: number; duration: number }) {
    super({ storeClient: opts.knex, keyPrefix: opts.keyPrefix, points: opts.points, duration: opts.duration });
    this.#knex = opts.knex;
  }

  // Called by the base class with the prefixed key; resolves with what _getRateLimiterRes reads.
  async _upsert(rlKey: string, points: number, msDuration: number, forceExpire = false): Promise<StoredBucket> {
    // forceExpire (block/set) replaces the bucket; otherwise an expired bucket restarts and a
    // live one accumulates.
    const restart = forceExpire ? 'true' : `rate_limits.expire <= ${NOW_MS}`;
    const result = await this.#knex.raw<{ rows: BucketRow[] }>(
      `INSERT INTO rate_limits (key, points, expire)
       VALUES (?, ?, CASE WHEN ?::bigint > 0 THEN ${NOW_MS} + ?::bigint END)
       ON CONFLICT (key) DO UPDATE SET
         points = CASE WHEN ${restart} THEN excluded.points ELSE rate_limits.points + excluded.points END,
         expire = CASE WHEN ${restart} THEN excluded.expire ELSE rate_limits.expire END
       RETURNING points, expire, ${NOW_MS} AS now_ms`,
      [rlKey, points, msDuration, msDuration],
    );
    const row = result.rows[0];
    if (!row) throw new Error('rate limit upsert returned no row');
    return toBucket(row);
  }

  async _get(rlKey: string): Promise<StoredBucket | null> {
    const result = await this.#knex.raw<{ rows: BucketRow[] }>(
      `SELECT points, expire, ${NOW_MS} AS now_ms FROM rate_limits WHERE key = ? AND (expire IS NULL OR expire > ${NOW_MS})`,
      [rlKey],
    );
    const row = result.rows[0];
    return row ? toBucket(row) : null;
  }

  async _delete(rlKey: string): Promise<boolean> {
    const result = await this.#knex.raw<{ rows: unknown[] }>('DELETE FROM rate_limits WHERE key = ? RETURNING key', [rlKey]);
    return result.rows.length > 0;
  }

  _getRateLimiterRes(_rlKey: string, changedPoints: number, bucket: StoredBucket): RateLimiterRes {
    const isFirstInDuration = changedPoints === bucket.points;
    const consumedPoints = isFirstInDuration ? changedPoints : bucket.points;
    const msBeforeNext = bucket.expire === null ? -1 : Math.max(bucket.expire - bucket.nowMs, 0);
    return new RateLimiterRes(Math.max(this.points - consumedPoints, 0), msBeforeNext, consumedPoints, isFirstInDuration);
  }
}

/** Deletes buckets whose window is over; returns how many went. */
export async function sweepExpiredRateLimits(knex: Knex): Promise<number> {
  const result = await knex.raw<{ rows: unknown[] }>(`DELETE FROM rate_limits WHERE expire <= ${NOW_MS} RETURNING key`);
  return result.rows.length;
}

/**
 * Stored keys are a digest of what the caller passed: emails and IP addresses stay out of Redis
 * and the table, and an attacker-chosen value (a 50 KiB client_id) cannot make a huge key.
 */
function storedKey(key: string): string {
  return crypto.createHash('sha256').update(key).digest('base64url');
}

function secondsFrom(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

interface Limiter {
  store: LimiterStore;
  /** Used while the shared store is unreachable, so limits still hold per instance. */
  fallback: RateLimiterMemory;
  rule: RateLimitRule;
}

export function createRateLimits(deps: RateLimitDeps): RateLimits {
  const { config, redis, knex, logger } = deps;
  const prefix = deps.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const settings = config.rateLimits;

  // A storage outage would otherwise log once per request.
  let lastStoreWarning = 0;
  const storeFailed = (name: RateLimitRuleName, operation: string, err: unknown) => {
    const now = Date.now();
    if (now - lastStoreWarning < STORE_WARNING_INTERVAL_MS) return;
    lastStoreWarning = now;
    // The rule name only: keys carry emails and IP addresses.
    logger.warn({ rule: name, operation, err: err instanceof Error ? err.message : String(err) }, 'rate limit storage unavailable; limiting per instance');
  };

  const limiters = new Map<RateLimitRuleName, Limiter>();
  for (const name of RATE_LIMIT_RULES) {
    const rule = settings[name];
    const options = { keyPrefix: `${prefix}:${name}`, points: rule.points, duration: rule.durationSeconds };
    const shared: RateLimiterAbstract = redis
      // rejectIfRedisNotReady: while Redis reconnects, fall back at once instead of queueing
      // sign-in requests behind the reconnect.
      ? new RateLimiterRedis({ ...options, storeClient: redis, useRedisPackage: false, rejectIfRedisNotReady: true })
      : new RateLimiterKnex({ ...options, knex });
    const store = BATCHED_RULES.has(name)
      ? new BatchedLimiter({ store: shared, points: rule.points, durationSeconds: rule.durationSeconds, onStoreError: (err) => storeFailed(name, 'consume', err) })
      : shared;
    limiters.set(name, { store, fallback: new RateLimiterMemory(options), rule });
  }

  const limiter = (name: RateLimitRuleName): Limiter => {
    const found = limiters.get(name);
    if (!found) throw new Error(`unknown rate limit rule: ${String(name)}`);
    return found;
  };

  // Expired rows in the table are reset in place by the next consume, but keys never seen again
  // would stay forever; clear them now and then, piggybacking on traffic instead of a timer.
  let lastSweep = Date.now();
  const maybeSweep = () => {
    if (redis || Date.now() - lastSweep < SWEEP_INTERVAL_MS) return;
    lastSweep = Date.now();
    sweepExpiredRateLimits(knex).catch((err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'rate limit sweep failed'));
  };

  const refused = (name: RateLimitRuleName, res: RateLimiterRes): ConsumeResult => {
    deps.onLimited?.(name);
    return { ok: false, retryAfterSeconds: secondsFrom(res.msBeforeNext) };
  };

  const consume = async (name: RateLimitRuleName, key: string, points = 1): Promise<ConsumeResult> => {
    if (!settings.enabled) return { ok: true, remaining: limiter(name).rule.points };
    const { store, fallback } = limiter(name);
    const digest = storedKey(key);
    maybeSweep();
    try {
      const res = await store.consume(digest, points);
      return { ok: true, remaining: res.remainingPoints };
    } catch (err) {
      if (err instanceof RateLimiterRes) return refused(name, err);
      storeFailed(name, 'consume', err);
    }
    try {
      const res = await fallback.consume(digest, points);
      return { ok: true, remaining: res.remainingPoints };
    } catch (err) {
      if (err instanceof RateLimiterRes) return refused(name, err);
      throw err;
    }
  };

  const peek = async (name: RateLimitRuleName, key: string): Promise<PeekResult> => {
    if (!settings.enabled) return { consumed: 0, retryAfterSeconds: 0, blocked: false };
    const { store, fallback, rule } = limiter(name);
    const digest = storedKey(key);
    let res: RateLimiterRes | null;
    try {
      res = await store.get(digest);
    } catch (err) {
      storeFailed(name, 'peek', err);
      res = await fallback.get(digest);
    }
    if (!res || res.consumedPoints <= 0) return { consumed: 0, retryAfterSeconds: 0, blocked: false };
    return {
      consumed: res.consumedPoints,
      retryAfterSeconds: res.msBeforeNext > 0 ? secondsFrom(res.msBeforeNext) : 0,
      blocked: res.consumedPoints >= rule.points,
    };
  };

  const reward = async (name: RateLimitRuleName, key: string, points = 1): Promise<void> => {
    if (!settings.enabled) return;
    const { store, fallback } = limiter(name);
    const digest = storedKey(key);
    try {
      // Rewarding a key that has no live bucket would open one with negative points, i.e. credit
      // for the future; only give back what was actually taken.
      const current = await store.get(digest);
      if (current && current.consumedPoints > 0) await store.reward(digest, Math.min(points, current.consumedPoints));
    } catch (err) {
      storeFailed(name, 'reward', err);
      const current = await fallback.get(digest);
      if (current && current.consumedPoints > 0) await fallback.reward(digest, Math.min(points, current.consumedPoints));
    }
  };

  const reset = async (name: RateLimitRuleName, key: string): Promise<void> => {
    if (!settings.enabled) return;
    const { store, fallback } = limiter(name);
    const digest = storedKey(key);
    await fallback.delete(digest);
    try {
      await store.delete(digest);
    } catch (err) {
      storeFailed(name, 'reset', err);
    }
  };

  return { consume, peek, reward, reset };
}

/** "30 seconds", "1 minute", "15 minutes": what a person reads on the page. */
export function describeWait(retryAfterSeconds: number): string {
  const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
  if (seconds < 60) return `${seconds} ${seconds === 1 ? 'second' : 'seconds'}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} ${minutes === 1 ? 'minute' : 'minutes'}`;
}

/** The error for a refused attempt: 429, code `rate_limited`, details.retryAfterSeconds. */
export function tooManyRequests(retryAfterSeconds: number): AppError {
  const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
  return new AppError('rate_limited', `Too many attempts. Try again in ${describeWait(seconds)}.`, 429, { retryAfterSeconds: seconds });
}

/** Sets Retry-After (whole seconds, at least 1) on a Koa response. */
export function setRetryAfter(ctx: Pick<Context, 'set'>, seconds: number): void {
  ctx.set('Retry-After', String(Math.max(1, Math.ceil(seconds))));
}
