// Two Gatehouse instances sharing one fresh PostgreSQL database and one Redis database, the way a
// deployment behind a load balancer runs: same ISSUER, same secrets, separate ports and data
// directories. Prepare, create fixtures with the CLI, start both, and stop everything after.
import fs from 'node:fs';
import { Redis } from 'ioredis';
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from './postgres.ts';
import { freePort, runCli, startServer, tempDataDir, testSecrets, type RunningServer } from './server.ts';

export interface TwoInstances {
  /** Settings both instances share (DATABASE_URL, REDIS_URL, ISSUER, secrets, extras). */
  env: Record<string, string>;
  /** A client on the shared Redis database (flushed before and after). */
  redis: Redis;
  /** Runs `gatehouse ARGS` against the shared database; throws on a non-zero exit. */
  cli(args: string[]): Promise<unknown>;
  /** Starts both instances at once, as replicas of a deployment boot. */
  start(): Promise<[RunningServer, RunningServer]>;
  /** Stops the instances and removes what was created; resolves their exit codes. */
  stop(): Promise<(number | null | undefined)[]>;
  logs(): string;
}

export async function prepareTwoInstances(opts: { name: string; redisDb: number; env?: Record<string, string> }): Promise<TwoInstances> {
  const db: TestDatabase = await createTestDatabase(`gh_${opts.name}`);
  const redisUrl = new URL(TEST_REDIS_URL!);
  redisUrl.pathname = `/${opts.redisDb}`;
  const redis = new Redis(redisUrl.href, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  await redis.flushdb();
  const [portA, portB] = [await freePort(), await freePort()];
  const env = { DATABASE_URL: db.url, REDIS_URL: redisUrl.href, ISSUER: `http://localhost:${portA}`, ...testSecrets(), ...opts.env };
  const dataDirs = [tempDataDir(`gh-${opts.name}-a-`), tempDataDir(`gh-${opts.name}-b-`)];
  let servers: (RunningServer | undefined)[] = [];
  return {
    env,
    redis,
    async cli(args) {
      const res = await runCli(env, args);
      if (res.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
      return res.json;
    },
    async start() {
      const started = await Promise.all([
        startServer({ ...env, PORT: String(portA), DATA_DIR: dataDirs[0]! }),
        startServer({ ...env, PORT: String(portB), DATA_DIR: dataDirs[1]! }),
      ]);
      servers = started;
      return started;
    },
    async stop() {
      const codes = await Promise.all(servers.map((s) => s?.stop()));
      await redis.flushdb().catch(() => undefined);
      redis.disconnect();
      await db.drop();
      for (const dir of dataDirs) fs.rmSync(dir, { recursive: true, force: true });
      return codes;
    },
    logs: () => servers.map((s) => s?.logs() ?? '').join('\n'),
  };
}
