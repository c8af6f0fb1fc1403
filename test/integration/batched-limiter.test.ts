// The batched limiter over a real shared store (Redis through rate-limiter-flexible): one process
// never admits more than the limit, processes learn each other's counts at their writes, windows
// end, an unreachable store still leaves a per-process limit, and the key map stays bounded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { BatchedLimiter } from '../../src/security/batched-limiter.ts';
import { TEST_REDIS_URL, uniqueRedisPrefix } from '../helpers/postgres.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves to true when admitted, false when refused with a RateLimiterRes. */
async function admitted(limiter: BatchedLimiter, key: string): Promise<boolean> {
  try {
    await limiter.consume(key);
    return true;
  } catch (err) {
    if (err instanceof RateLimiterRes) return false;
    throw err;
  }
}

async function admitMany(limiter: BatchedLimiter, key: string, times: number): Promise<number> {
  let count = 0;
  for (let i = 0; i < times; i++) if (await admitted(limiter, key)) count++;
  return count;
}

describe.skipIf(!TEST_REDIS_URL)('batched rate limiter on Redis', () => {
  let redis: Redis;
  let prefix: string;
  const store = (points: number, duration: number) => new RateLimiterRedis({ storeClient: redis, keyPrefix: prefix, points, duration, useRedisPackage: false });

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL!);
    prefix = uniqueRedisPrefix();
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  });

  it('admits exactly the limit in one process, then refuses with the time left', async () => {
    const limiter = new BatchedLimiter({ store: store(5, 60), points: 5, durationSeconds: 60 });
    expect(await admitMany(limiter, 'one', 8)).toBe(5);
    const refusal = await limiter.consume('one').catch((err: unknown) => err);
    expect(refusal).toBeInstanceOf(RateLimiterRes);
    expect((refusal as RateLimiterRes).msBeforeNext).toBeGreaterThan(0);
    await limiter.flush();
    // The shared store holds what was admitted, not the refused attempts.
    expect((await store(5, 60).get('one'))?.consumedPoints).toBe(5);
  });

  it('writes in batches of a tenth of the limit, not once per request', async () => {
    const shared = store(1000, 60);
    const limiter = new BatchedLimiter({ store: shared, points: 1000, durationSeconds: 60, flushMs: 50 });
    expect(await admitMany(limiter, 'batches', 30)).toBe(30);
    expect(await shared.get('batches')).toBeNull();
    await sleep(150);
    expect((await shared.get('batches'))?.consumedPoints).toBe(30);
    // A tenth of the limit waiting is written at once, without the timer.
    const big = new BatchedLimiter({ store: shared, points: 1000, durationSeconds: 60, flushMs: 60_000 });
    expect(await admitMany(big, 'big', 100)).toBe(100);
    await sleep(50);
    expect((await shared.get('big'))?.consumedPoints).toBe(100);
  });

  it('learns what other processes counted at its next write', async () => {
    const a = new BatchedLimiter({ store: store(20, 60), points: 20, durationSeconds: 60 });
    const b = new BatchedLimiter({ store: store(20, 60), points: 20, durationSeconds: 60 });
    expect(await admitMany(a, 'shared', 15)).toBe(15);
    await a.flush();
    expect(await admitted(b, 'shared')).toBe(true);
    await b.flush();
    // b now knows of a's 15: four more, then no more, although b alone took only one.
    expect(await admitMany(b, 'shared', 10)).toBe(4);
    await b.flush();
    expect(await admitted(a, 'shared')).toBe(true);
    await a.flush();
    expect(await admitted(a, 'shared')).toBe(false);
    // Together they stayed within one batch of the limit.
    expect((await store(20, 60).get('shared'))?.consumedPoints).toBeLessThanOrEqual(21);
  });

  it('starts a new window once the store\'s is over', async () => {
    const limiter = new BatchedLimiter({ store: store(3, 1), points: 3, durationSeconds: 1, flushMs: 10 });
    expect(await admitMany(limiter, 'window', 5)).toBe(3);
    await limiter.flush();
    await sleep(1100);
    expect(await admitMany(limiter, 'window', 5)).toBe(3);
  });

  it('still limits in this process when the store cannot be reached', async () => {
    const unreachable = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const failures: unknown[] = [];
    const broken = new RateLimiterRedis({ storeClient: unreachable, keyPrefix: prefix, points: 4, duration: 60, useRedisPackage: false, rejectIfRedisNotReady: true });
    const limiter = new BatchedLimiter({ store: broken, points: 4, durationSeconds: 60, flushMs: 10, onStoreError: (err) => failures.push(err) });
    expect(await admitMany(limiter, 'down', 2)).toBe(2);
    await limiter.flush();
    expect(failures.length).toBeGreaterThan(0);
    expect(await admitMany(limiter, 'down', 5)).toBe(2);
    unreachable.disconnect();
  });

  it('keeps a bounded number of keys and counts the rest in the store directly', async () => {
    const shared = store(100, 60);
    const limiter = new BatchedLimiter({ store: shared, points: 100, durationSeconds: 60, maxKeys: 2, flushMs: 60_000 });
    await limiter.consume('k1');
    await limiter.consume('k2');
    await limiter.consume('k3');
    // k3 did not fit: it was counted in the store at once; k1 still waits here.
    expect((await shared.get('k3'))?.consumedPoints).toBe(1);
    expect(await shared.get('k1')).toBeNull();
    expect((await limiter.get('k1'))?.consumedPoints).toBe(1);
  });
});
