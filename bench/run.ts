// `npm run bench`: throughput and latency of Gatehouse's hot paths next to bare oidc-provider.
// See bench/README.md for what is measured and how to read the table.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { ROOT, testSecrets } from '../test/helpers/server.ts';
import { describeMachine, processTree, rssBytes, threadCounts } from './lib/proc.ts';
import { formatProfile, loadProfile, summarizeProfile, type ProfileSummary } from './lib/profile.ts';
import { checkTargets, compare, COMPARED, formatChecks, formatSigninFloors, formatTable, signinFloors, type TargetResult } from './lib/report.ts';
import {
  argon2Scenario,
  burstScenario,
  ccRequest,
  discoveryRequest,
  FIXTURES,
  fixedRequest,
  introspectionRequest,
  jwksRequest,
  memoryScenario,
  refreshScenario,
  SCENARIOS,
  signinScenario,
  type RunOptions,
  type ScenarioName,
  type ScenarioResult,
} from './lib/scenarios.ts';
import { createDatabase, flushRedis, gatehouseCli, startBaseline, startGatehouse, startScriptNodeFlags, tail, type BenchServer } from './lib/servers.ts';
import { wrkVersion } from './lib/wrk.ts';
import { probeRoundTrips } from './lib/roundtrips.ts';
import { formatPaired, pairRound, summarizePairs, type PairedResult, type PairedRound } from './lib/paired.ts';
import { loadConfig } from '../src/config.ts';

const USAGE = `Usage: npm run bench -- [options]

  --duration S            measured seconds per scenario (default 8)
  --warmup S              warm-up seconds before each measurement (default 2)
  --connections N         HTTP connections for request scenarios (default 16)
  --only LIST             comma-separated scenarios: ${SCENARIOS.join(', ')}, argon2
  --embedded-only         only the embedded (PGlite) target
  --skip-embedded         no embedded target
  --skip-baseline         no bare oidc-provider baseline
  --paired N              instead of the full run: discovery, JWKS, client_credentials and
                          introspection on Gatehouse (PostgreSQL + Redis) and the baseline in N
                          alternating pairs of runs, and the median ratios (steadier on a machine
                          whose speed drifts; with --baseline-redis, against the Redis baseline)
  --baseline-redis        also run the baseline with its tokens in Redis (Gatehouse's adapter), to
                          tell the cost of shared storage from the cost of everything else
  --cluster N             also run the Postgres + Redis target as N node:cluster workers
  --sessions N            sign-ins for the memory scenario on Postgres + Redis (default 2000; 0 skips;
                          10000 takes about ten minutes on two cores)
  --embedded-sessions N   the same on the embedded target (default 300)
  --signin-concurrency N  concurrent browsers in the sign-in scenario (default 8)
  --burst-concurrency N   concurrent browsers in the burst scenario (default 32)
  --tool auto|autocannon|wrk   load tool for fixed-request scenarios (default auto: wrk when installed)
  --cpu-prof              run Gatehouse with --cpu-prof and print where the time went
  --log-level LEVEL       Gatehouse LOG_LEVEL (default info, as in production; logs go to a file)
  --server-env KEY=VALUE  extra setting for the Gatehouse servers (repeatable), e.g. RATE_LIMIT_ENABLED=false
  --baseline-node-option FLAG   a Node.js option for the bare baseline (repeatable), e.g.
                          --baseline-node-option=--max-semi-space-size=64 to give it the option
                          Gatehouse's start script has (Gatehouse always runs with npm start's options)
  --label NAME            name of the results file (bench/results/DATE-NAME.json)
  --no-save               do not write bench/results/*.json

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres; a database
is created and dropped per target), BENCH_REDIS_URL (default redis://127.0.0.1:6379/13; flushed).`;

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '16' },
    only: { type: 'string' },
    'embedded-only': { type: 'boolean', default: false },
    'skip-embedded': { type: 'boolean', default: false },
    'skip-baseline': { type: 'boolean', default: false },
    'baseline-redis': { type: 'boolean', default: false },
    paired: { type: 'string' },
    cluster: { type: 'string' },
    sessions: { type: 'string', default: '2000' },
    'embedded-sessions': { type: 'string', default: '300' },
    'signin-concurrency': { type: 'string', default: '8' },
    'burst-concurrency': { type: 'string', default: '32' },
    tool: { type: 'string', default: 'auto' },
    'cpu-prof': { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'info' },
    'server-env': { type: 'string', multiple: true, default: [] },
    'baseline-node-option': { type: 'string', multiple: true, default: [] },
    label: { type: 'string' },
    'no-save': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

function positiveInt(name: string, raw: string, allowZero = false): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) {
    process.stderr.write(`--${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer (got ${raw})\n`);
    process.exit(2);
  }
  return n;
}

const tool = args.tool as RunOptions['tool'];
if (!['auto', 'autocannon', 'wrk'].includes(tool)) {
  process.stderr.write('--tool must be auto, autocannon or wrk\n');
  process.exit(2);
}
const only = args.only ? new Set(args.only.split(',').map((s) => s.trim()).filter(Boolean)) : undefined;
for (const name of only ?? []) {
  if (![...SCENARIOS, 'argon2'].includes(name)) {
    process.stderr.write(`--only: unknown scenario "${name}"\n${USAGE}\n`);
    process.exit(2);
  }
}
const wanted = (name: ScenarioName | 'argon2') => !only || only.has(name);

const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-'));
const opts: RunOptions = {
  seconds: positiveInt('duration', args.duration),
  warmupSeconds: positiveInt('warmup', args.warmup, true),
  connections: positiveInt('connections', args.connections),
  tool,
  signinConcurrency: positiveInt('signin-concurrency', args['signin-concurrency']),
  burstConcurrency: positiveInt('burst-concurrency', args['burst-concurrency']),
  tmpDir,
};
const clusterWorkers = args.cluster === undefined ? 0 : positiveInt('cluster', args.cluster);
const pairedRounds = args.paired === undefined ? 0 : positiveInt('paired', args.paired);
const sessions = positiveInt('sessions', args.sessions, true);
const embeddedSessions = positiveInt('embedded-sessions', args['embedded-sessions'], true);
const serverEnv: Record<string, string> = {};
for (const pair of args['server-env']) {
  const eq = pair.indexOf('=');
  if (eq <= 0) {
    process.stderr.write(`--server-env takes KEY=VALUE (got ${pair})\n`);
    process.exit(2);
  }
  serverEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
}
const adminUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/13';
// Gatehouse's defaults for argon2id: the floor is measured at the parameters the server uses.
const passwordHash = loadConfig({}).passwordHash;

const log = (msg: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);

function describe(s: ScenarioResult): string {
  return `${s.scenario}: ${s.perSecond} ${s.unit}/s, p50 ${s.latencyMs.p50} ms, p99 ${s.latencyMs.p99} ms, ${s.errors} errors, server CPU ${s.serverCpuSeconds}s, load generator ${s.generatorCpuSeconds}s, others ${s.otherCpuSeconds}s`
    + `${s.notes?.sendLagP99Ms !== undefined ? `, generator send lag p99 ${s.notes.sendLagP99Ms} ms / max ${s.notes.sendLagMaxMs} ms` : ''}`
    + `${s.notes?.firstError ? ` (first error: ${s.notes.firstError})` : ''}`;
}

/** Everything a Gatehouse target runs, in order; each scenario is skipped unless wanted. */
async function gatehouseScenarios(server: BenchServer, target: TargetResult, memorySessions: number, memoryRedis: string | undefined, storageBytes?: () => Promise<number>): Promise<void> {
  const record = (s: ScenarioResult) => {
    target.scenarios.push(s);
    log(`  ${describe(s)}`);
    if (server.pids().length === 0) throw new Error(`${server.label} is gone:\n${tail(server.logFile)}`);
  };
  if (wanted('discovery')) record(await fixedRequest(server, 'discovery', discoveryRequest(), opts));
  if (wanted('jwks')) record(await fixedRequest(server, 'jwks', jwksRequest(), opts));
  if (wanted('cc-opaque')) record(await fixedRequest(server, 'cc-opaque', ccRequest(FIXTURES.m2m), opts));
  if (wanted('cc-jwt')) record(await fixedRequest(server, 'cc-jwt', ccRequest(FIXTURES.m2m, FIXTURES.resource), opts));
  if (wanted('introspection')) record(await fixedRequest(server, 'introspection', await introspectionRequest(server, FIXTURES.m2m), opts));
  if (wanted('refresh')) record(await refreshScenario(server, opts));
  if (wanted('signin')) record(await signinScenario(server, opts));
  target.threads = threadCounts(target.workers > 0 ? (processTree(server.pid)[1] ?? server.pid) : server.pid);

  const saturation = (name: string) => target.scenarios.find((s) => s.scenario === name)?.perSecond;
  if (wanted('half-load')) {
    for (const name of ['cc-opaque', 'cc-jwt', 'introspection', 'refresh']) {
      const sat = saturation(name);
      if (!sat) continue;
      const rate = Math.max(1, Math.round(sat / 2));
      const scenario = `${name} @50%`;
      if (name === 'refresh') record(await refreshScenario(server, opts, rate, scenario));
      else if (name === 'introspection') record(await fixedRequest(server, scenario, await introspectionRequest(server, FIXTURES.m2m), opts, rate));
      else record(await fixedRequest(server, scenario, ccRequest(FIXTURES.m2m, name === 'cc-jwt' ? FIXTURES.resource : undefined), opts, rate));
    }
  }
  if (wanted('burst')) {
    const sat = saturation('cc-jwt');
    if (sat) {
      const { tokens, signins } = await burstScenario(server, opts, Math.max(1, Math.round(sat / 2)));
      record(tokens);
      record({ ...signins, scenario: `burst sign-ins (${opts.burstConcurrency} at once)` });
    } else {
      log('  burst: skipped (needs cc-jwt for the saturation rate)');
    }
  }
  if (wanted('memory') && memorySessions > 0) {
    log(`  memory: ${memorySessions} sign-ins...`);
    target.memory = await memoryScenario(server, memorySessions, opts.signinConcurrency, memoryRedis, storageBytes);
    const m = target.memory;
    log(`  memory: RSS ${(m.rssAfterWarmupBytes / 2 ** 20).toFixed(1)} -> ${(m.rssAfterSessionsBytes / 2 ** 20).toFixed(1)} MiB after ${m.sessions} sessions`
      + `${m.redis ? `; redis +${m.redis.bytesPerSession} bytes per sign-in` : ''}; ${m.run.perSecond} sign-ins/s, ${m.run.errors} errors`);
  }
}

async function registerFixtures(env: Record<string, string>): Promise<void> {
  const cliEnv = { ...env, LOG_LEVEL: 'warn' };
  const { m2m, web, resource, user } = FIXTURES;
  // One after the other, so that a failure names its command and the embedded database sees one client at a time.
  await gatehouseCli(cliEnv, ['client', 'create', '--name', 'Bench machine client', '--client-id', m2m.clientId, '--client-secret', m2m.clientSecret, '--grant-type', 'client_credentials']);
  await gatehouseCli(cliEnv, ['client', 'create', '--name', 'Bench web app', '--client-id', web.clientId, '--client-secret', web.clientSecret,
    '--redirect-uri', web.redirectUri, '--grant-type', 'authorization_code', '--grant-type', 'refresh_token', '--scope', web.scope]);
  await gatehouseCli(cliEnv, ['resource', 'create', '--identifier', resource, '--scope', 'read write']);
  // Tokens for an API carry only the scopes the client's roles allow.
  await gatehouseCli(cliEnv, ['role', 'create', '--name', 'bench-api', '--resource', resource, '--permission', 'read', '--permission', 'write']);
  await gatehouseCli(cliEnv, ['role', 'assign', 'bench-api', '--client', m2m.clientId]);
  await gatehouseCli(cliEnv, ['user', 'create', '--email', user.email, '--password', user.password, '--name', 'Bench User', '--verified']);
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += dirBytes(p);
    else if (entry.isFile()) total += fs.statSync(p).size;
  }
  return total;
}

async function postgresBytes(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ size: string }>('select pg_database_size(current_database())::text as size');
    return Number(r.rows[0]!.size);
  } finally {
    await c.end();
  }
}

/** Where a target's V8 CPU profiles go, with --cpu-prof. */
function profileDir(label: string): string | undefined {
  return args['cpu-prof'] ? path.join(tmpDir, `profiles-${label.replace(/[^a-z0-9]+/gi, '-')}`) : undefined;
}

/** Per scenario, where the server's main thread spent the measured window (with --cpu-prof). */
function collectProfiles(dir: string | undefined, target: TargetResult): void {
  if (!dir || !fs.existsSync(dir)) return;
  const summaries: ProfileSummary[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const loaded = loadProfile(path.join(dir, file));
    for (const s of target.scenarios) {
      const summary = summarizeProfile(loaded, { scenario: s.scenario, ...s.window, operations: s.operations });
      if (summary.sampledMs === 0) continue;
      summaries.push(summary);
      process.stdout.write(`\n${target.label} — ${formatProfile(summary)}\n`);
    }
  }
  target.profiles = summaries;
}

async function runPostgresTarget(workers: number): Promise<TargetResult> {
  const label = workers > 0 ? `postgres+redis x${workers}` : 'postgres+redis';
  const target: TargetResult = { label, kind: 'gatehouse', storage: 'PostgreSQL + Redis', workers, scenarios: [] };
  log(`${label}: starting`);
  const db = await createDatabase(adminUrl);
  await flushRedis(redisUrl);
  const profDir = profileDir(label);
  let server: Awaited<ReturnType<typeof startGatehouse>> | undefined;
  try {
    server = await startGatehouse({
      label,
      env: { DATABASE_URL: db.url, REDIS_URL: redisUrl, ...testSecrets(), ...serverEnv },
      workers,
      logDir: tmpDir,
      logLevel: args['log-level'],
      ...(profDir ? { cpuProfDir: profDir } : {}),
    });
    target.startupRssBytes = rssBytes(server.pids());
    await registerFixtures(server.env);
    await gatehouseScenarios(server, target, workers > 0 ? 0 : sessions, redisUrl, () => postgresBytes(db.url));
    if (wanted('roundtrips') && workers === 0) {
      target.roundTrips = await probeRoundTrips({ serverEnv: server.env, databaseUrl: db.url, redisUrl, logDir: tmpDir });
      log(`  round trips per operation (PostgreSQL queries / Redis commands): ${target.roundTrips.map((r) => `${r.operation} ${r.postgresPerOp} / ${r.redisPerOp}`).join(', ')}`);
    }
  } finally {
    await server?.stop();
    await db.drop().catch((err: unknown) => log(`dropping the bench database failed: ${String(err)}`));
    await flushRedis(redisUrl).catch(() => undefined);
  }
  collectProfiles(profDir, target);
  return target;
}

async function runEmbeddedTarget(): Promise<TargetResult> {
  const label = 'embedded';
  const target: TargetResult = { label, kind: 'gatehouse', storage: 'embedded PGlite', workers: 0, scenarios: [] };
  log(`${label}: starting`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-data-'));
  const profDir = profileDir(label);
  let server: Awaited<ReturnType<typeof startGatehouse>> | undefined;
  try {
    server = await startGatehouse({
      label,
      env: { DATA_DIR: dataDir, ...testSecrets(), ...serverEnv },
      workers: 0,
      logDir: tmpDir,
      logLevel: args['log-level'],
      ...(profDir ? { cpuProfDir: profDir } : {}),
    });
    target.startupRssBytes = rssBytes(server.pids());
    await registerFixtures(server.env);
    await gatehouseScenarios(server, target, embeddedSessions, undefined, async () => dirBytes(path.join(dataDir, 'pgdata')));
  } finally {
    await server?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  collectProfiles(profDir, target);
  return target;
}

async function runBaseline(redisUrl?: string): Promise<TargetResult> {
  const label = redisUrl ? 'bare oidc-provider + Redis' : 'bare oidc-provider';
  const target: TargetResult = { label, kind: 'baseline', storage: redisUrl ? 'Redis adapter' : 'in-memory adapter', workers: 0, scenarios: [] };
  log(`${label}: starting`);
  if (redisUrl) await flushRedis(redisUrl);
  // Profiled like Gatehouse, so the two can be compared function by function (µs per operation).
  const profDir = profileDir(label);
  const profArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const web = { clientId: FIXTURES.web.clientId, clientSecret: FIXTURES.web.clientSecret };
  const server = await startBaseline(tmpDir, { ...FIXTURES.m2m, resource: FIXTURES.resource, web, redisUrl }, [...args['baseline-node-option'], ...profArgs]);
  try {
    target.startupRssBytes = rssBytes(server.pids());
    const record = (s: ScenarioResult) => {
      target.scenarios.push(s);
      log(`  ${describe(s)}`);
    };
    if (wanted('discovery')) record(await fixedRequest(server, 'discovery', discoveryRequest(), opts));
    if (wanted('jwks')) record(await fixedRequest(server, 'jwks', jwksRequest(), opts));
    if (wanted('cc-opaque')) record(await fixedRequest(server, 'cc-opaque', ccRequest(FIXTURES.m2m), opts));
    if (wanted('cc-jwt')) record(await fixedRequest(server, 'cc-jwt', ccRequest(FIXTURES.m2m, FIXTURES.resource), opts));
    if (wanted('introspection')) record(await fixedRequest(server, 'introspection', await introspectionRequest(server, FIXTURES.m2m), opts));
    // The same browser-less sign-ins against minimal pages without a password hash: the floor.
    if (wanted('signin')) record(await signinScenario(server, opts));
  } finally {
    await server.stop();
    if (redisUrl) await flushRedis(redisUrl).catch(() => undefined);
  }
  collectProfiles(profDir, target);
  return target;
}

/** --paired: the compared scenarios on Gatehouse and the baseline, in alternating pairs of runs. */
async function runPaired(rounds: number): Promise<PairedResult[]> {
  const baselineRedis = args['baseline-redis'] ? redisUrl.replace(/\/(\d+)$/, (_m, db: string) => `/${(Number(db) + 1) % 16}`) : undefined;
  log(`paired: postgres+redis and ${baselineRedis ? 'bare oidc-provider + Redis' : 'bare oidc-provider'}, ${rounds} rounds per scenario`);
  const db = await createDatabase(adminUrl);
  await flushRedis(redisUrl);
  if (baselineRedis) await flushRedis(baselineRedis);
  let gatehouse: BenchServer | undefined;
  let baseline: BenchServer | undefined;
  try {
    const started = await startGatehouse({ label: 'postgres+redis', env: { DATABASE_URL: db.url, REDIS_URL: redisUrl, ...testSecrets(), ...serverEnv }, workers: 0, logDir: tmpDir, logLevel: args['log-level'] });
    gatehouse = started;
    await registerFixtures(started.env);
    baseline = await startBaseline(tmpDir, { ...FIXTURES.m2m, resource: FIXTURES.resource, redisUrl: baselineRedis }, args['baseline-node-option']);
    const requests = async (server: BenchServer, name: string) => {
      if (name === 'discovery') return discoveryRequest();
      if (name === 'jwks') return jwksRequest();
      if (name === 'cc-opaque') return ccRequest(FIXTURES.m2m);
      if (name === 'cc-jwt') return ccRequest(FIXTURES.m2m, FIXTURES.resource);
      return introspectionRequest(server, FIXTURES.m2m);
    };
    const results: PairedResult[] = [];
    for (const name of COMPARED) {
      if (!wanted(name as ScenarioName)) continue;
      const forGatehouse = await requests(gatehouse, name);
      const forBaseline = await requests(baseline, name);
      const pairs: PairedRound[] = [];
      for (let r = 0; r < rounds; r++) {
        // Alternating who goes first, so neither side always gets the warmer machine.
        const first = r % 2 === 0;
        const g1 = first ? await fixedRequest(gatehouse, name, forGatehouse, opts) : undefined;
        const b = await fixedRequest(baseline, name, forBaseline, opts);
        const g = g1 ?? await fixedRequest(gatehouse, name, forGatehouse, opts);
        const pair = pairRound(g, b);
        pairs.push(pair);
        log(`  ${name} round ${r + 1}: gatehouse ${g.perServerCpuSecond}/CPU-s, bare ${b.perServerCpuSecond}/CPU-s, ${pair.cpuRatio}x (others ${g.otherCpuSeconds}s / ${b.otherCpuSeconds}s)`);
      }
      results.push(summarizePairs(name, pairs));
    }
    return results;
  } finally {
    await gatehouse?.stop();
    await baseline?.stop();
    await db.drop().catch((err: unknown) => log(`dropping the bench database failed: ${String(err)}`));
    await flushRedis(redisUrl).catch(() => undefined);
    if (baselineRedis) await flushRedis(baselineRedis).catch(() => undefined);
  }
}

/** Which code was measured: the commit, and whether the work tree differed from it. */
function sourceRevision(): string {
  if (process.env.BENCH_SOURCE) return process.env.BENCH_SOURCE;
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  if (head.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' });
  return `${head.stdout.trim()}${dirty.stdout.trim() ? ' with uncommitted changes' : ''}`;
}

function packageVersion(name: string): string {
  try {
    const require = createRequire(path.join(ROOT, 'package.json'));
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const started = new Date();
  const machine = describeMachine();
  const loadTool = tool === 'autocannon' || (tool === 'auto' && !wrkVersion()) ? 'autocannon' : 'wrk';
  log(`machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB, ${machine.kernel}, Node ${machine.node}`);
  log(`fixed-request load: ${loadTool}; refresh at saturation: autocannon; fixed rate: paced open-loop generator; sign-ins: HTTP driver; ${opts.seconds}s measured after ${opts.warmupSeconds}s warm-up`);

  const targets: TargetResult[] = [];
  let argon2: ScenarioResult | undefined;
  let paired: PairedResult[] | undefined;
  try {
    if (pairedRounds > 0) {
      paired = await runPaired(pairedRounds);
    } else {
      if (wanted('argon2')) {
        log(`argon2id verify floor (m=${passwordHash.memoryCost} KiB, t=${passwordHash.timeCost}, p=${passwordHash.parallelism})`);
        argon2 = await argon2Scenario(passwordHash, machine.cpus * 2, opts);
        log(`  ${describe(argon2)}`);
      }
      if (!args['embedded-only']) {
        targets.push(await runPostgresTarget(0));
        if (!args['skip-baseline']) targets.push(await runBaseline());
        if (args['baseline-redis']) targets.push(await runBaseline(redisUrl));
        if (clusterWorkers > 0) targets.push(await runPostgresTarget(clusterWorkers));
      }
      if (!args['skip-embedded'] || args['embedded-only']) targets.push(await runEmbeddedTarget());
    }
  } finally {
    // Profiles are kept for a closer look; everything else in the scratch directory goes.
    if (args['cpu-prof']) log(`CPU profiles and server logs kept in ${tmpDir}`);
    else fs.rmSync(tmpDir, { recursive: true, force: true });
  }

  const comparisons = compare(targets);
  const checks = checkTargets(targets, comparisons, argon2);
  // Next to the argon2 target: how close to it any product on oidc-provider could come.
  const floors = signinFloors(targets, argon2);
  if (paired) process.stdout.write(`\n${formatPaired(paired, args['baseline-redis'] ? 'bare oidc-provider + Redis' : 'bare oidc-provider')}\n`);
  else process.stdout.write(`${formatTable(targets, comparisons, argon2)}\n${formatChecks(checks)}\n${floors.length ? `${formatSigninFloors(floors)}\n` : ''}`);

  const finished = new Date();
  const result = {
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    wallSeconds: Math.round((finished.getTime() - started.getTime()) / 1000),
    machine,
    source: sourceRevision(),
    options: { ...opts, tmpDir: undefined, serverEnv, gatehouseNodeFlags: startScriptNodeFlags(), baselineNodeFlags: args['baseline-node-option'], clusterWorkers, sessions, embeddedSessions, logLevel: args['log-level'], only: only ? [...only] : undefined, loadTool },
    versions: {
      node: process.version,
      'oidc-provider': packageVersion('oidc-provider'),
      autocannon: packageVersion('autocannon'),
      argon2: packageVersion('argon2'),
      wrk: wrkVersion() ?? null,
    },
    passwordHash,
    argon2,
    targets,
    comparisons,
    checks,
    ...(floors.length ? { signinFloors: floors } : {}),
    ...(paired ? { paired } : {}),
  };
  if (!args['no-save']) {
    const dir = path.join(ROOT, 'bench', 'results');
    fs.mkdirSync(dir, { recursive: true });
    const stamp = started.toISOString().slice(0, 16).replace(/:/g, '-');
    const file = path.join(dir, `${stamp}-${args.label ?? (paired ? 'paired' : args['embedded-only'] ? 'embedded' : clusterWorkers ? `cluster${clusterWorkers}` : 'full')}.json`);
    fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    log(`results: ${path.relative(ROOT, file)} (${result.wallSeconds}s)`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
