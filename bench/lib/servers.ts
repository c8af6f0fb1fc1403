// Starting the servers under test as child processes, the way an operator runs them: Gatehouse
// (`node src/main.ts`, or bench/cluster.ts for several workers on one port) and the bare
// oidc-provider baseline. Their logs go straight to a file, so the benchmark process never
// spends CPU relaying them.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { freePort, ROOT, runCli } from '../../test/helpers/server.ts';
import { processTree } from './proc.ts';

export const NODE = path.join(ROOT, 'node_modules', '.bin', 'node');

/**
 * The Node.js options `npm start` gives the server (package.json's start script, e.g. the
 * young-generation size), so the bench runs Gatehouse exactly as operators start it.
 */
export function startScriptNodeFlags(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts?: { start?: string } };
  const words = (pkg.scripts?.start ?? '').split(/\s+/);
  if (words[0] !== 'node') throw new Error(`package.json's start script does not run node: ${pkg.scripts?.start}`);
  return words.filter((word) => word.startsWith('--'));
}

export interface BenchServer {
  label: string;
  /** Where the load is sent (127.0.0.1, so no name resolution is involved). */
  url: string;
  /** The issuer (http://localhost:PORT): the sign-in driver keeps cookies for this host. */
  issuer: string;
  pid: number;
  /** The server's processes right now (the cluster primary and its workers, or just one). */
  pids(): number[];
  logFile: string;
  stop(): Promise<number | null>;
}

/** The environment of this process without npm's and the shell's settings for NODE_ENV. */
function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('npm_') || k.startsWith('TEST_') || k === 'NODE_ENV' || k === 'UV_THREADPOOL_SIZE') continue;
    env[k] = v;
  }
  return env;
}

async function waitUntilReady(url: string, child: ChildProcess, logFile: string, timeoutMs: number, ipcReady?: Promise<void>): Promise<void> {
  let exited: number | null | undefined;
  child.once('exit', (code) => { exited = code; });
  const deadline = Date.now() + timeoutMs;
  if (ipcReady) {
    await Promise.race([
      ipcReady,
      new Promise<void>((_, reject) => child.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${tail(logFile)}`)))),
      new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`server not ready after ${timeoutMs} ms:\n${tail(logFile)}`)), timeoutMs).unref()),
    ]);
  }
  for (;;) {
    if (exited !== undefined) throw new Error(`server exited with ${exited} before it was ready:\n${tail(logFile)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not ready after ${timeoutMs} ms:\n${tail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function tail(file: string, bytes = 4000): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

function stopper(child: ChildProcess): () => Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
}

export interface GatehouseOptions {
  label: string;
  /** DATABASE_URL / REDIS_URL / DATA_DIR and secrets. */
  env: Record<string, string>;
  /** Number of node:cluster workers; 0 runs src/main.ts itself. */
  workers: number;
  logDir: string;
  logLevel: string;
  /** Directory for V8 CPU profiles (--cpu-prof), written when the server exits. */
  cpuProfDir?: string;
}

/**
 * Rate limits stay on, so their cost per request is part of every measurement, but with budgets
 * no benchmark reaches: one client asks for thousands of tokens a second, and every sign-in comes
 * from the same address and account.
 */
const RATE_LIMITS_NEVER_REACHED: Record<string, string> = Object.fromEntries(
  ['LOGIN_IP', 'LOGIN_ACCOUNT_IP', 'SIGNUP_IP', 'RECOVERY_IP', 'VERIFY_IP', 'OTP_ACCOUNT', 'TOKEN_CLIENT']
    .map((rule) => [`RATE_LIMIT_${rule}`, '1000000000/60']),
);

export async function startGatehouse(opts: GatehouseOptions): Promise<BenchServer & { env: Record<string, string> }> {
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const env = { ...inheritedEnv(), NODE_ENV: 'production', LOG_LEVEL: opts.logLevel, PORT: String(port), ISSUER: issuer, ...RATE_LIMITS_NEVER_REACHED, ...opts.env };
  const logFile = path.join(opts.logDir, `${opts.label.replace(/[^a-z0-9]+/gi, '-')}.log`);
  const log = fs.openSync(logFile, 'w');
  const profArgs = opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`] : [];
  const clustered = opts.workers > 0;
  const entry = clustered ? path.join(ROOT, 'bench', 'cluster.ts') : path.join(ROOT, 'src', 'main.ts');
  // node:cluster workers take their options from the primary's execArgv (bench/cluster.ts).
  const child = spawn(NODE, [...startScriptNodeFlags(), ...profArgs, entry], {
    cwd: ROOT,
    env: clustered ? { ...env, GATEHOUSE_WORKERS: String(opts.workers) } : env,
    stdio: ['ignore', log, log, ...(clustered ? ['ipc' as const] : [])],
  });
  fs.closeSync(log);
  const ipcReady = clustered ? new Promise<void>((resolve) => child.once('message', () => resolve())) : undefined;
  await waitUntilReady(`${issuer.replace('localhost', '127.0.0.1')}/healthz`, child, logFile, 120_000, ipcReady);
  const pid = child.pid!;
  return {
    label: opts.label,
    url: `http://127.0.0.1:${port}`,
    issuer,
    pid,
    pids: () => processTree(pid),
    logFile,
    env,
    stop: stopper(child),
  };
}

export interface BaselineClient {
  clientId: string;
  clientSecret: string;
  resource: string;
  /** The web client the sign-in scenario uses (its redirect URI is the bench's, FIXTURES.web). */
  web?: { clientId: string; clientSecret: string };
  /** Store tokens in this Redis database through Gatehouse's adapter instead of in memory. */
  redisUrl?: string;
}

export async function startBaseline(logDir: string, client: BaselineClient, nodeFlags: string[] = []): Promise<BenchServer> {
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const logFile = path.join(logDir, 'baseline.log');
  const log = fs.openSync(logFile, 'w');
  const child = spawn(NODE, ['--disable-warning=ExperimentalWarning', ...nodeFlags, path.join(ROOT, 'bench', 'baseline-server.ts')], {
    cwd: ROOT,
    env: {
      ...inheritedEnv(),
      NODE_ENV: 'production',
      PORT: String(port),
      BASELINE_CLIENT_ID: client.clientId,
      BASELINE_CLIENT_SECRET: client.clientSecret,
      BASELINE_RESOURCE: client.resource,
      ...(client.web ? { BASELINE_WEB_CLIENT_ID: client.web.clientId, BASELINE_WEB_CLIENT_SECRET: client.web.clientSecret } : {}),
      ...(client.redisUrl ? { BASELINE_REDIS_URL: client.redisUrl } : {}),
    },
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  await waitUntilReady(`http://127.0.0.1:${port}/.well-known/openid-configuration`, child, logFile, 60_000);
  const pid = child.pid!;
  return { label: client.redisUrl ? 'bare oidc-provider + Redis' : 'bare oidc-provider', url: `http://127.0.0.1:${port}`, issuer, pid, pids: () => processTree(pid), logFile, stop: stopper(child) };
}

/** A PostgreSQL database of its own for one run, dropped afterwards. */
export async function createDatabase(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `gh_bench_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export async function flushRedis(url: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.flushdb();
  } finally {
    redis.disconnect();
  }
}

/** `gatehouse ARGS` against the target's storage; throws with the output when it fails. */
export async function gatehouseCli(env: Record<string, string>, args: string[]): Promise<Record<string, unknown>> {
  const res = await runCli(env, args);
  if (res.code !== 0 || res.json === undefined) {
    throw new Error(`gatehouse ${args.join(' ')} exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  }
  return res.json as Record<string, unknown>;
}
