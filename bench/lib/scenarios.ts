// The scenarios: what is requested, with which tool, and how each result is charged with the
// server CPU it cost. A scenario's numbers cover only its measured window (after warm-up).
import { Redis } from 'ioredis';
import { wrkLoad, wrkVersion, type WrkRequest } from './wrk.ts';
import { cpuSeconds, cpuSecondsOf, machineCpu, rssBytes } from './proc.ts';
import { runWorker } from './worker.ts';
import type { BenchServer } from './servers.ts';
import { round, type LoadReport } from './stats.ts';
import type { HttpLoadSpec } from '../workers/http-load.ts';
import type { SigninSpec } from '../workers/signin.ts';
import type { Argon2Spec } from '../workers/argon2.ts';

export const SCENARIOS = [
  'discovery',
  'jwks',
  'cc-opaque',
  'cc-jwt',
  'introspection',
  'refresh',
  'signin',
  'half-load',
  'burst',
  'memory',
  'roundtrips',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/**
 * Clients, resource and user registered on every Gatehouse target. The baseline gets the same m2m
 * and web clients and the resource; it has no users and signs in any email and password.
 */
export const FIXTURES = {
  m2m: { clientId: 'bench-m2m', clientSecret: 'bench-m2m-secret-4f1c9a7e2b5d' },
  web: {
    clientId: 'bench-web',
    clientSecret: 'bench-web-secret-8d2e6b0c31a9',
    redirectUri: 'http://localhost:8080/callback',
    scope: 'openid profile email offline_access',
  },
  resource: 'https://api.bench.test',
  user: { email: 'bench@example.test', password: 'correct horse battery staple' },
};

export interface RunOptions {
  seconds: number;
  warmupSeconds: number;
  connections: number;
  tool: 'auto' | 'autocannon' | 'wrk';
  signinConcurrency: number;
  burstConcurrency: number;
  tmpDir: string;
}

export interface ScenarioResult {
  scenario: string;
  /** What the operations are: requests, sign-ins or verifications. */
  unit: string;
  tool: LoadReport['tool'];
  connections: number;
  targetRate: number | undefined;
  seconds: number;
  operations: number;
  perSecond: number;
  latencyMs: LoadReport['latencyMs'];
  errors: number;
  statusCodes?: Record<string, number>;
  /** CPU seconds the server's processes used in the window. */
  serverCpuSeconds: number;
  /** Operations per server CPU-second: throughput independent of what else ran on the machine. */
  perServerCpuSecond: number;
  /** CPU seconds of postgres and redis-server processes in the window (shared services). */
  storageCpuSeconds: number;
  generatorCpuSeconds: number;
  /** CPU seconds in interrupt handlers (the kernel's network stack, for loopback traffic). */
  interruptCpuSeconds: number;
  /**
   * CPU seconds used by every other process on the machine in the window (other programs, the
   * benchmark itself): a large value means the run shared the machine and its numbers are noisy.
   */
  otherCpuSeconds: number;
  serverRssBytes: number;
  /** The measured window on CLOCK_MONOTONIC, in microseconds (the clock of V8's CPU profiles). */
  window: { startUs: number; endUs: number };
  notes?: Record<string, number | string>;
}

const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

const FORM = 'application/x-www-form-urlencoded';

/** Samples the server's CPU (and the storage services') around a load run. */
async function charged(server: BenchServer | undefined, scenario: string, unit: string, load: (onMeasuring: () => void) => Promise<LoadReport>): Promise<ScenarioResult> {
  let pids: number[] = [];
  let cpu0 = 0;
  let storage0 = 0;
  let machine0 = { processes: 0, interrupts: 0 };
  let startUs = 0;
  const report = await load(() => {
    startUs = monotonicUs();
    if (server) {
      pids = server.pids();
      cpu0 = cpuSeconds(pids);
    }
    storage0 = cpuSecondsOf(['postgres', 'redis-server']);
    machine0 = machineCpu();
  });
  const serverCpu = server ? cpuSeconds(pids) - cpu0 : report.generatorCpuSeconds;
  const storageCpu = cpuSecondsOf(['postgres', 'redis-server']) - storage0;
  const endUs = monotonicUs();
  const machine1 = machineCpu();
  const otherCpu = machine1.processes - machine0.processes - (server ? serverCpu : 0) - storageCpu - report.generatorCpuSeconds;
  return {
    scenario,
    unit,
    tool: report.tool,
    connections: report.connections,
    targetRate: report.targetRate,
    seconds: round(report.seconds, 2),
    operations: report.operations,
    perSecond: round(report.operations / report.seconds, 1),
    latencyMs: {
      p50: round(report.latencyMs.p50, 2),
      p90: round(report.latencyMs.p90, 2),
      p99: round(report.latencyMs.p99, 2),
      max: round(report.latencyMs.max, 2),
      mean: round(report.latencyMs.mean, 2),
    },
    errors: report.errors,
    ...(report.statusCodes ? { statusCodes: report.statusCodes } : {}),
    serverCpuSeconds: round(serverCpu, 2),
    perServerCpuSecond: round(serverCpu > 0 ? report.operations / serverCpu : NaN, 1),
    storageCpuSeconds: round(storageCpu, 2),
    generatorCpuSeconds: round(report.generatorCpuSeconds, 2),
    interruptCpuSeconds: round(machine1.interrupts - machine0.interrupts, 2),
    otherCpuSeconds: round(Math.max(0, otherCpu), 2),
    serverRssBytes: server ? rssBytes(server.pids()) : 0,
    window: { startUs, endUs },
    ...(report.notes ? { notes: report.notes } : {}),
  };
}

function useWrk(tool: RunOptions['tool']): boolean {
  if (tool === 'wrk') {
    if (!wrkVersion()) throw new Error('--tool wrk: wrk is not installed');
    return true;
  }
  return tool === 'auto' && wrkVersion() !== undefined;
}

/** One request repeated at saturation (wrk or autocannon), or at a fixed, evenly paced rate (workers/paced-load.ts). */
export function fixedRequest(server: BenchServer, scenario: string, req: WrkRequest, opts: RunOptions, rate?: number): Promise<ScenarioResult> {
  return charged(server, scenario, 'requests', async (onMeasuring) => {
    if (rate === undefined && useWrk(opts.tool)) {
      return wrkLoad(server.url, req, { connections: opts.connections, warmupSeconds: opts.warmupSeconds, seconds: opts.seconds, tmpDir: opts.tmpDir, onMeasuring });
    }
    const spec: HttpLoadSpec = {
      url: server.url,
      connections: opts.connections,
      warmupSeconds: opts.warmupSeconds,
      seconds: opts.seconds,
      ...(rate !== undefined ? { rate } : {}),
      request: req,
    };
    return runWorker<LoadReport>('http-load', spec, { onMeasuring });
  });
}

export function discoveryRequest(): WrkRequest {
  return { method: 'GET', path: '/.well-known/openid-configuration' };
}

export function jwksRequest(): WrkRequest {
  return { method: 'GET', path: '/jwks' };
}

export function ccRequest(client: { clientId: string; clientSecret: string }, resource?: string): WrkRequest {
  const body = new URLSearchParams({ grant_type: 'client_credentials' });
  if (resource) {
    body.set('resource', resource);
    body.set('scope', 'read');
  }
  return { method: 'POST', path: '/token', headers: { 'content-type': FORM, authorization: basic(client.clientId, client.clientSecret) }, body: body.toString() };
}

/** An opaque client_credentials token to introspect, fetched once before the scenario. */
export async function introspectionRequest(server: BenchServer, client: { clientId: string; clientSecret: string }): Promise<WrkRequest> {
  const cc = ccRequest(client);
  const res = await fetch(`${server.url}${cc.path}`, { method: 'POST', headers: cc.headers, body: cc.body });
  const json = (await res.json()) as { access_token?: string };
  if (!json.access_token) throw new Error(`client_credentials for introspection failed: ${res.status} ${JSON.stringify(json)}`);
  const body = new URLSearchParams({ token: json.access_token, token_type_hint: 'access_token' }).toString();
  // Make sure the answer is what we think it is before measuring it.
  const check = await fetch(`${server.url}/token/introspection`, { method: 'POST', headers: { 'content-type': FORM, authorization: basic(client.clientId, client.clientSecret) }, body });
  const state = (await check.json()) as { active?: boolean };
  if (state.active !== true) throw new Error(`introspection of a fresh token answered ${check.status} ${JSON.stringify(state)}`);
  return { method: 'POST', path: '/token/introspection', headers: { 'content-type': FORM, authorization: basic(client.clientId, client.clientSecret) }, body };
}

export function refreshScenario(server: BenchServer, opts: RunOptions, rate?: number, scenario = 'refresh'): Promise<ScenarioResult> {
  const web = FIXTURES.web;
  const spec: HttpLoadSpec = {
    url: server.url,
    connections: opts.connections,
    warmupSeconds: opts.warmupSeconds,
    seconds: opts.seconds,
    ...(rate !== undefined ? { rate } : {}),
    request: { method: 'POST', path: '/token', headers: { 'content-type': FORM, authorization: basic(web.clientId, web.clientSecret) }, body: 'grant_type=refresh_token' },
    refresh: {
      issuer: server.issuer,
      clientId: web.clientId,
      clientSecret: web.clientSecret,
      redirectUri: web.redirectUri,
      email: FIXTURES.user.email,
      password: FIXTURES.user.password,
      chains: opts.connections * 3,
    },
  };
  return charged(server, scenario, 'requests', (onMeasuring) => runWorker<LoadReport>('http-load', spec, { onMeasuring }));
}

function signinSpec(server: BenchServer, concurrency: number, warmupSeconds: number, until: { seconds: number } | { count: number }): SigninSpec {
  const web = FIXTURES.web;
  return {
    issuer: server.issuer,
    clientId: web.clientId,
    clientSecret: web.clientSecret,
    redirectUri: web.redirectUri,
    email: FIXTURES.user.email,
    password: FIXTURES.user.password,
    scope: 'openid profile email',
    concurrency,
    warmupSeconds,
    ...until,
  };
}

export function signinScenario(server: BenchServer, opts: RunOptions): Promise<ScenarioResult> {
  const spec = signinSpec(server, opts.signinConcurrency, opts.warmupSeconds, { seconds: opts.seconds });
  return charged(server, 'signin', 'sign-ins', (onMeasuring) => runWorker<LoadReport>('signin', spec, { onMeasuring }));
}

/**
 * JWT client_credentials tokens at a fixed rate while a burst of sign-ins runs. Each such token
 * is signed with WebCrypto on libuv's threadpool, where argon2 runs too: the token endpoint's p99
 * shows whether password hashing starves signing (and the event loop).
 */
export async function burstScenario(server: BenchServer, opts: RunOptions, rate: number): Promise<{ tokens: ScenarioResult; signins: ScenarioResult }> {
  // The sign-ins start first and outlast the measured token window on both sides.
  const signinSeconds = opts.warmupSeconds + opts.seconds + 2;
  const signins = charged(undefined, 'burst sign-ins', 'sign-ins', (onMeasuring) =>
    runWorker<LoadReport>('signin', signinSpec(server, opts.burstConcurrency, 0, { seconds: signinSeconds }), { onMeasuring }));
  await new Promise((r) => setTimeout(r, 500));
  const tokens = await fixedRequest(server, 'cc-jwt during sign-ins', ccRequest(FIXTURES.m2m, FIXTURES.resource), opts, rate);
  const signinResult = await signins;
  // The sign-in worker's window is longer than the token window; its server CPU is not separated,
  // and what its "others" would count is mostly the server's (charged without a server).
  return { tokens, signins: { ...signinResult, serverCpuSeconds: NaN, perServerCpuSecond: NaN, otherCpuSeconds: NaN } };
}

export function argon2Scenario(params: { memoryCost: number; timeCost: number; parallelism: number }, concurrency: number, opts: RunOptions): Promise<ScenarioResult> {
  const spec: Argon2Spec = { ...params, concurrency, warmupSeconds: Math.min(opts.warmupSeconds, 2), seconds: opts.seconds };
  return charged(undefined, 'argon2id verify', 'verifications', (onMeasuring) => runWorker<LoadReport>('argon2', spec, { onMeasuring }));
}

// ----- memory -----

export interface RedisMemory {
  usedMemoryBytes: number;
  keys: number;
  /** Per model (key prefix up to the second colon): how many keys and their average size. */
  byModel: Record<string, { keys: number; avgBytes: number }>;
}

export async function redisMemory(url: string, sampleCap = 300): Promise<RedisMemory> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    const info = await redis.info('memory');
    const usedMemoryBytes = Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
    const byModel: Record<string, { keys: number; sampled: number; bytes: number }> = {};
    let cursor = '0';
    let keys = 0;
    do {
      const [next, batch] = await redis.scan(cursor, 'COUNT', 1000);
      cursor = next;
      const pipeline = redis.pipeline();
      const sampled: string[] = [];
      for (const key of batch) {
        keys += 1;
        const parts = key.split(':');
        const model = parts.length > 2 ? `${parts[0]}:${parts[1]}` : key;
        const entry = (byModel[model] ??= { keys: 0, sampled: 0, bytes: 0 });
        entry.keys += 1;
        if (entry.sampled < sampleCap) {
          entry.sampled += 1;
          sampled.push(model);
          pipeline.call('MEMORY', 'USAGE', key);
        }
      }
      const usage = (await pipeline.exec()) ?? [];
      usage.forEach(([, value], i) => {
        byModel[sampled[i]!]!.bytes += Number(value ?? 0);
      });
    } while (cursor !== '0');
    const summary: RedisMemory['byModel'] = {};
    for (const [model, e] of Object.entries(byModel).sort()) summary[model] = { keys: e.keys, avgBytes: Math.round(e.bytes / Math.max(1, e.sampled)) };
    return { usedMemoryBytes, keys, byModel: summary };
  } finally {
    redis.disconnect();
  }
}

export interface MemoryResult {
  sessions: number;
  /** The sign-ins that created the sessions, charged like any scenario (a long sign-in run). */
  run: ScenarioResult;
  rssAfterWarmupBytes: number;
  rssAfterSessionsBytes: number;
  rssGrowthPerSessionBytes: number;
  redis?: { before: RedisMemory; after: RedisMemory; bytesPerSession: number };
  storageBytesBefore?: number;
  storageBytesAfter?: number;
}

/**
 * RSS after warm-up (every other scenario has run by now) and after `count` more complete
 * sign-ins, each a new session and grant; with Redis, how its memory grows per session.
 */
export async function memoryScenario(server: BenchServer, count: number, concurrency: number, redisUrl: string | undefined, storageBytes?: () => Promise<number>): Promise<MemoryResult> {
  // Warm-up of its own, so the first figure is a warm server's even when run alone (--only memory).
  await runWorker<LoadReport>('signin', signinSpec(server, concurrency, 0, { count: Math.min(200, Math.max(20, Math.round(count / 10))) }));
  const rssAfterWarmupBytes = rssBytes(server.pids());
  const before = redisUrl ? await redisMemory(redisUrl) : undefined;
  const storageBytesBefore = storageBytes ? await storageBytes() : undefined;
  const run = await charged(server, 'sign-ins creating sessions', 'sign-ins', (onMeasuring) =>
    runWorker<LoadReport>('signin', signinSpec(server, concurrency, 0, { count }), { onMeasuring }));
  const rssAfterSessionsBytes = rssBytes(server.pids());
  const after = redisUrl ? await redisMemory(redisUrl) : undefined;
  const storageBytesAfter = storageBytes ? await storageBytes() : undefined;
  return {
    sessions: run.operations,
    run,
    rssAfterWarmupBytes,
    rssAfterSessionsBytes,
    rssGrowthPerSessionBytes: Math.round((rssAfterSessionsBytes - rssAfterWarmupBytes) / Math.max(1, run.operations)),
    ...(before && after ? { redis: { before, after, bytesPerSession: Math.round((after.usedMemoryBytes - before.usedMemoryBytes) / Math.max(1, run.operations)) } } : {}),
    ...(storageBytesBefore !== undefined ? { storageBytesBefore, storageBytesAfter } : {}),
  };
}
