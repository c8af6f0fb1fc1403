// HTTP load: one request repeated on every connection, or a pool of refresh tokens that each
// rotate on use (every response carries the refresh token for the next request, as a real
// client's would). Saturating runs use autocannon; runs at a fixed overall rate use the paced,
// open-loop generator of paced-load.ts.
import autocannon from 'autocannon';
import { runPaced } from './paced-load.ts';
import { round, Samples, type LoadReport } from '../lib/stats.ts';
import { signalMeasuring, workerMain, workerSpec } from '../lib/worker.ts';
import { authorizeOverHttp, tokenRequest } from '../../test/helpers/http-login.ts';

export interface HttpRequestSpec {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface RefreshSpec {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  email: string;
  password: string;
  /** Token chains to start with; requests in flight when a run stops lose theirs. */
  chains: number;
}

export interface HttpLoadSpec {
  url: string;
  connections: number;
  warmupSeconds: number;
  seconds: number;
  /** Requests per second over all connections; undefined saturates. */
  rate?: number;
  request: HttpRequestSpec;
  /** Rotating refresh tokens: request.body gets `refresh_token=` appended per request. */
  refresh?: RefreshSpec;
  /** Expected status (default 200); anything else counts as an error. */
  expectStatus?: number;
}

/** Signs in once per chain and exchanges the code, keeping the refresh tokens. */
async function obtainRefreshTokens(spec: RefreshSpec): Promise<string[]> {
  const tokenEndpoint = `${spec.issuer}/token`;
  const tokens: string[] = [];
  const next = async (): Promise<void> => {
    while (tokens.length < spec.chains) {
      const flow = await authorizeOverHttp({
        issuer: spec.issuer,
        clientId: spec.clientId,
        redirectUri: spec.redirectUri,
        email: spec.email,
        password: spec.password,
        scope: 'openid email offline_access',
        // oidc-provider issues refresh tokens for offline_access only with prompt=consent.
        prompt: 'consent',
      });
      const res = await tokenRequest(tokenEndpoint, { clientId: spec.clientId, clientSecret: spec.clientSecret }, {
        grant_type: 'authorization_code',
        code: flow.code,
        redirect_uri: spec.redirectUri,
        code_verifier: flow.codeVerifier,
      });
      if (!res.body.refresh_token) throw new Error(`no refresh token from the code exchange: ${JSON.stringify(res.body)}`);
      tokens.push(res.body.refresh_token);
    }
  };
  await Promise.all(Array.from({ length: 4 }, next));
  return tokens.slice(0, spec.chains);
}

/** The refresh token pool's two ends: the next body to send, and what an answer leaves behind. */
function refreshChains(base: string, pool: string[]): { body: () => string; onResponse: (status: number, body: string) => void; lost: () => number } {
  let lost = 0;
  return {
    // An empty pool (too many failed requests) sends no token; the 400 counts as an error.
    body: () => {
      const token = pool.pop();
      return token === undefined ? base : `${base}&refresh_token=${encodeURIComponent(token)}`;
    },
    onResponse: (status, body) => {
      const next = status === 200 ? (JSON.parse(body) as { refresh_token?: string }).refresh_token : undefined;
      if (next) pool.push(next);
      else lost += 1;
    },
    lost: () => lost,
  };
}

interface RunResult {
  /** Socket errors and timeouts. */
  errors: number;
  /** Paced runs: p99 and maximum of how late requests left (the generator's own lag). */
  sendLagMs?: { p99: number; max: number };
  statusCodes: Record<string, number>;
  lost: number;
}

/** A fixed overall rate, paced evenly (paced-load.ts). */
async function runPacedOnce(spec: HttpLoadSpec, rate: number, seconds: number, pool: string[] | undefined, samples: Samples | undefined): Promise<RunResult> {
  const base = spec.request.body;
  const chains = pool ? refreshChains(base ?? '', pool) : undefined;
  const result = await runPaced(spec.url, spec.connections, rate, seconds, {
    method: spec.request.method,
    path: spec.request.path,
    headers: spec.request.headers ?? {},
    body: chains ? chains.body : () => base,
    ...(chains ? { onResponse: chains.onResponse } : {}),
  }, samples);
  const statusCodes: Record<string, number> = {};
  if (samples) {
    const expected = spec.expectStatus ?? 200;
    for (const [status, count] of result.statusCodes) {
      statusCodes[String(status)] = count;
      if (status !== expected) unexpected.set(status, (unexpected.get(status) ?? 0) + count);
    }
  }
  const lag = result.sendLag.summary();
  return { errors: result.errors, statusCodes, lost: chains?.lost() ?? 0, sendLagMs: { p99: round(lag.p99), max: round(lag.max) } };
}

/** Saturation with autocannon. */
async function runSaturating(spec: HttpLoadSpec, seconds: number, pool: string[] | undefined, samples: Samples | undefined): Promise<RunResult> {
  const result = await runOnce(spec, seconds, pool, samples);
  const statusCodes: Record<string, number> = {};
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stat.count ?? 0;
  return { errors: result.errors, statusCodes, lost: result.lost };
}

function runOnce(spec: HttpLoadSpec, seconds: number, pool: string[] | undefined, samples: Samples | undefined): Promise<autocannon.Result & { lost: number }> {
  const expected = spec.expectStatus ?? 200;
  const chains = pool ? refreshChains(spec.request.body ?? '', pool) : undefined;
  const request: autocannon.Request = {
    method: spec.request.method,
    path: spec.request.path,
    headers: spec.request.headers ?? {},
    ...(spec.request.body !== undefined ? { body: spec.request.body } : {}),
  };
  if (chains) {
    request.setupRequest = (req) => ({ ...req, body: chains.body() });
    request.onResponse = chains.onResponse;
  }
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      url: spec.url,
      connections: spec.connections,
      duration: seconds,
      requests: [request],
      // Latencies of every status are recorded here (by us); errors are counted below.
      timeout: 10,
    }, (err, result) => {
      if (err) reject(err);
      else resolve({ ...result, lost: chains?.lost() ?? 0 });
    });
    if (samples) {
      instance.on('response', (_client, status, _bytes, responseTime) => {
        samples.add(responseTime);
        if (status !== expected) unexpected.set(status, (unexpected.get(status) ?? 0) + 1);
      });
    }
  });
}

const unexpected = new Map<number, number>();

workerMain(async (): Promise<LoadReport> => {
  const spec = workerSpec<HttpLoadSpec>();
  const pool = spec.refresh ? await obtainRefreshTokens(spec.refresh) : undefined;
  const { rate } = spec;
  const run = (seconds: number, samples: Samples | undefined) => (rate ? runPacedOnce(spec, rate, seconds, pool, samples) : runSaturating(spec, seconds, pool, samples));
  if (spec.warmupSeconds > 0) await run(spec.warmupSeconds, undefined);
  unexpected.clear();
  const samples = new Samples();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await signalMeasuring();
  const result = await run(spec.seconds, samples);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const { statusCodes } = result;
  let unexpectedCount = 0;
  for (const n of unexpected.values()) unexpectedCount += n;
  return {
    tool: rate ? 'paced' : 'autocannon',
    connections: spec.connections,
    targetRate: spec.rate,
    seconds,
    operations: samples.count,
    latencyMs: samples.summary(),
    errors: result.errors + unexpectedCount,
    statusCodes,
    generatorCpuSeconds: (cpu.user + cpu.system) / 1e6,
    notes: {
      ...(pool ? { refreshChainsLeft: pool.length, refreshChainsLost: result.lost } : {}),
      ...(result.sendLagMs ? { sendLagP99Ms: result.sendLagMs.p99, sendLagMaxMs: result.sendLagMs.max } : {}),
    },
  };
});
