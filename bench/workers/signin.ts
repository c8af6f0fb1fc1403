// Complete sign-ins over HTTP, the way a browser does them but without one: GET /auth, the login
// page, POST email + password with the CSRF token, the consent page, POST allow, the redirect
// with the code, and the code exchange at /token (authorization code + PKCE). Each loop is a
// fresh browser (empty cookie jar), so every sign-in creates a new session and grant. Runs for a
// time, or until a number of sign-ins is reached (the memory scenario).
import { authorizeOverHttp, tokenRequest } from '../../test/helpers/http-login.ts';
import { Samples, type LoadReport } from '../lib/stats.ts';
import { signalMeasuring, workerMain, workerSpec } from '../lib/worker.ts';

export interface SigninSpec {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  email: string;
  password: string;
  scope: string;
  concurrency: number;
  warmupSeconds: number;
  /** Stop after this long... */
  seconds?: number;
  /** ...or after this many sign-ins. */
  count?: number;
}

// Counts the HTTP requests the driver makes, to report requests per sign-in.
let httpRequests = 0;
const realFetch = globalThis.fetch;
globalThis.fetch = ((...args: Parameters<typeof fetch>) => {
  httpRequests += 1;
  return realFetch(...args);
}) as typeof fetch;

workerMain(async (): Promise<LoadReport> => {
  const spec = workerSpec<SigninSpec>();
  const tokenEndpoint = `${spec.issuer}/token`;
  let errors = 0;
  let firstError: string | undefined;

  const signInOnce = async (): Promise<void> => {
    const flow = await authorizeOverHttp({
      issuer: spec.issuer,
      clientId: spec.clientId,
      redirectUri: spec.redirectUri,
      email: spec.email,
      password: spec.password,
      scope: spec.scope,
    });
    const res = await tokenRequest(tokenEndpoint, { clientId: spec.clientId, clientSecret: spec.clientSecret }, {
      grant_type: 'authorization_code',
      code: flow.code,
      redirect_uri: spec.redirectUri,
      code_verifier: flow.codeVerifier,
    });
    if (res.status !== 200 || !res.body.access_token) throw new Error(`code exchange answered ${res.status}: ${JSON.stringify(res.body)}`);
  };

  const run = async (until: { deadline?: number; count?: number }, samples: Samples | undefined): Promise<number> => {
    let started = 0;
    let done = 0;
    const loop = async (): Promise<void> => {
      for (;;) {
        if (until.deadline !== undefined && performance.now() >= until.deadline) return;
        if (until.count !== undefined && started >= until.count) return;
        started += 1;
        const t0 = performance.now();
        try {
          await signInOnce();
          samples?.add(performance.now() - t0);
          done += 1;
        } catch (err) {
          if (samples) {
            errors += 1;
            firstError ??= err instanceof Error ? err.message : String(err);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: spec.concurrency }, loop));
    return done;
  };

  if (spec.warmupSeconds > 0) await run({ deadline: performance.now() + spec.warmupSeconds * 1000 }, undefined);
  const samples = new Samples();
  const cpuBefore = process.cpuUsage();
  await signalMeasuring();
  const requestsBefore = httpRequests;
  const started = performance.now();
  await run(spec.count !== undefined ? { count: spec.count } : { deadline: started + (spec.seconds ?? 10) * 1000 }, samples);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    tool: 'http-driver',
    connections: spec.concurrency,
    targetRate: undefined,
    seconds,
    operations: samples.count,
    latencyMs: samples.summary(),
    errors,
    generatorCpuSeconds: (cpu.user + cpu.system) / 1e6,
    notes: {
      httpRequestsPerSignIn: samples.count ? Math.round(((httpRequests - requestsBefore) / (samples.count + errors)) * 10) / 10 : 0,
      ...(firstError ? { firstError: firstError.slice(0, 300) } : {}),
    },
  };
});
